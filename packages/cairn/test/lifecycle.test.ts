import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { describe, expect, test } from "vitest";
import { deferred, expectCode, setup } from "./support.ts";

describe("pause and resume", () => {
  test("pause during a step waits for it, then no further step runs until resume", async () => {
    const gate = deferred();
    const ran: string[] = [];
    class Steps extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("slow", async () => {
          ran.push("slow");
          await gate.promise;
        });
        await step.do("next", async () => ran.push("next"));
        return ran.length;
      }
    }
    const t = await setup(Steps);
    const inst = await t.W.create({ id: "p" });
    await t.idle();
    await inst.pause();
    expect((await inst.status()).status).toBe("waitingForPause");
    gate.resolve();
    await t.idle();
    expect((await inst.status()).status).toBe("paused");
    expect(ran).toEqual(["slow"]);
    expect((await t.cairn.store.steps.get("w", "p", "do", "slow", 1))?.status).toBe("succeeded");
    await inst.resume();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: 2 });
    expect(ran).toEqual(["slow", "next"]);
    const h = await t.history("p");
    expect(h).toContain("workflow_waiting_for_pause");
    expect(h).toContain("workflow_paused");
  });

  test("pause of concurrent steps waits for all of them", async () => {
    const gates = [deferred(), deferred()];
    class Both extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await Promise.all(gates.map((g, i) => step.do(`s${i}`, () => g.promise)));
        return "done";
      }
    }
    const t = await setup(Both);
    const inst = await t.W.create({ id: "p" });
    await t.idle();
    await inst.pause();
    gates[0]!.resolve();
    await t.idle();
    expect((await inst.status()).status).toBe("waitingForPause");
    gates[1]!.resolve();
    await t.idle();
    expect((await inst.status()).status).toBe("paused");
    await inst.resume();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "done" });
  });

  test("pause during a sleep, then resume: the sleep ends later by the paused time", async () => {
    class Sleeps extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.sleep("nap", "10 hours");
        return "woke";
      }
    }
    const t = await setup(Sleeps);
    const inst = await t.W.create({ id: "p" });
    await t.advance(4 * 3_600_000);
    await inst.pause();
    expect((await inst.status()).status).toBe("paused");
    await t.advance(24 * 3_600_000); // paused for a day
    expect((await inst.status()).status).toBe("paused");
    await inst.resume();
    await t.idle();
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(6 * 3_600_000 - 1);
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(1);
    expect(await inst.status()).toEqual({ status: "complete", output: "woke" });
  });

  test("pause during a short in-memory sleep, then resume, also completes", async () => {
    class Short extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.sleep("blink", "2 seconds");
        return "ok";
      }
    }
    const t = await setup(Short, { hotWaitThreshold: "1 minute" });
    const inst = await t.W.create({ id: "p" });
    await t.idle();
    await inst.pause();
    await t.idle();
    expect((await inst.status()).status).toBe("paused");
    await t.advance(10_000);
    expect((await inst.status()).status).toBe("paused");
    await inst.resume();
    await t.advance(1999);
    expect((await inst.status()).status).not.toBe("complete");
    await t.advance(1);
    expect(await inst.status()).toEqual({ status: "complete", output: "ok" });
  });

  test("pause while waiting for an event, then resume: the timeout moves and events still arrive", async () => {
    class Waits extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return (await step.waitForEvent("w", { type: "go", timeout: "1 hour" })).payload;
      }
    }
    const t = await setup(Waits);
    const inst = await t.W.create({ id: "p" });
    await t.advance(30 * 60_000);
    await inst.pause();
    expect((await inst.status()).status).toBe("paused");
    await t.advance(2 * 3_600_000);
    await inst.sendEvent({ type: "go", payload: "buffered while paused" });
    await t.idle();
    expect((await inst.status()).status).toBe("paused");
    await inst.resume();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "buffered while paused" });
  });

  test("a paused wait times out only after the remaining time once resumed", async () => {
    class Waits extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return (await step.waitForEvent("w", { type: "go", timeout: "1 hour" })).payload;
      }
    }
    const t = await setup(Waits);
    const inst = await t.W.create({ id: "p" });
    await t.advance(30 * 60_000);
    await inst.pause();
    await t.advance(5 * 3_600_000);
    await inst.resume();
    await t.advance(30 * 60_000 - 1);
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(1);
    expect((await inst.status()).status).toBe("errored");
  });

  test("resume during waitingForPause cancels the pause", async () => {
    const gate = deferred();
    class Steps extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("slow", () => gate.promise);
        return step.do("next", async () => "next ran");
      }
    }
    const t = await setup(Steps);
    const inst = await t.W.create({ id: "p" });
    await t.idle();
    await inst.pause();
    expect((await inst.status()).status).toBe("waitingForPause");
    await inst.resume();
    expect((await inst.status()).status).toBe("running");
    gate.resolve();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "next ran" });
  });

  test("a queued instance can be paused and resumed; resume of a running one does nothing", async () => {
    class One extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("x", async () => "x");
      }
    }
    const t = await setup(One, { maxConcurrent: 1 });
    const gate = deferred();
    class Blocker extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("block", () => gate.promise);
      }
    }
    await t.cairn.close();
    const t2 = await setup(One, {
      maxConcurrent: 1,
      workflows: [
        { binding: "W", name: "w", class: One },
        { binding: "B", name: "b", class: Blocker },
      ],
    });
    const blocker = await (t2.cairn.env.B as typeof t2.W).create({ id: "blocker" });
    const inst = await t2.W.create({ id: "q" });
    await t2.idle();
    expect((await inst.status()).status).toBe("queued");
    await inst.pause();
    expect((await inst.status()).status).toBe("paused");
    await blocker.resume(); // running: no effect
    expect((await blocker.status()).status).toBe("running");
    gate.resolve();
    await t2.idle();
    expect((await inst.status()).status).toBe("paused");
    await inst.resume();
    await t2.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "x" });
  });
});

