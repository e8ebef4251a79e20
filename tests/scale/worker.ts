/**
 * One Cairn worker process of the scale-out tests, on a PostgreSQL URL. Started by `harness.ts` with
 * a JSON config as its argument; prints JSON lines (`ready`, answers to commands, `engine-log`) and
 * reads commands on stdin.
 *
 * Every step callback appends a line to a side file of its own (one per process), independent of
 * Cairn: `start` when it begins, `end` with a fresh nonce when it returns. The nonce is part of the
 * step's result, so the test can tell which execution produced a stored outcome.
 */
import { appendFileSync } from "node:fs";
import { createInterface } from "node:readline";
import {
  type Cairn,
  type Clock,
  createCairn,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
} from "cairnjs";

export interface ScaleWorkerConfig {
  /** `postgres://…?schema=…`. */
  url: string;
  /** A name for this process in the side file and messages. */
  name: string;
  /** Side file of step callback executions (JSON lines). */
  callsPath: string;
  worker?: boolean;
  leaseMs?: number;
  pollMs?: number;
  maxConcurrent?: number;
  hotWaitThreshold?: number;
  /**
   * Schedules: a clock that runs `speed` times faster than real time, from `start` (virtual ms) at
   * real time `epoch`, shared by every worker given the same values; the `report` workflow's
   * `schedules` and the `triggers.crons` whose `scheduled()` calls are appended to `scheduledPath`.
   */
  fast?: { start: number; epoch: number; speed: number };
  schedules?: string[];
  crons?: string[];
  scheduledPath?: string;
}

/** One line of `scheduledPath`: a `scheduled()` call. */
export interface ScheduledRecord {
  worker: string;
  cron: string;
  scheduledTime: number;
}

/** One line of the side file. */
export interface CallRecord {
  worker: string;
  pid: number;
  instance: string;
  step: string;
  attempt: number;
  phase: "start" | "end";
  at: number;
  nonce?: string;
}

const config = JSON.parse(process.argv[2]!) as ScaleWorkerConfig;
const emit = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function tracked<T>(
  instance: string,
  step: string,
  attempt: number,
  delayMs: number,
  compute: () => T,
): Promise<{ value: T; nonce: string }> {
  const base = { worker: config.name, pid: process.pid, instance, step, attempt };
  appendFileSync(config.callsPath, `${JSON.stringify({ ...base, phase: "start", at: Date.now() })}\n`);
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  const value = compute();
  const nonce = crypto.randomUUID();
  appendFileSync(config.callsPath, `${JSON.stringify({ ...base, phase: "end", at: Date.now(), nonce })}\n`);
  return { value, nonce };
}

type Params = { n?: number; delayMs?: number; sleepMs?: number; timeout?: string };

/** one → two → three; each callback optionally takes `delayMs`. */
class Three extends WorkflowEntrypoint<unknown, Params> {
  async run(event: WorkflowEvent<Params>, step: WorkflowStep) {
    const id = event.instanceId;
    const d = event.payload.delayMs ?? 0;
    const n = event.payload.n ?? 0;
    const a = await step.do("one", (c) => tracked(id, "one", c.attempt, d, () => n + 1));
    const b = await step.do("two", (c) => tracked(id, "two", c.attempt, d, () => a.value * 2));
    const c3 = await step.do("three", (c) => tracked(id, "three", c.attempt, d, () => b.value + 3));
    return { result: c3.value, nonces: [a.nonce, b.nonce, c3.nonce], by: config.name };
  }
}

/** a → waitForEvent "go" → b, which returns the event's payload. */
class Waiter extends WorkflowEntrypoint<unknown, Params> {
  async run(event: WorkflowEvent<Params>, step: WorkflowStep) {
    const id = event.instanceId;
    await step.do("a", (c) => tracked(id, "a", c.attempt, event.payload.delayMs ?? 0, () => 1));
    const e = await step.waitForEvent<{ for: string }>("wait", {
      type: "go",
      timeout: event.payload.timeout ?? "1 hour",
    });
    const b = await step.do("b", (c) => tracked(id, "b", c.attempt, 0, () => e.payload.for));
    return { got: b.value, by: config.name };
  }
}

