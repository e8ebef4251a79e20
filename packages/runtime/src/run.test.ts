import {
  FakeClock,
  type StepRow,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
} from "@cairn/core";
import type { Store } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { decodeValue } from "./codec.ts";
import { Runtime } from "./runtime.ts";

type RunFn = (event: WorkflowEvent, step: WorkflowStep) => Promise<unknown>;

/** A runtime on a real in-memory SQLite store with a fake clock, running one workflow `w`. */
async function setup(run: RunFn) {
  const store = await openSqliteStore({ path: ":memory:" });
  const clock = new FakeClock();
  class W extends WorkflowEntrypoint {
    override run(event: WorkflowEvent, step: WorkflowStep) {
      return run(event, step);
    }
  }
  const errors: unknown[] = [];
  const runtime = new Runtime({
    store,
    clock,
    workflows: [{ name: "w", class: W }],
    defaultRetryDelay: "1 second",
    log: (_message, error) => errors.push(error),
  });
  await runtime.start();
  opened.push({ runtime, store });
  const idle = () => runtime.whenIdle();
  return {
    runtime,
    store,
    clock,
    errors,
    idle,
    advance: (ms: number) => clock.advance(ms, idle),
    steps: (id: string) => store.steps.list("w", id),
    history: async (id: string) =>
      (await store.history.list("w", id)).map((e) => (e.step ? `${e.type} ${e.step.name}` : e.type)),
  };
}

const opened: { runtime: Runtime; store: Store }[] = [];
afterEach(async () => {
  for (const { runtime, store } of opened.splice(0)) {
    await runtime.close();
    await store.close();
  }
});

const summary = (rows: StepRow[]) => rows.map((r) => `${r.kind}:${r.name} ${r.status}`);

describe("InstanceRun commits each outcome before the step settles", () => {
  it("a succeeded step is stored, with its history, when its promise resolves", async () => {
    let seen: { rows: string[]; value: unknown; history: string[] } | undefined;
    const t = await setup(async (event, step) => {
      const value = await step.do("a", async () => ({ total: 41n }));
      const rows = await t.steps(event.instanceId);
      seen = {
        rows: summary(rows),
        value: decodeValue(rows[0]?.result ?? null),
        history: await t.history(event.instanceId),
      };
      return value;
    });
    const id = await t.runtime.create("w", { id: "one" });
    await t.idle();
    expect(seen).toEqual({
      rows: ["do:a succeeded"],
      value: { total: 41n },
      history: [
        "workflow_queued",
        "workflow_started",
        "workflow_running",
        "step_started a",
        "attempt_started a",
        "attempt_completed a",
        "step_completed a",
      ],
    });
    expect((await t.runtime.instance("w", id)).status).toBe("complete");
  });

  it("a step that fails for good is stored failed before its error reaches run()", async () => {
    let seen: string[] | undefined;
    const t = await setup(async (event, step) => {
      try {
        await step.do("a", { retries: { limit: 0, delay: 0 } }, async () => {
          throw new TypeError("no");
        });
      } catch (e) {
        seen = [...summary(await t.steps(event.instanceId)), (e as Error).name];
      }
    });
    await t.runtime.create("w", { id: "f" });
    await t.idle();
    expect(seen).toEqual(["do:a failed", "TypeError"]);
  });

  it("an outcome that arrives after the instance was terminated is not stored", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const t = await setup(async (_event, step) => {
      await step.do("slow", async () => {
        await gate;
        return 1;
      });
      await step.do("after", async () => 2);
    });
    const id = await t.runtime.create("w", { id: "t" });
    await t.idle();
    await t.runtime.terminate("w", id);
    release();
    await t.idle();
    expect(summary(await t.steps(id))).toEqual([]);
    expect((await t.runtime.instance("w", id)).status).toBe("terminated");
  });
});

describe("replay", () => {
  it("returns stored outcomes without calling their callbacks again", async () => {
    const calls: string[] = [];
    const runs: unknown[] = [];
    const t = await setup(async (_event, step) => {
      const map = await step.do("load", async () => {
        calls.push("load");
        return new Map([["k", new Date(5)]]);
      });
      let failure = "";
      try {
        await step.do("flaky", { retries: { limit: 0, delay: 0 } }, async () => {
          calls.push("flaky");
          throw new RangeError("out");
        });
      } catch (e) {
        failure = `${(e as Error).name}: ${(e as Error).message}`;
      }
      runs.push([map, failure]);
      await step.sleep("nap", "1 hour");
      return map.get("k");
    });
    const id = await t.runtime.create("w", { id: "r" });
    await t.idle();
    await t.advance(3_600_000);
    expect(calls).toEqual(["load", "flaky"]);
    // run() ran twice (the sleep parked it); the second time from stored outcomes only.
    expect(runs).toEqual([
      [new Map([["k", new Date(5)]]), "RangeError: out"],
      [new Map([["k", new Date(5)]]), "RangeError: out"],
    ]);
    const row = await t.runtime.instance("w", id);
    expect(row.status).toBe("complete");
    expect(decodeValue(row.output)).toEqual(new Date(5));
  });
});