describe("terminate", () => {
  test("terminate stops a running instance; its in-flight step outcome is not stored", async () => {
    const gate = deferred();
    class Steps extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("slow", () => gate.promise.then(() => "late"));
        return "never";
      }
    }
    const t = await setup(Steps);
    const inst = await t.W.create({ id: "t" });
    await t.idle();
    await inst.terminate();
    gate.resolve();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "terminated" });
    expect(await t.cairn.store.steps.get("w", "t", "do", "slow", 1)).toBeUndefined();
    expect((await t.history("t")).at(-1)).toBe("workflow_terminated");
  });

  test("terminate works on queued, waiting and paused instances and fails on final ones", async () => {
    class Sleeps extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.sleep("s", "1 day");
        throw new Error("fails after sleeping");
      }
    }
    const t = await setup(Sleeps);
    const waiting = await t.W.create({ id: "waiting" });
    const paused = await t.W.create({ id: "paused" });
    const errored = await t.W.create({ id: "errored" });
    await t.idle();
    await paused.pause();
    await waiting.terminate();
    await paused.terminate();
    expect((await waiting.status()).status).toBe("terminated");
    expect((await paused.status()).status).toBe("terminated");
    await t.advance(86_400_000);
    expect((await errored.status()).status).toBe("errored");
    for (const inst of [waiting, paused, errored]) {
      const e = await expectCode(inst.terminate(), "instance.cannot_terminate");
      expect(e.message).toMatch(
        /^\(instance\.cannot_terminate\) Cannot terminate instance since its on a finite state/,
      );
    }
    await expectCode(waiting.pause(), "instance.cannot_pause");
  });
});