/** a (records when the sleep was asked) → sleep → b (records when it woke). */
class Sleeper extends WorkflowEntrypoint<unknown, Params> {
  async run(event: WorkflowEvent<Params>, step: WorkflowStep) {
    const id = event.instanceId;
    const a = await step.do("a", (c) => tracked(id, "a", c.attempt, 0, () => Date.now()));
    await step.sleep("nap", event.payload.sleepMs ?? 1000);
    const b = await step.do("b", (c) => tracked(id, "b", c.attempt, 0, () => Date.now()));
    return { asked: a.value, woke: b.value, by: config.name };
  }
}

/** Created by `schedules`: records the slot it was created for. */
class Report extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const slot = event.schedule?.scheduledTime;
    return await step.do("record", (c) => tracked(event.instanceId, "record", c.attempt, 0, () => slot));
  }
}

/** Real time sped up `speed` times (see `ScaleWorkerConfig.fast`): the same for every process. */
function fastClock(f: { start: number; epoch: number; speed: number }): Clock {
  const now = () => f.start + (Date.now() - f.epoch) * f.speed;
  return {
    now,
    setTimer(fn, ms) {
      const due = now() + ms;
      let handle: ReturnType<typeof setTimeout>;
      const arm = (left: number) => {
        handle = setTimeout(() => (now() >= due ? fn() : arm(due - now())), Math.max(0, left / f.speed));
      };
      arm(ms);
      return { cancel: () => clearTimeout(handle) };
    },
  };
}

// On a fast clock, durations given in real ms are scaled to virtual ms.
const scale = config.fast?.speed ?? 1;
let cairn: Cairn;
try {
  cairn = await createCairn({
    store: config.url,
    workflows: [
      { binding: "THREE", name: "three", class: Three },
      { binding: "WAITER", name: "waiter", class: Waiter },
      { binding: "SLEEPER", name: "sleeper", class: Sleeper },
      {
        binding: "REPORT",
        name: "report",
        class: Report,
        ...(config.schedules ? { schedules: config.schedules } : {}),
      },
    ],
    ...(config.fast ? { clock: fastClock(config.fast) } : {}),
    ...(config.crons
      ? {
          triggers: {
            crons: config.crons,
            scheduled: (c: { cron: string; scheduledTime: number }) =>
              appendFileSync(
                config.scheduledPath!,
                `${JSON.stringify({ worker: config.name, cron: c.cron, scheduledTime: c.scheduledTime })}\n`,
              ),
          },
        }
      : {}),
    worker: config.worker ?? true,
    leaseMs: (config.leaseMs ?? 1500) * scale,
    pollMs: (config.pollMs ?? 200) * scale,
    maxConcurrent: config.maxConcurrent,
    hotWaitThreshold: (config.hotWaitThreshold ?? 100) * scale,
    defaultRetryDelay: 20,
    workerId: `${config.name}-${process.pid}`,
    log: (message, error) =>
      emit({ event: "engine-log", message, error: String((error as Error)?.stack ?? error) }),
  });
} catch (e) {
  emit({ event: "fatal", error: String((e as Error)?.stack ?? e) });
  process.exit(1);
}

interface Command {
  cmd: string;
  tag?: string;
  workflow?: string;
  instance?: string;
  items?: { id: string; params?: unknown }[];
  type?: string;
  payload?: unknown;
}

async function handle(c: Command): Promise<Record<string, unknown>> {
  const rt = cairn.runtime;
  switch (c.cmd) {
    case "createMany": {
      const items = c.items!;
      for (let i = 0; i < items.length; i += 100) await rt.createBatch(c.workflow!, items.slice(i, i + 100));
      return {};
    }
    case "createEach": {
      // One `create` per item, all at once: a worker with free slots starts them itself.
      await Promise.all(c.items!.map((item) => rt.create(c.workflow!, item)));
      return {};
    }
    case "sendEvent":
      await rt.sendEvent(c.workflow!, c.instance!, { type: c.type!, payload: c.payload });
      return {};
    case "close":
      await cairn.close();
      emit({ event: "ok", tag: c.tag });
      process.exit(0);
      return {};
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

createInterface({ input: process.stdin })
  .on("line", (line) => {
    if (!line.trim()) return;
    const c = JSON.parse(line) as Command;
    handle(c).then(
      (result) => emit({ event: "ok", tag: c.tag, ...result }),
      (e) => emit({ event: "error", tag: c.tag, message: String((e as Error)?.message ?? e) }),
    );
  })
  .on("close", () => process.exit(0)); // the parent went away

emit({ event: "ready", name: config.name, pid: process.pid, workerId: cairn.runtime.workerId });
