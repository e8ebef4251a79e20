/**
 * A Cairn process for the crash tests: `node --conditions=source worker.ts '<config json>'`.
 *
 * It opens the store `<dir>/cairn.db`, runs the workflows below, takes commands from stdin (one JSON
 * object a line) and reports to stdout (one JSON object a line), so the parent can SIGKILL it at a
 * chosen point. stdout is a pipe, and pipe writes are synchronous on Linux: a line the parent has
 * read describes something that happened before the process stopped.
 *
 * Every step callback execution is recorded independently of Cairn, by appending a line to
 * `<dir>/calls.log` (`{ gen, pid, instance, step, count, attempt, phase: "start" | "end", nonce? }`).
 * Each successful callback returns a fresh random nonce, so a callback that ran again would change
 * the stored result.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { DatabaseSync } from "node:sqlite";
import {
  type Cairn,
  createCairn,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
  type WorkflowStepContext,
} from "cairnjs";

export interface WorkerConfig {
  /** Directory holding `cairn.db` and `calls.log`. */
  dir: string;
  /** Which process this is (1 for the first, 2 after the first restart, …); written to calls.log. */
  gen: number;
  /** Step names whose callbacks, once started, hang until a `release` command (in this process only). */
  block?: string[];
  /**
   * Right after the `do` step `step` of `instance` is durably stored (seen by a separate read-only
   * connection), print `step-committed` and freeze the process (nothing else runs) until killed.
   */
  freezeOnCommit?: { instance: string; step: string };
  hotWaitThreshold?: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as WorkerConfig;
const dbPath = join(config.dir, "cairn.db");
const callsPath = join(config.dir, "calls.log");
const blocked = new Set(config.block ?? []);
const gates = new Map<string, () => void>();

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** Stops the whole process where it is: no timer, I/O callback or promise continuation runs again. */
function freeze(): never {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  throw new Error("unreachable");
}

/** Runs one step callback, recording its start and end in calls.log. */
async function tracked<T>(
  instance: string,
  ctx: WorkflowStepContext,
  compute: () => T | Promise<T>,
): Promise<{ value: T; nonce: string }> {
  const step = ctx.step.name;
  const record = {
    gen: config.gen,
    pid: process.pid,
    instance,
    step,
    count: ctx.step.count,
    attempt: ctx.attempt,
  };
  appendFileSync(callsPath, `${JSON.stringify({ ...record, phase: "start" })}\n`);
  emit({ event: "callback-started", ...record });
  if (blocked.has(step)) {
    emit({ event: "callback-blocked", ...record });
    await new Promise<void>((resolve) => gates.set(`${instance}/${step}`, resolve));
  }
  const value = await compute();
  const nonce = crypto.randomUUID();
  appendFileSync(callsPath, `${JSON.stringify({ ...record, phase: "end", nonce })}\n`);
  emit({ event: "callback-finished", ...record, nonce });
  return { value, nonce };
}

type Result<T> = { value: T; nonce: string };

/** a → b → c. */
class Linear extends WorkflowEntrypoint<unknown, { n: number }> {
  async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
    const id = event.instanceId;
    const a = (await step.do("a", (ctx) => tracked(id, ctx, () => event.payload.n + 1))) as Result<number>;
    const b = (await step.do("b", (ctx) => tracked(id, ctx, () => a.value * 2))) as Result<number>;
    const c = (await step.do("c", (ctx) => tracked(id, ctx, () => b.value + 3))) as Result<number>;
    return { result: c.value, nonces: [a.nonce, b.nonce, c.nonce] };
  }
}

/** a → sleep "nap" → b. */
class Sleeper extends WorkflowEntrypoint<unknown, { n: number; sleep: number }> {
  async run(event: WorkflowEvent<{ n: number; sleep: number }>, step: WorkflowStep) {
    const id = event.instanceId;
    const a = (await step.do("a", (ctx) => tracked(id, ctx, () => event.payload.n + 1))) as Result<number>;
    await step.sleep("nap", event.payload.sleep);
    const b = (await step.do("b", (ctx) =>
      tracked(id, ctx, () => ({ value: a.value * 2, at: Date.now() })),
    )) as Result<{
      value: number;
      at: number;
    }>;
    return { result: b.value.value, nonces: [a.nonce, b.nonce] };
  }
}