describe("parking", () => {
  it("a long sleep parks the run: the instance is left to the store, waiting until the sleep ends", async () => {
    let runs = 0;
    const t = await setup(async (_event, step) => {
      runs++;
      await step.sleep("nap", "1 hour");
      await step.do("after", async () => "done");
    });
    const start = t.clock.now();
    const id = await t.runtime.create("w", { id: "p" });
    await t.idle();
    const parked = await t.runtime.instance("w", id);
    expect(parked).toMatchObject({ status: "waiting", owner: null, readyAt: start + 3_600_000 });
    expect(summary(await t.steps(id))).toEqual(["sleep:nap sleeping"]);
    expect((await t.history(id)).slice(-2)).toEqual(["sleep_started nap", "workflow_waiting"]);
    await t.advance(3_600_000);
    // Woken from the store: run() is called again and replays the sleep.
    expect(runs).toBe(2);
    expect((await t.runtime.instance("w", id)).status).toBe("complete");
    expect(t.errors).toEqual([]);
  });

  it("a short sleep keeps the run in memory: run() is called once", async () => {
    let runs = 0;
    const t = await setup(async (_event, step) => {
      runs++;
      await step.sleep("nap", "1 second");
      return "ok";
    });
    const id = await t.runtime.create("w", { id: "h" });
    await t.idle();
    expect((await t.runtime.instance("w", id)).owner).not.toBeNull();
    await t.advance(1000);
    expect(runs).toBe(1);
    expect((await t.runtime.instance("w", id)).status).toBe("complete");
  });

  it("a run parks after a failed attempt's long retry wait, so its counters came back to zero", async () => {
    let attempts = 0;
    let runs = 0;
    const t = await setup(async (_event, step) => {
      runs++;
      return step.do("a", { retries: { limit: 1, delay: "1 minute" } }, async () => {
        if (++attempts === 1) throw new Error("first");
        return attempts;
      });
    });
    const id = await t.runtime.create("w", { id: "retry" });
    await t.idle();
    expect(await t.runtime.instance("w", id)).toMatchObject({ status: "waiting", owner: null });
    expect(summary(await t.steps(id))).toEqual(["do:a retrying"]);
    await t.advance(60_000);
    expect([attempts, runs]).toEqual([2, 2]);
    expect(decodeValue((await t.runtime.instance("w", id)).output)).toBe(2);
  });

  it("an event already buffered when the wait is replayed is delivered at once", async () => {
    const t = await setup(async (_event, step) => {
      await step.sleep("first", "1 hour");
      const e = await step.waitForEvent<{ ok: boolean }>("approval", { type: "approved", timeout: "1 day" });
      return e.payload;
    });
    const id = await t.runtime.create("w", { id: "e" });
    await t.idle();
    // Sent while the instance is parked in its sleep, before the wait exists.
    await t.runtime.sendEvent("w", id, { type: "approved", payload: { ok: true } });
    await t.advance(3_600_000);
    const row = await t.runtime.instance("w", id);
    expect(row.status).toBe("complete");
    expect(decodeValue(row.output)).toEqual({ ok: true });
    expect(summary(await t.steps(id))).toEqual(["sleep:first succeeded", "waitForEvent:approval succeeded"]);
  });
});

describe("pausing", () => {
  it("a pause during a callback lets it finish and commit, starts nothing new, and parks paused", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const calls: string[] = [];
    const t = await setup(async (_event, step) => {
      await step.do("slow", async () => {
        calls.push("slow");
        await gate;
      });
      await step.do("next", async () => calls.push("next"));
    });
    const id = await t.runtime.create("w", { id: "pause" });
    await t.idle();
    await t.runtime.pause("w", id);
    expect((await t.runtime.instance("w", id)).status).toBe("waitingForPause");
    release();
    await t.idle();
    expect(calls).toEqual(["slow"]);
    expect(summary(await t.steps(id))).toEqual(["do:slow succeeded"]);
    expect(await t.runtime.instance("w", id)).toMatchObject({ status: "paused", owner: null });
    const history = await t.history(id);
    expect(history.slice(-2)).toEqual(["step_completed slow", "workflow_paused"]);
    expect(history.indexOf("workflow_waiting_for_pause")).toBeLessThan(
      history.indexOf("step_completed slow"),
    );
    await t.runtime.resume("w", id);
    await t.idle();
    expect(calls).toEqual(["slow", "next"]);
    expect((await t.runtime.instance("w", id)).status).toBe("complete");
  });
});

describe("restart from a step", () => {
  it("keeps exactly the earlier steps: their callbacks do not run again, the rest do", async () => {
    const calls: string[] = [];
    const t = await setup(async (_event, step) => {
      for (const name of ["a", "b", "c"]) await step.do(name, async () => calls.push(name));
    });
    const id = await t.runtime.create("w", { id: "rs" });
    await t.idle();
    const before = (await t.steps(id)).find((s) => s.name === "a");
    await t.runtime.restart("w", id, { from: { name: "b" } });
    await t.idle();
    expect(calls).toEqual(["a", "b", "c", "b", "c"]);
    const after = await t.steps(id);
    // The kept step is the stored one, untouched.
    expect(after.find((s) => s.name === "a")).toEqual(before);
    expect(summary(after).sort()).toEqual(["do:a succeeded", "do:b succeeded", "do:c succeeded"]);
    expect((await t.runtime.instance("w", id)).status).toBe("complete");
  });
});
