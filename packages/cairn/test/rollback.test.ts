import { NonRetryableError, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { describe, expect, test } from "vitest";
import { deferred, expectCode, setup } from "./support.ts";

/** Rollbacks (saga compensation), SPEC §9.1. */
describe("rollbacks", () => {
  test("three steps roll back in reverse start order; the failing step's handler gets no output and the trigger error", async () => {
    const calls: { step: string; output: unknown; error: string; stepName: string; attempt: number }[] = [];
    const record =
      (step: string) =>
      async ({
        output,
        error,
        stepName,
        ctx,
      }: {
        output: unknown;
        error: Error;
        stepName: string;
        ctx: any;
      }) => {
        calls.push({ step, output, error: error.message, stepName, attempt: ctx.attempt });
      };
    class Trip extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("flight", async () => ({ seat: "12A" }), { rollback: record("flight") });
        await step.do("hotel", async () => "room 7", { rollback: record("hotel") });
        await step.do("plain", async () => 1);
        await step.do(
          "car",
          { retries: { limit: 0, delay: 1 } },
          async () => {
            throw new Error("no cars left");
          },
          { rollback: record("car") },
        );
      }
    }
    const t = await setup(Trip);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    expect(calls).toEqual([
      { step: "car", output: undefined, error: "no cars left", stepName: "car-1", attempt: 1 },
      { step: "hotel", output: "room 7", error: "no cars left", stepName: "hotel-1", attempt: 1 },
      { step: "flight", output: { seat: "12A" }, error: "no cars left", stepName: "flight-1", attempt: 1 },
    ]);
    expect(await inst.status()).toEqual({
      status: "errored",
      error: { name: "Error", message: "no cars left" },
    });
    const row = await t.cairn.store.instances.get("w", "a");
    expect(row?.rollback).toMatchObject({ trigger: "error", outcome: "complete", totalSteps: 3 });
    const h = await t.history("a");
    expect(h.slice(h.indexOf("rollback_started"))).toEqual([
      "rollback_started",
      "rollback_step_started car-1",
      "rollback_attempt_started car-1",
      "rollback_attempt_completed car-1",
      "rollback_step_completed car-1",
      "rollback_step_started hotel-1",
      "rollback_attempt_started hotel-1",
      "rollback_attempt_completed hotel-1",
      "rollback_step_completed hotel-1",
      "rollback_step_started flight-1",
      "rollback_attempt_started flight-1",
      "rollback_attempt_completed flight-1",
      "rollback_step_completed flight-1",
      "rollback_completed",
      "workflow_errored",
    ]);
    const stored = await t.cairn.store.steps.list("w", "a");
    expect(stored.filter((s) => s.kind === "rollback").map((s) => [s.name, s.status])).toEqual([
      ["flight", "succeeded"],
      ["hotel", "succeeded"],
      ["car", "succeeded"],
    ]);
    await t.cairn.close();
  });

  test("a stream step's rollback gets a new stream over its stored chunk rows", async () => {
    const seen: number[] = [];
    class Upload extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do(
          "upload",
          async () =>
            new ReadableStream<Uint8Array>({
              start(c) {
                c.enqueue(new Uint8Array(300 * 1024).fill(3));
                c.close();
              },
            }) as never,
          {
            rollback: async ({ output }: { output: unknown }) => {
              let n = 0;
              for await (const chunk of output as ReadableStream<Uint8Array>)
                n += (chunk as Uint8Array).filter((b) => b === 3).length;
              seen.push(n);
            },
          },
        );
        throw new NonRetryableError("after the upload");
      }
    }
    const t = await setup(Upload);
    await t.W.create({ id: "a" });
    await t.idle();
    expect((await (await t.W.get("a")).status()).status).toBe("errored");
    expect(seen).toEqual([300 * 1024]);
    await t.cairn.close();
  });

  test("two Promise.all steps roll back in reverse start order", async () => {
    const order: string[] = [];
    class Parallel extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const rb = (name: string) => ({ rollback: async () => void order.push(name) });
        await Promise.all([
          step.do("left", async () => "l", rb("left")),
          step.do("right", async () => "r", rb("right")),
        ]);
        throw new Error("after both");
      }
    }
    const t = await setup(Parallel);
    await t.W.create({ id: "a" });
    await t.idle();
    expect(order).toEqual(["right", "left"]);
    await t.cairn.close();
  });

  test("a rollback that fails for good stops the chain; rollbackConfig.retries governs its attempts", async () => {
    const attempts: { attempt: number; at: number }[] = [];
    let earlier = 0;
    class Chain extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("first", async () => 1, { rollback: async () => void earlier++ });
        await step.do("second", async () => 2, {
          rollback: async ({ ctx }) => {
            attempts.push({ attempt: ctx.attempt, at: t.clock.now() });
            throw new Error("cannot undo");
          },
          rollbackConfig: {
            retries: { limit: 2, delay: "1 second", backoff: "linear" },
            timeout: "1 minute",
          },
        });
        throw new NonRetryableError("stop");
      }
    }
    const t = await setup(Chain, { hotWaitThreshold: "1 minute" });
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    expect((await inst.status()).status).toBe("running"); // the binding has no rollingBack
    await t.advance(10_000);
    // limit 2: three attempts, waits 1 s then 2 s (linear).
    expect(attempts.length).toBe(3);
    expect(attempts.slice(1).map((a, i) => a.at - attempts[i]!.at)).toEqual([1000, 2000]);
    expect(earlier).toBe(0);
    expect(await inst.status()).toEqual({
      status: "errored",
      error: { name: "NonRetryableError", message: "stop" },
    });
    const row = await t.cairn.store.instances.get("w", "a");
    expect(row?.rollback).toMatchObject({
      outcome: "failed",
      error: { name: "Error", message: "cannot undo" },
    });
    const h = await t.history("a");
    expect(h).toContain("rollback_errored");
    expect(h).not.toContain("rollback_step_started first-1");
    await t.cairn.close();
  });

  test("terminate({ rollback: true }) compensates, then ends terminated; plain terminate runs none", async () => {
    const undone: string[] = [];
    class Booking extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("seat", async () => ({ seatId: 4 }), {
          rollback: async ({ output, error }) => void undone.push(`${(output as any).seatId}:${error.name}`),
        });
        await step.waitForEvent("approval", { type: "approved", timeout: "1 hour" });
      }
    }
    const t = await setup(Booking);
    const a = await t.W.create({ id: "a" });
    const b = await t.W.create({ id: "b" });
    await t.idle();
    await a.terminate({ rollback: true });
    await t.idle();
    expect(undone).toEqual(["4:WorkflowTerminatedError"]);
    expect(await a.status()).toEqual({ status: "terminated" });
    expect((await t.cairn.store.instances.get("w", "a"))?.rollback).toMatchObject({
      trigger: "terminate",
      outcome: "complete",
    });
    expect((await t.history("a")).slice(-2)).toEqual(["rollback_completed", "workflow_terminated"]);
    await b.terminate();
    await t.idle();
    expect(undone).toHaveLength(1);
    expect(await b.status()).toEqual({ status: "terminated" });
    await expectCode(a.terminate({ rollback: true }), "instance.cannot_terminate");
    await expect(b.terminate({ rollback: "yes" } as never)).rejects.toThrow(
      "terminate options must be { rollback?: boolean }",
    );
    await t.cairn.close();
  });

  test("a step with no stored outcome never runs during the phase", async () => {
    const slow = deferred<string>();
    const ran: string[] = [];
    const undone: string[] = [];
    class Branches extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const rb = (name: string) => ({ rollback: async () => void undone.push(name) });
        await Promise.all([
          step.do(
            "fails",
            async () => {
              throw new NonRetryableError("early");
            },
            rb("fails"),
          ),
          (async () => {
            await step.do("slow", () => slow.promise, rb("slow"));
            await step.do("next", async () => void ran.push("next"), rb("next"));
          })(),
        ]);
      }
    }
    const t = await setup(Branches);
    await t.W.create({ id: "a" });
    await new Promise((r) => setTimeout(r, 20));
    expect(undone).toEqual([]); // the slow callback is still in flight: the phase waits for it
    slow.resolve("done");
    await t.idle();
    expect(ran).toEqual([]);
    expect(undone).toEqual(["slow", "fails"]);
    const slowRow = await t.cairn.store.steps.get("w", "a", "do", "slow", 1);
    expect(slowRow?.status).toBe("succeeded");
    expect(await t.cairn.store.steps.get("w", "a", "do", "next", 1)).toBeUndefined();
    await t.cairn.close();
  });

  test("a handler missing after replay fails with RollbackMissing and halts", async () => {
    let registerB = true;
    const undone: string[] = [];
    class Changing extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("a", async () => 1, { rollback: async () => void undone.push("a") });
        if (registerB) await step.do("b", async () => 2, { rollback: async () => void undone.push("b") });
        else await step.do("b", async () => 2);
        await step.sleep("long", "1 day");
      }
    }
    const t = await setup(Changing);
    const inst = await t.W.create({ id: "x" });
    await t.idle();
    expect((await inst.status()).status).toBe("waiting"); // parked on the long sleep
    registerB = false; // the code changed: b's handler is gone
    await inst.terminate({ rollback: true });
    await t.idle();
    expect(undone).toEqual([]);
    expect(await inst.status()).toEqual({ status: "terminated" });
    const row = await t.cairn.store.instances.get("w", "x");
    expect(row?.rollback).toMatchObject({
      outcome: "failed",
      error: { name: "RollbackMissing", message: "Rollback function not available in registry" },
    });
    // The sleep (no stored outcome) was refused during the replay, not started again.
    expect((await t.cairn.store.steps.get("w", "x", "sleep", "long", 1))?.status).toBe("sleeping");
    await t.cairn.close();
  });

  test("the fourth argument is validated with upstream's texts", async () => {
    const errors: string[] = [];
    class Bad extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const s = step as any;
        for (const opts of [
          "x",
          { rollback: 1 },
          { rollback: async () => {}, rollbackConfig: { retries: { limit: "many" } } },
        ])
          try {
            await s.do("s", async () => 1, opts);
          } catch (e) {
            errors.push((e as Error).message);
          }
        return errors.length;
      }
    }
    const t = await setup(Bad);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    expect(errors).toEqual([
      '(step.invalid_config) Rollback options for "s" must be an object',
      '(step.invalid_config) Rollback for "s" must be a function',
      '(step.invalid_config) Rollback config for "s" is in a invalid format.',
    ]);
    expect(await inst.status()).toEqual({ status: "complete", output: 3 });
    expect(await t.cairn.store.steps.list("w", "a")).toEqual([]);
    await t.cairn.close();
  });

  test("an instance without rollbacks errors as before, with no rollback state", async () => {
    class Plain extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("ok", async () => 1);
        throw new Error("plain failure");
      }
    }
    const t = await setup(Plain);
    await t.W.create({ id: "a" });
    await t.idle();
    const row = await t.cairn.store.instances.get("w", "a");
    expect(row?.status).toBe("errored");
    expect(row?.rollback ?? null).toBeNull();
    expect(await t.history("a")).not.toContain("rollback_started");
    await t.cairn.close();
  });
});