/** a → waitForEvent "approval" (type "approve") → b. */
class Waiter extends WorkflowEntrypoint<unknown, { n: number }> {
  async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
    const id = event.instanceId;
    const a = (await step.do("a", (ctx) => tracked(id, ctx, () => event.payload.n + 1))) as Result<number>;
    const approval = await step.waitForEvent<{ by: string }>("approval", {
      type: "approve",
      timeout: "1 hour",
    });
    const b = (await step.do("b", (ctx) =>
      tracked(id, ctx, () => `${approval.payload.by}:${a.value}`),
    )) as Result<string>;
    return { result: b.value, payload: approval.payload, nonces: [a.nonce, b.nonce] };
  }
}

/**
 * Three concurrent steps, a step that sums them, a sleep (evicting for even n, hot for odd n), and a
 * step that fails its first attempt when n % 5 === 0.
 */
class Fanout extends WorkflowEntrypoint<unknown, { n: number }> {
  async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
    const id = event.instanceId;
    const n = event.payload.n;
    const jitter = () => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 30)));
    const parts = (await Promise.all(
      [1, 2, 3].map((k) =>
        step.do(`x${k}`, (ctx) =>
          tracked(id, ctx, async () => {
            await jitter();
            return n * k;
          }),
        ),
      ),
    )) as Result<number>[];
    const sum = (await step.do("sum", (ctx) =>
      tracked(id, ctx, () => parts.reduce((s, p) => s + p.value, 0)),
    )) as Result<number>;
    await step.sleep("tick", n % 2 === 0 ? 300 : 30);
    const flaky = (await step.do("flaky", { retries: { limit: 3, delay: 20, backoff: "constant" } }, (ctx) =>
      tracked(id, ctx, async () => {
        await jitter();
        if (n % 5 === 0 && ctx.attempt === 1) throw new Error(`first attempt of ${id} fails`);
        return n + 1000;
      }),
    )) as Result<number>;
    return {
      sum: sum.value,
      flaky: flaky.value,
      nonces: [...parts.map((p) => p.nonce), sum.nonce, flaky.nonce],
    };
  }
}

/**
 * r1 → r2 → r3, each with a rollback (recorded in calls.log as step `undo-<name>`), then a step
 * that fails for good: the rollbacks run undo-r3, undo-r2, undo-r1.
 */
class Saga extends WorkflowEntrypoint<unknown, { n: number }> {
  async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
    const id = event.instanceId;
    const undo = (name: string) => ({
      rollback: async ({ ctx }: { ctx: WorkflowStepContext }) => {
        await tracked(id, { ...ctx, step: { name: `undo-${name}`, count: 1 } }, () => name);
      },
      rollbackConfig: { retries: { limit: 3, delay: 20, backoff: "constant" as const } },
    });
    for (const name of ["r1", "r2", "r3"])
      await step.do(name, (ctx) => tracked(id, ctx, () => `${name}:${event.payload.n}`), undo(name));
    await step.do("fail", { retries: { limit: 0, delay: 1 } }, async () => {
      throw new Error(`saga ${id} fails`);
    });
  }
}

const FINAL = new Set(["complete", "errored", "terminated"]);

let cairn: Cairn;
try {
  cairn = await createCairn({
    store: dbPath,
    workflows: [
      { binding: "LINEAR", name: "linear", class: Linear },
      { binding: "SLEEPER", name: "sleeper", class: Sleeper },
      { binding: "WAITER", name: "waiter", class: Waiter },
      { binding: "FANOUT", name: "fanout", class: Fanout },
      { binding: "SAGA", name: "saga", class: Saga },
    ],
    hotWaitThreshold: config.hotWaitThreshold ?? 100,
    defaultRetryDelay: 20,
    log: (message, error) =>
      emit({ event: "engine-log", message, error: String((error as Error)?.stack ?? error) }),
  });
} catch (e) {
  emit({ event: "fatal", error: String((e as Error)?.stack ?? e) });
  process.exit(1);
}

// A connection of our own, independent of Cairn's, to see what is durably committed.
const reader = new DatabaseSync(dbPath, { readOnly: true });
const committedStep = reader.prepare(
  "SELECT status, result FROM steps WHERE workflow = ? AND instance_id = ? AND kind = 'do' AND name = ? AND count = 1",
);

