import { NonRetryableError, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { describe, expect, test } from "vitest";
import { setup } from "./support.ts";

describe("retries", () => {
  for (const [backoff, expected] of [
    ["constant", [1000, 1000, 1000]],
    ["linear", [1000, 2000, 3000]],
    ["exponential", [1000, 2000, 4000]],
  ] as const) {
    test(`limit 3 makes exactly 4 attempts with ${backoff} waits`, async () => {
      const attempts: { attempt: number; at: number }[] = [];
      class Flaky extends WorkflowEntrypoint {
        async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
          return step.do("flaky", { retries: { limit: 3, delay: "1 second", backoff } }, async (ctx) => {
            attempts.push({ attempt: ctx.attempt, at: t.clock.now() });
            throw new Error(`failure ${ctx.attempt}`);
          });
        }
      }
      const t = await setup(Flaky, { hotWaitThreshold: "1 minute" });
      const inst = await t.W.create({ id: "a" });
      await t.idle();
      expect((await inst.status()).status).toBe("waiting"); // in retry backoff
      await t.advance(60_000);
      expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
      const waits = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
      expect(waits).toEqual(expected);
      expect(await inst.status()).toEqual({
        status: "errored",
        error: { name: "Error", message: "failure 4" },
      });
      await t.cairn.close();
    });
  }

  test("retry waits longer than the hot threshold unload the instance and still happen on time", async () => {
    const seen: number[] = [];
    class Slow extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("s", { retries: { limit: 2, delay: "1 hour", backoff: "constant" } }, async (ctx) => {
          seen.push(t.clock.now());
          if (ctx.attempt < 3) throw new Error("not yet");
          return ctx.attempt;
        });
      }
    }
    const t = await setup(Slow, { hotWaitThreshold: "1 second" });
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(3_600_000 - 1);
    expect(seen).toHaveLength(1);
    await t.advance(1);
    expect(seen).toHaveLength(2);
    await t.advance(3_600_000);
    expect(await inst.status()).toEqual({ status: "complete", output: 3 });
    expect(seen.map((s) => s - seen[0]!)).toEqual([0, 3_600_000, 7_200_000]);
    await t.cairn.close();
  });

  test("NonRetryableError stops after one attempt and errors the instance with its name and message", async () => {
    let calls = 0;
    class Fatal extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("fatal", async () => {
          calls++;
          throw new NonRetryableError("card declined");
        });
      }
    }
    const t = await setup(Fatal);
    const inst = await t.W.create({ id: "a" });
    await t.advance(60_000);
    expect(calls).toBe(1);
    expect(await inst.status()).toEqual({
      status: "errored",
      error: { name: "NonRetryableError", message: "card declined" },
    });
    expect(await t.history("a")).toEqual([
      "workflow_queued",
      "workflow_started",
      "workflow_running",
      "step_started fatal-1",
      "attempt_started fatal-1",
      "attempt_errored fatal-1",
      "step_errored fatal-1",
      "workflow_errored",
    ]);
    await t.cairn.close();
  });

  test("an error whose message starts with NonRetryableError is not retried either", async () => {
    let calls = 0;
    class Flattened extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("x", async () => {
          calls++;
          throw new Error("NonRetryableError: flattened");
        });
      }
    }
    const t = await setup(Flattened);
    const inst = await t.W.create({ id: "a" });
    await t.advance(60_000);
    expect(calls).toBe(1);
    expect((await inst.status()).status).toBe("errored");
    await t.cairn.close();
  });

  test("NonRetryableError and exhausted retries can be caught in run()", async () => {
    class Catching extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const caught: string[] = [];
        try {
          await step.do("fatal", async () => {
            throw new NonRetryableError("nope");
          });
        } catch (e) {
          caught.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
        try {
          await step.do("flaky", { retries: { limit: 1, delay: 10 } }, async () => {
            throw new TypeError("bad");
          });
        } catch (e) {
          caught.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
        return caught;
      }
    }
    const t = await setup(Catching);
    const inst = await t.W.create({ id: "a" });
    await t.advance(1000);
    expect(await inst.status()).toEqual({
      status: "complete",
      output: ["NonRetryableError: nope", "TypeError: bad"],
    });
    await t.cairn.close();
  });

  test("a step that times out is retried, and timeouts are per attempt", async () => {
    const starts: number[] = [];
    class Hanging extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do(
          "hang",
          { timeout: "5 seconds", retries: { limit: 2, delay: "1 second", backoff: "constant" } },
          async (ctx) => {
            starts.push(t.clock.now());
            if (ctx.attempt < 3) return new Promise(() => {});
            return "finally";
          },
        );
      }
    }
    const t = await setup(Hanging, { hotWaitThreshold: "1 minute" });
    const inst = await t.W.create({ id: "a" });
    await t.advance(60_000);
    expect(await inst.status()).toEqual({ status: "complete", output: "finally" });
    expect(starts.map((s) => s - starts[0]!)).toEqual([0, 6000, 12000]);
    const history = await t.cairn.store.history.list("w", "a");
    const errors = history
      .filter((h) => h.type === "attempt_errored")
      .map((h) => (h.data!.error as { name: string }).name);
    expect(errors).toEqual(["WorkflowTimeoutError", "WorkflowTimeoutError"]);
    await t.cairn.close();
  });

  test("a failing step caught in run() does not fail the instance", async () => {
    class Tolerant extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const r = await step
          .do("risky", { retries: { limit: 0, delay: 0 } }, async () => {
            throw new Error("boom");
          })
          .catch(() => "fallback");
        return step.do("after", async () => `${r} then after`);
      }
    }
    const t = await setup(Tolerant);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "fallback then after" });
    await t.cairn.close();
  });

  test("ctx carries the step name, count, attempt and the resolved config", async () => {
    const contexts: unknown[] = [];
    class Ctx extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("c", { retries: { limit: 2, delay: 5 } }, async (ctx) => {
          contexts.push(structuredClone(ctx));
          if (ctx.attempt < 3) throw new Error("again");
        });
        await step.do("c", async (ctx) => {
          contexts.push(structuredClone(ctx));
        });
      }
    }
    const t = await setup(Ctx);
    await t.W.create({ id: "a" });
    await t.advance(1000);
    expect(contexts).toEqual([
      {
        step: { name: "c", count: 1 },
        attempt: 1,
        config: { retries: { limit: 2, delay: 5, backoff: "exponential" }, timeout: "10 minutes" },
      },
      {
        step: { name: "c", count: 1 },
        attempt: 2,
        config: { retries: { limit: 2, delay: 5, backoff: "exponential" }, timeout: "10 minutes" },
      },
      {
        step: { name: "c", count: 1 },
        attempt: 3,
        config: { retries: { limit: 2, delay: 5, backoff: "exponential" }, timeout: "10 minutes" },
      },
      {
        step: { name: "c", count: 2 },
        attempt: 1,
        config: { retries: { limit: 5, delay: "1 second", backoff: "exponential" }, timeout: "10 minutes" },
      },
    ]);
    await t.cairn.close();
  });

  test("mutating ctx.config does not change the retry policy", async () => {
    const attempts: number[] = [];
    class Mutator extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("m", { retries: { limit: 1, delay: 10, backoff: "constant" } }, async (ctx) => {
          attempts.push(ctx.attempt);
          ctx.config.retries.limit = 100;
          ctx.config.retries.delay = 0;
          throw new Error("always");
        });
      }
    }
    const t = await setup(Mutator);
    const inst = await t.W.create({ id: "a" });
    await t.advance(10_000);
    expect(attempts).toEqual([1, 2]);
    expect((await inst.status()).status).toBe("errored");
    await t.cairn.close();
  });

  test("config is frozen at the first attempt: a replay with other config keeps the stored one", async () => {
    let limit = 1;
    const attempts: number[] = [];
    class Changing extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("f", { retries: { limit, delay: "1 hour", backoff: "constant" } }, async (ctx) => {
          attempts.push(ctx.attempt);
          throw new Error("no");
        });
      }
    }
    const t = await setup(Changing, { hotWaitThreshold: "1 second" });
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    limit = 10; // the replay after the backoff sees a different config
    await t.advance(10 * 3_600_000);
    expect(attempts).toEqual([1, 2]);
    expect((await inst.status()).status).toBe("errored");
    await t.cairn.close();
  });
});
