/**
 * Control commands against each other and against the run's own end, on SQLite and PostgreSQL.
 *
 * Every control command (pause, resume, terminate, restart, sendEvent) must be safe whatever else is
 * happening to the instance: another command in the same turn of the event loop, the same command
 * twice at once, the run completing at that very moment, another worker holding the instance. The
 * storm below issues random commands at many instances through two runtimes at once, then resumes
 * what is paused and sends the events that are waited for: every instance must end (complete or
 * terminated). A run dropped by a command meant for an earlier run leaves its instance `running`
 * (or `waitingForPause`) with nothing running it, and the settle phase never ends.
 *
 * `CAIRN_CHAOS=long` runs a longer storm.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Cairn, createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";

const LONG = process.env.CAIRN_CHAOS === "long";
const PG_URL = process.env.CAIRN_TEST_POSTGRES_URL;
if (!PG_URL) {
  if (process.env.CAIRN_REQUIRE_POSTGRES === "1")
    throw new Error("CAIRN_TEST_POSTGRES_URL is not set, and CAIRN_REQUIRE_POSTGRES=1 requires it");
  console.warn("Skipping the PostgreSQL control-command storms: CAIRN_TEST_POSTGRES_URL is not set");
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const turn = () => new Promise((r) => setImmediate(r));

/** One step: the restart-at-completion race needs the run to end right after it starts. */
class OneStep extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    return step.do("only", async () => "done");
  }
}

/** Steps, an event wait and a short sleep, so commands land in every phase of a run. */
class Phases extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("a", async () => {
      await pause(Math.random() * 3);
      return 1;
    });
    await step.waitForEvent("go", { type: "go", timeout: "1 hour" });
    await step.do("b", async () => {
      await pause(Math.random() * 3);
      return 2;
    });
    await step.sleep("nap", 5);
    return "done";
  }
}

const workflows = [
  { binding: "ONE", name: "one", class: OneStep },
  { binding: "PHASES", name: "phases", class: Phases },
];

interface World {
  /** The runtimes commands go through (two workers on PostgreSQL, one on SQLite). */
  cairns: Cairn[];
  dispose(): Promise<void>;
}

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.dispose();
});

async function sqliteWorld(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), "cairn-chaos-"));
  const cairn = await createCairn({ store: join(dir, "cairn.db"), workflows, synchronous: "NORMAL" });
  const world = {
    cairns: [cairn],
    async dispose() {
      await cairn.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  worlds.push(world);
  return world;
}

async function postgresWorld(): Promise<World> {
  const schema = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const url = new URL(PG_URL!);
  url.searchParams.set("schema", schema);
  const cairns: Cairn[] = [];
  for (const workerId of ["w1", "w2"])
    cairns.push(await createCairn({ store: url.toString(), workflows, workerId, pollMs: 200, poolSize: 4 }));
  const world = {
    cairns,
    async dispose() {
      for (const c of cairns) await c.close();
      const db = new pg.Client({ connectionString: PG_URL });
      await db.connect();
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await db.end();
    },
  };
  worlds.push(world);
  return world;
}

/** Commands may be refused (finished instance, a concurrent change): only those refusals are expected. */
const EXPECTED = [
  "instance.cannot_pause",
  "instance.cannot_terminate",
  "instance.cannot_send_event",
  "changed while the command ran",
];
async function tolerate(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    const message = (e as Error).message;
    if (!EXPECTED.some((m) => message.includes(m))) throw e;
  }
}

const FINAL = new Set(["complete", "errored", "terminated"]);

/** Polls (a turn of the event loop apart) until the instance is in a final status; fails after 10 s. */
async function untilFinal(cairn: Cairn, workflow: string, id: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const row = await cairn.runtime.instance(workflow, id);
    if (FINAL.has(row.status)) return;
    if (Date.now() > deadline)
      expect(`${id}: ${row.status} epoch ${row.epoch} owner ${row.owner}`).toBe("a final status");
    await turn();
  }
}

/**
 * Drives every instance to an end: resumes paused ones and sends the event to waiting ones, until
 * each is complete or terminated. Fails, naming the stuck instances and their rows, if that takes
 * longer than `limitMs` (a stranded instance never gets there).
 */
async function settle(cairn: Cairn, workflow: string, ids: string[], limitMs: number): Promise<void> {
  const rt = cairn.runtime;
  const deadline = Date.now() + limitMs;
  let open = ids;
  while (open.length > 0 && Date.now() < deadline) {
    const next: string[] = [];
    for (const id of open) {
      const { status } = await rt.status(workflow, id);
      if (FINAL.has(status)) continue;
      next.push(id);
      if (status === "paused") await tolerate(rt.resume(workflow, id));
      if (status === "waiting") await tolerate(rt.sendEvent(workflow, id, { type: "go" }));
    }
    open = next;
    if (open.length > 0) await pause(20);
  }
  const stuck = await Promise.all(open.map((id) => rt.instance(workflow, id)));
  expect(
    stuck.map((r) => `${r.id}: ${r.status} epoch ${r.epoch} owner ${r.owner} lease ${r.leaseUntil}`),
  ).toEqual([]);
}