// Report every status change made through this process; freeze right after a chosen commit.
const lastStatus = new Map<string, string>();
const dirty = new Map<string, string>();
const changeWaiters = new Set<() => void>();
let flushing = false;
cairn.runtime.onChange((workflow, id) => {
  const f = config.freezeOnCommit;
  if (f && f.instance === id) {
    const row = committedStep.get(workflow, id, f.step) as { status: string; result: Uint8Array } | undefined;
    if (row?.status === "succeeded") {
      emit({
        event: "step-committed",
        instance: id,
        step: f.step,
        result: Buffer.from(row.result).toString("base64"),
      });
      freeze();
    }
  }
  dirty.set(`${workflow}\u0000${id}`, workflow);
  for (const w of changeWaiters) w();
  if (!flushing) {
    flushing = true;
    setImmediate(() => void reportStatuses());
  }
});

async function reportStatuses(): Promise<void> {
  const keys = [...dirty.keys()];
  dirty.clear();
  flushing = false;
  for (const key of keys) {
    const [workflow, id] = key.split("\u0000") as [string, string];
    const s = await describe(workflow, id);
    const shown = `${s.status} ${s.readyAt}`;
    if (lastStatus.get(key) === shown) continue;
    lastStatus.set(key, shown);
    emit({ event: "status", workflow, instance: id, ...s });
  }
}

async function describe(workflow: string, id: string): Promise<Record<string, unknown>> {
  try {
    const row = await cairn.runtime.instance(workflow, id);
    return { ...(await cairn.runtime.status(workflow, id)), readyAt: row.readyAt, owner: row.owner };
  } catch (e) {
    return { status: "missing", error: String(e) };
  }
}

/** Resolves with every instance's status once all of them are final, or at the deadline. */
async function waitFinal(
  workflow: string,
  ids: string[],
  timeoutMs = 10_000,
): Promise<Record<string, Record<string, unknown>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const changed = new Promise<void>((resolve) => {
      const w = () => {
        changeWaiters.delete(w);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(w, 250); // also look now and then: another writer could have finished them
      changeWaiters.add(w);
    });
    const out: Record<string, Record<string, unknown>> = {};
    let done = true;
    for (const id of ids) {
      const s = await describe(workflow, id);
      out[id] = s;
      if (!FINAL.has(s.status as string)) done = false;
    }
    if (done || Date.now() > deadline) return out;
    await changed;
  }
}

interface Command {
  cmd: string;
  tag?: string;
  workflow?: string;
  instance?: string;
  params?: unknown;
  items?: { id: string; params: unknown }[];
  ids?: string[];
  step?: string;
  type?: string;
  payload?: unknown;
  freeze?: boolean;
  timeoutMs?: number;
}

async function handle(c: Command): Promise<Record<string, unknown> | undefined> {
  const rt = cairn.runtime;
  switch (c.cmd) {
    case "create":
      await rt.create(c.workflow!, { id: c.instance!, params: c.params });
      return {};
    case "createMany": {
      const items = c.items!;
      for (let i = 0; i < items.length; i += 100) await rt.createBatch(c.workflow!, items.slice(i, i + 100));
      return {};
    }
    case "release": {
      const open = gates.get(`${c.instance}/${c.step}`);
      if (!open) throw new Error(`no callback of ${c.instance}/${c.step} is blocked`);
      gates.delete(`${c.instance}/${c.step}`);
      open();
      return {};
    }
    case "sendEvent":
      await rt.sendEvent(c.workflow!, c.instance!, { type: c.type!, payload: c.payload });
      if (c.freeze) {
        emit({ event: "ok", tag: c.tag, frozen: true });
        freeze();
      }
      return {};
    case "pause":
      await rt.pause(c.workflow!, c.instance!);
      return describe(c.workflow!, c.instance!);
    case "resume":
      await rt.resume(c.workflow!, c.instance!);
      return describe(c.workflow!, c.instance!);
    case "status":
      return describe(c.workflow!, c.instance!);
    case "idle":
      await rt.whenIdle();
      return {};
    case "waitFinal":
      return { results: await waitFinal(c.workflow!, c.ids!, c.timeoutMs) };
    case "close":
      await cairn.close();
      reader.close();
      emit({ event: "ok", tag: c.tag });
      process.exit(0);
      return undefined;
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

createInterface({ input: process.stdin })
  .on("line", (line) => {
    if (!line.trim()) return;
    const c = JSON.parse(line) as Command;
    handle(c).then(
      (result) => result && emit({ event: "ok", tag: c.tag, ...result }),
      (e) => emit({ event: "error", tag: c.tag, message: String((e as Error)?.message ?? e) }),
    );
  })
  .on("close", () => process.exit(0)); // the parent went away

emit({ event: "ready", gen: config.gen, pid: process.pid });