describe("restart", () => {
  const calls: string[] = [];
  let cFailures = 0;
  class Three extends WorkflowEntrypoint {
    async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
      const a = await step.do("a", async () => {
        calls.push("a");
        return "A";
      });
      await step.sleep("a", "1 hour");
      const b = await step.do("b", async () => {
        calls.push("b");
        return "B";
      });
      const c = await step.do("c", async () => {
        calls.push("c");
        if (cFailures++ === 0) throw new Error("c fails the first time");
        return "C";
      });
      return a + b + c;
    }
  }

  for (const state of ["complete", "terminated", "running", "paused", "waiting"] as const) {
    test(`restart from ${state} runs the instance again from the top`, async () => {
      calls.length = 0;
      cFailures = 1;
      const t = await setup(Three, { defaultRetryDelay: 0 });
      const inst = await t.W.create({ id: "r" });
      await t.idle();
      if (state === "complete") await t.advance(3_600_000);
      if (state === "terminated") await inst.terminate();
      if (state === "paused") await inst.pause();
      const before = (await inst.status()).status;
      expect(before).toBe(state === "running" ? "waiting" : state);
      calls.length = 0;
      await inst.restart();
      expect((await inst.status()).status).toMatch(/queued|running/);
      await t.advance(3_600_000);
      expect(calls).toEqual(["a", "b", "c"]);
      expect(await inst.status()).toEqual({ status: "complete", output: "ABC" });
      const h = await t.history("r");
      expect(h[0]).toBe("workflow_queued");
      expect(h.filter((x) => x === "workflow_started")).toHaveLength(1);
    });
  }

  test("restart of a running instance with a step in flight discards that step", async () => {
    const gate = deferred();
    let runs = 0;
    class Slow extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        runs++;
        const r = runs;
        return step.do("slow", async () => {
          if (r === 1) await gate.promise;
          return `run ${r}`;
        });
      }
    }
    const t = await setup(Slow);
    const inst = await t.W.create({ id: "r" });
    await t.idle();
    expect((await inst.status()).status).toBe("running");
    await inst.restart();
    await t.idle();
    gate.resolve();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "run 2" });
  });

  test("restart from an errored instance", async () => {
    class Fails extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("f", { retries: { limit: 0, delay: 0 } }, async () => {
          calls.push("f");
          if (calls.length === 1) throw new Error("first time");
          return "second time";
        });
      }
    }
    calls.length = 0;
    const t = await setup(Fails);
    const inst = await t.W.create({ id: "r" });
    await t.idle();
    expect((await inst.status()).status).toBe("errored");
    await inst.restart();
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "second time" });
  });

  test("restart from a named step keeps results of earlier steps and re-runs the rest", async () => {
    calls.length = 0;
    cFailures = 0;
    const t = await setup(Three, { defaultRetryDelay: 0 });
    const inst = await t.W.create({ id: "r" });
    await t.advance(3_600_000);
    expect(await inst.status()).toEqual({ status: "complete", output: "ABC" });
    expect(calls).toEqual(["a", "b", "c", "c"]);
    calls.length = 0;
    await inst.restart({ from: { name: "b" } });
    await t.idle();
    expect(calls).toEqual(["b", "c"]);
    expect(await inst.status()).toEqual({ status: "complete", output: "ABC" });
    // the sleep named "a" started before b: kept, so no new hour of waiting was needed
    calls.length = 0;
    await inst.restart({ from: { name: "a", type: "sleep" } });
    await t.idle();
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(3_600_000);
    expect(calls).toEqual(["b", "c"]);
  });

  test("restart from an unknown step fails with instance.cannot_restart and changes nothing", async () => {
    calls.length = 0;
    cFailures = 1;
    const t = await setup(Three, { defaultRetryDelay: 0 });
    const inst = await t.W.create({ id: "r" });
    await t.advance(3_600_000);
    const e = await expectCode(inst.restart({ from: { name: "nope" } }), "instance.cannot_restart");
    expect(e.message).toBe('(instance.cannot_restart) Step "nope" not found in execution history');
    await expectCode(inst.restart({ from: { name: "b", count: 2 } }), "instance.cannot_restart");
    await expectCode(inst.restart({ from: { name: "b", type: "sleep" } }), "instance.cannot_restart");
    expect(await inst.status()).toEqual({ status: "complete", output: "ABC" });
  });
});

describe("instances", () => {
  class Noop extends WorkflowEntrypoint {
    async run() {
      return "ok";
    }
  }

  test("create with a taken id fails with instance.already_exists; createBatch skips taken ids", async () => {
    const t = await setup(Noop);
    await t.W.create({ id: "one" });
    await expectCode(t.W.create({ id: "one" }), "instance.already_exists");
    const created = await t.W.createBatch([
      { id: "one" },
      { id: "two" },
      { id: "two" },
      { id: "three", params: { x: 1 } },
    ]);
    expect(created.map((i) => i.id)).toEqual(["two", "three"]);
    await t.idle();
    expect((await (await t.W.get("three")).status()).status).toBe("complete");
  });

  test("ids are random UUIDs by default; get of an unknown id fails with instance.not_found", async () => {
    const t = await setup(Noop);
    const inst = await t.W.create();
    expect(inst.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const e = await expectCode(t.W.get("nobody"), "instance.not_found");
    // Cloudflare's message, which its own fixtures compare: `e.message === "instance.not_found"`.
    expect(e.message).toBe("instance.not_found");
    expect(e.name).toBe("WorkflowError");
    expect((e as { text?: string }).text).toBe('Instance "nobody" not found in workflow "w"');
    // A handle whose instance went away fails the same way.
    await (await t.W.get(inst.id)).delete();
    await expect(inst.status()).rejects.toMatchObject({ message: "instance.not_found" });
  });

  test("delete and deleteBatch remove instances and report missing ones", async () => {
    const t = await setup(Noop);
    await t.W.createBatch([{ id: "a" }, { id: "b" }, { id: "c" }]);
    await t.idle();
    await (await t.W.get("a")).delete();
    await expectCode(t.W.get("a"), "instance.not_found");
    expect(await t.W.deleteBatch(["b", "b", "zz"])).toEqual({
      deleted: [{ id: "b" }, { id: "b" }],
      errors: [{ id: "zz", code: 10400, message: "workflows.api.error.instance.not_found" }],
    });
    await expectCode(t.W.deleteBatch([]), "body");
    await expectCode(t.W.deleteBatch(Array.from({ length: 101 }, (_, i) => `i${i}`)), "body");
    expect(await t.cairn.store.history.list("w", "b")).toEqual([]);
  });
});