const stores: [string, () => Promise<World>][] = [["SQLite", sqliteWorld]];
if (PG_URL) stores.push(["PostgreSQL", postgresWorld]);

describe.each(stores)("control commands on %s", (_name, open) => {
  it("restart in the same turn as the completion runs the instance again (20 times)", async () => {
    const { cairns } = await open();
    const rt = cairns[0]!.runtime;
    await rt.create("one", { id: "r" });
    for (let i = 0; i < 20; i++) {
      await untilFinal(cairns[0]!, "one", "r");
      await rt.restart("one", "r");
    }
    await settle(cairns[0]!, "one", ["r"], 10_000);
  });

  it("two restarts at once leave the instance run by someone (20 times)", async () => {
    const { cairns } = await open();
    const [a, b] = [cairns[0]!.runtime, (cairns[1] ?? cairns[0]!).runtime];
    await a.create("one", { id: "r2" });
    for (let i = 0; i < 20; i++) {
      await untilFinal(cairns[0]!, "one", "r2");
      await Promise.all([tolerate(a.restart("one", "r2")), tolerate(b.restart("one", "r2"))]);
    }
    await settle(cairns[0]!, "one", ["r2"], 10_000);
  });

  it("a random storm of commands on many instances leaves every one able to end", async () => {
    const { cairns } = await open();
    const N = LONG ? 200 : 40;
    const STORM_MS = LONG ? 30_000 : 1500;
    // Half run one quick step (they end all the time), half go through steps, an event wait and a sleep.
    const targets = Array.from({ length: N }, (_, i) => ({
      workflow: i % 2 ? "phases" : "one",
      id: `s${i}`,
    }));
    await Promise.all(targets.map((t) => cairns[0]!.runtime.create(t.workflow, { id: t.id })));
    const commands = [
      "pause",
      "resume",
      "terminate",
      "restart",
      "restart",
      "sendEvent",
      "sendEvent",
    ] as const;
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(Math.random() * xs.length)]!;
    // An unexpected error stops the storm (watchers included, so nothing runs on after the test)
    // and is reported with the command that got it.
    let stopped = false;
    const send = (t: { workflow: string; id: string }, cmd: (typeof commands)[number]) => {
      const rt = pick(cairns).runtime;
      return tolerate(
        cmd === "sendEvent"
          ? rt.sendEvent(t.workflow, t.id, { type: "go" })
          : cmd === "terminate"
            ? rt.terminate(t.workflow, t.id)
            : rt[cmd](t.workflow, t.id),
      ).catch((e) => {
        stopped = true;
        throw new Error(`${cmd} ${t.workflow}/${t.id}: ${(e as Error).name}: ${(e as Error).message}`, {
          cause: e,
        });
      });
    };
    const until = Date.now() + STORM_MS;
    // Half of the instances are watched, a turn of the event loop apart, and restarted (sometimes twice
    // at once) as soon as they end: commands in the same turn as a run's end.
    const watchers = targets.slice(0, N / 2).map(async (t) => {
      while (Date.now() < until && !stopped) {
        const { status } = await pick(cairns).runtime.status(t.workflow, t.id);
        if (FINAL.has(status))
          await Promise.all([send(t, "restart"), Math.random() < 0.5 ? send(t, "restart") : undefined]);
        else await turn();
      }
    });
    // Bursts of random commands at random instances, through random workers.
    const bursts = async () => {
      for (let round = 0; Date.now() < until && !stopped; round++) {
        const burst: Promise<void>[] = [];
        for (let k = 0; k < N / 2; k++) {
          const t = pick(targets);
          const cmd = pick(commands);
          burst.push(send(t, cmd));
          // The same command twice at once (a bulk action racing a click).
          if (Math.random() < 0.3) burst.push(send(t, cmd));
        }
        const results = await Promise.allSettled(burst);
        const failed = results.find((r) => r.status === "rejected");
        if (failed) throw (failed as PromiseRejectedResult).reason;
        // Sometimes let runs progress (and end) between bursts, sometimes not at all.
        if (round % 3 === 0) await pause(Math.random() * 15);
        else await turn();
      }
    };
    const outcomes = await Promise.allSettled([bursts(), ...watchers]);
    expect(
      outcomes.flatMap((o) => (o.status === "rejected" ? [String((o.reason as Error).message)] : [])),
    ).toEqual([]);
    for (const workflow of ["one", "phases"])
      await settle(
        cairns[0]!,
        workflow,
        targets.filter((t) => t.workflow === workflow).map((t) => t.id),
        LONG ? 60_000 : 15_000,
      );
  }, 180_000);
});
