import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep, WorkflowTimeoutError } from "cairnjs";
import { describe, expect, test } from "vitest";
import { expectCode, setup } from "./support.ts";

describe("events", () => {
  test("an event sent before the wait is reached is delivered when it is", async () => {
    class Late extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.sleep("first", "1 hour");
        const e = await step.waitForEvent<{ ok: boolean }>("approval", {
          type: "approved",
          timeout: "1 hour",
        });
        return { payload: e.payload, type: e.type, at: e.timestamp.getTime() };
      }
    }
    const t = await setup(Late);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    const sentAt = t.clock.now();
    await inst.sendEvent({ type: "approved", payload: { ok: true } });
    await t.advance(3_600_000);
    expect(await inst.status()).toEqual({
      status: "complete",
      output: { payload: { ok: true }, type: "approved", at: sentAt },
    });
    await t.cairn.close();
  });

  test("an event wakes an instance unloaded while waiting, and waitForEvent resolves with it", async () => {
    class Waits extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const e = await step.waitForEvent("wait", { type: "go" });
        return e.payload;
      }
    }
    const t = await setup(Waits);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(60_000);
    await inst.sendEvent({ type: "go", payload: [1, 2, 3] });
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: [1, 2, 3] });
    expect(await t.history("a")).toContain("wait_completed wait-1");
    await t.cairn.close();
  });

  test("two waiters of one type each get one event, in order", async () => {
    class TwoWaiters extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const [a, b] = await Promise.all([
          step.waitForEvent("first", { type: "t" }),
          step.waitForEvent("second", { type: "t" }),
        ]);
        return [a.payload, b.payload];
      }
    }
    const t = await setup(TwoWaiters);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    await inst.sendEvent({ type: "t", payload: "one" });
    await t.idle();
    expect((await inst.status()).status).toBe("waiting");
    await inst.sendEvent({ type: "t", payload: "two" });
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: ["one", "two"] });
    await t.cairn.close();
  });

  test("events of one type are buffered first in, first out and other types are kept apart", async () => {
    class Buffered extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.sleep("later", "1 hour");
        const out: unknown[] = [];
        out.push((await step.waitForEvent("x1", { type: "x" })).payload);
        out.push((await step.waitForEvent("y1", { type: "y" })).payload);
        out.push((await step.waitForEvent("x2", { type: "x" })).payload);
        return out;
      }
    }
    const t = await setup(Buffered);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    await inst.sendEvent({ type: "x", payload: 1 });
    await inst.sendEvent({ type: "y", payload: "why" });
    await inst.sendEvent({ type: "x", payload: 2 });
    await t.advance(3_600_000);
    expect(await inst.status()).toEqual({ status: "complete", output: [1, "why", 2] });
    await t.cairn.close();
  });

  test("a wait that times out throws (catchably), and a later waiter of that type still receives events", async () => {
    class Timeouts extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        let first: string;
        try {
          await step.waitForEvent("first", { type: "t", timeout: "10 seconds" });
          first = "received";
        } catch (e) {
          // Cloudflare's name and message (its examples assert them); still a WorkflowTimeoutError.
          first = `${(e as Error).name}: ${(e as Error).message} ${e instanceof WorkflowTimeoutError}`;
        }
        const second = await step.waitForEvent("second", { type: "t", timeout: "1 hour" });
        return { first, second: second.payload };
      }
    }
    const t = await setup(Timeouts);
    const inst = await t.W.create({ id: "a" });
    await t.advance(10_000);
    await inst.sendEvent({ type: "t", payload: "late" });
    await t.idle();
    expect(await inst.status()).toEqual({
      status: "complete",
      output: { first: "Error: Execution timed out after 10000ms true", second: "late" },
    });
    const h = await t.history("a");
    expect(h.filter((x) => x.startsWith("wait_"))).toEqual([
      "wait_started first-1",
      "wait_timed_out first-1",
      "wait_started second-1",
      "wait_completed second-1",
    ]);
    await t.cairn.close();
  });

  test("an uncaught wait timeout errors the instance, also when the instance was unloaded", async () => {
    class Uncaught extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.waitForEvent("never", { type: "t", timeout: "2 days" });
      }
    }
    const t = await setup(Uncaught);
    const inst = await t.W.create({ id: "a" });
    await t.advance(2 * 86_400_000 - 1);
    expect((await inst.status()).status).toBe("waiting");
    await t.advance(1);
    const s = await inst.status();
    expect(s.status).toBe("errored");
    expect(s.error).toEqual({ name: "Error", message: "Execution timed out after 172800000ms" });
    // The wait's own record keeps the engine's name for it.
    expect((await t.cairn.store.steps.get("w", "a", "waitForEvent", "never", 1))?.error).toEqual({
      name: "WorkflowTimeoutError",
      message: "Execution timed out after 172800000ms",
    });
    await t.cairn.close();
  });

  test("sending to a finished instance fails and stores nothing", async () => {
    class Quick extends WorkflowEntrypoint {
      async run() {
        return 1;
      }
    }
    const t = await setup(Quick);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    await expectCode(inst.sendEvent({ type: "t", payload: 1 }), "instance.cannot_send_event");
    expect(await t.cairn.store.events.list("w", "a")).toEqual([]);
    await t.cairn.close();
  });

  test("invalid event types and oversized payloads are refused with their codes", async () => {
    class Waits extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return (await step.waitForEvent("w", { type: "ok" })).payload;
      }
    }
    const t = await setup(Waits);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    await expectCode(inst.sendEvent({ type: "has.dot", payload: 1 }), "workflow.invalid_event_type");
    await expectCode(inst.sendEvent({ type: "x".repeat(101), payload: 1 }), "workflow.invalid_event_type");
    await expectCode(
      inst.sendEvent({ type: "ok", payload: "x".repeat(1024 * 1024 + 1) }),
      "payload.too_large",
    );
    await expectCode(
      t.W.get("missing").then((i) => i.sendEvent({ type: "ok" })),
      "instance.not_found",
    );
    expect(await t.cairn.store.events.list("w", "a")).toEqual([]);
    await inst.sendEvent({ type: "ok", payload: "fine" });
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: "fine" });
    await t.cairn.close();
  });

  test("waitForEvent validates its type and timeout", async () => {
    const errors: string[] = [];
    class Bad extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        for (const opts of [
          { type: "bad type" },
          { type: "t", timeout: "0 seconds" },
          { type: "t", timeout: "400 days" },
          { type: "t", timeout: "soon" },
        ])
          await step
            .waitForEvent("w", opts as { type: string })
            .catch((e) => errors.push((e as { code: string }).code));
        return errors;
      }
    }
    const t = await setup(Bad);
    const inst = await t.W.create({ id: "a" });
    await t.idle();
    expect(await inst.status()).toEqual({
      status: "complete",
      output: [
        "workflow.invalid_event_type",
        "step.invalid_config",
        "step.invalid_config",
        "step.invalid_config",
      ],
    });
    await t.cairn.close();
  });
});
