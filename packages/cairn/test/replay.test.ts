import { createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { afterEach, describe, expect, test } from "vitest";
import { deferred, setup, tempDir } from "./support.ts";

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("replay", () => {
  test("a completed step's callback never runs again after the instance is unloaded", async () => {
    const calls: string[] = [];
    class Sleeper extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const a = await step.do("a", async () => {
          calls.push("a");
          return { at: "first run", n: 1n, when: new Date(5), m: new Map([[1, "x"]]) };
        });
        await step.sleep("long", "2 days");
        const b = await step.do("b", async () => {
          calls.push("b");
          return a.n + 1n;
        });
        return { a, b };
      }
    }
    const t = await setup(Sleeper);
    const inst = await t.W.create({ id: "r" });
    await t.idle();
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(2 * 86_400_000);
    expect(calls).toEqual(["a", "b"]);
    expect(await inst.status()).toEqual({
      status: "complete",
      output: { a: { at: "first run", n: 1n, when: new Date(5), m: new Map([[1, "x"]]) }, b: 2n },
    });
    await t.cairn.close();
  });

  test("a completed step's callback never runs again after the process stops and the store is reopened", async () => {
    const { file, cleanup } = tempDir();
    cleanups.push(cleanup);
    const calls: string[] = [];
    const gate = deferred();
    class TwoSteps extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const a = await step.do("a", async () => {
          calls.push("a");
          return "A";
        });
        const b = await step.do("b", async () => {
          calls.push("b");
          await gate.promise;
          return "B";
        });
        return a + b;
      }
    }
    const workflows = [{ binding: "W", name: "w", class: TwoSteps }];
    const first = await createCairn({ store: file, workflows });
    await (first.env.W as any).create({ id: "x" });
    while (calls.length < 2) await new Promise((r) => setTimeout(r, 1));
    await first.close(); // b is in flight: its outcome must not be kept
    gate.resolve();
    const second = await createCairn({ store: file, workflows });
    cleanups.push(() => second.close());
    const inst = await (second.env.W as any).get("x");
    for (let i = 0; i < 200 && (await inst.status()).status !== "complete"; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(await inst.status()).toEqual({ status: "complete", output: "AB" });
    expect(calls).toEqual(["a", "b", "b"]);
  });

  test("a permanently failed step rethrows its stored error on replay without running", async () => {
    let calls = 0;
    const seen: string[] = [];
    class FailThenSleep extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        try {
          await step.do("bad", { retries: { limit: 0, delay: 0 } }, async () => {
            calls++;
            throw new RangeError("out of range");
          });
        } catch (e) {
          seen.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
        await step.sleep("wait", "1 day");
        return seen.length;
      }
    }
    const t = await setup(FailThenSleep);
    const inst = await t.W.create({ id: "f" });
    await t.advance(86_400_000);
    expect(calls).toBe(1);
    expect(seen).toEqual(["RangeError: out of range", "RangeError: out of range"]);
    expect(await inst.status()).toEqual({ status: "complete", output: 2 });
    await t.cairn.close();
  });

  test("duplicate step names get counts 1, 2, 3 and each keeps its own result", async () => {
    class Loop extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const out: unknown[] = [];
        for (let i = 0; i < 3; i++)
          out.push(await step.do("same", async (ctx) => `${ctx.step.name}#${ctx.step.count}`));
        await step.sleep("same", "1 day"); // another kind: its own counter
        out.push(await step.do("same", async (ctx) => ctx.step.count));
        return out;
      }
    }
    const t = await setup(Loop);
    const inst = await t.W.create({ id: "d" });
    await t.advance(86_400_000);
    expect(await inst.status()).toEqual({ status: "complete", output: ["same#1", "same#2", "same#3", 4] });
    const steps = await t.cairn.store.steps.list("w", "d");
    expect(steps.map((s) => `${s.kind}:${s.name}-${s.count}`).sort()).toEqual([
      "do:same-1",
      "do:same-2",
      "do:same-3",
      "do:same-4",
      "sleep:same-1",
    ]);
    await t.cairn.close();
  });

  test("steps in Promise.all run concurrently and replay correctly", async () => {
    const started: string[] = [];
    const release = deferred();
    let runs = 0;
    class Parallel extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        runs++;
        const [a, b, c] = await Promise.all(
          ["a", "b", "c"].map((n) =>
            step.do(n, async () => {
              started.push(n);
              await release.promise;
              return n.toUpperCase();
            }),
          ),
        );
        await step.sleep("pause", "1 hour");
        return `${a}${b}${c}`;
      }
    }
    const t = await setup(Parallel);
    const inst = await t.W.create({ id: "p" });
    await t.idle();
    expect(started).toEqual(["a", "b", "c"]); // all three started before any finished
    expect((await inst.status()).status).toBe("running");
    release.resolve();
    await t.idle();
    await t.advance(3_600_000);
    expect(runs).toBe(2);
    expect(started).toEqual(["a", "b", "c"]);
    expect(await inst.status()).toEqual({ status: "complete", output: "ABC" });
    await t.cairn.close();
  });

  test("the workflow receives its params, id, name and creation time", async () => {
    class Echo extends WorkflowEntrypoint {
      async run(event: WorkflowEvent<{ x: number }>, _step: WorkflowStep) {
        return {
          payload: event.payload,
          id: event.instanceId,
          name: event.workflowName,
          ts: event.timestamp,
        };
      }
    }
    const t = await setup(Echo);
    const created = t.clock.now();
    const inst = await t.W.create({ id: "e", params: { x: 1 } });
    await t.idle();
    expect(await inst.status()).toEqual({
      status: "complete",
      output: { payload: { x: 1 }, id: "e", name: "w", ts: new Date(created) },
    });
    await t.cairn.close();
  });

  test("this.env holds the workflow bindings and the configured env", async () => {
    class Env extends WorkflowEntrypoint<{ API_KEY: string; W: unknown }> {
      async run(_event: WorkflowEvent<unknown>, _step: WorkflowStep) {
        return { key: this.env.API_KEY, hasBinding: typeof (this.env.W as { create?: unknown }).create };
      }
    }
    const t = await setup(Env, { env: { API_KEY: "k" } });
    const inst = await t.W.create({ id: "e" });
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: { key: "k", hasBinding: "function" } });
    await t.cairn.close();
  });

  test("an error thrown by run() outside steps errors the instance", async () => {
    class Thrower extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("ok", async () => 1);
        throw new SyntaxError("broken");
      }
    }
    const t = await setup(Thrower);
    const inst = await t.W.create({ id: "e" });
    await t.idle();
    expect(await inst.status()).toEqual({
      status: "errored",
      error: { name: "SyntaxError", message: "broken" },
    });
    await t.cairn.close();
  });

  test("a step callback that runs for a while is stored as running, with its start entries written once", async () => {
    const gate = deferred();
    class Slow extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("slow", () => gate.promise.then(() => "done"));
      }
    }
    const t = await setup(Slow);
    const inst = await t.W.create({ id: "v" });
    await t.idle();
    expect(await t.cairn.store.steps.get("w", "v", "do", "slow", 1)).toBeUndefined();
    await t.advance(300);
    const running = await t.cairn.store.steps.get("w", "v", "do", "slow", 1);
    expect(running).toMatchObject({ status: "running", attempts: 1, result: null });
    expect((await t.history("v")).filter((h) => h.endsWith("slow-1"))).toEqual([
      "step_started slow-1",
      "attempt_started slow-1",
    ]);
    gate.resolve();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "done" });
    expect((await t.history("v")).filter((h) => h.endsWith("slow-1"))).toEqual([
      "step_started slow-1",
      "attempt_started slow-1",
      "attempt_completed slow-1",
      "step_completed slow-1",
    ]);
    await t.cairn.close();
  });
});
