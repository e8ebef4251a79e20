import { createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { describe, expect, test } from "vitest";

/** Keeps the thread busy for `ms` of real time, never yielding to the event loop. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

async function settled(status: () => Promise<{ status: string }>) {
  for (;;) {
    const s = await status();
    if (s.status === "complete" || s.status === "errored") return s;
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("a step callback that blocks the thread past its timeout", () => {
  test("the overrunning attempt is a timeout failure: its result is discarded and it is retried", async () => {
    const attempts: number[] = [];
    class Busy extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do(
          "busy",
          { timeout: 100, retries: { limit: 1, delay: 0, backoff: "constant" } },
          async (ctx) => {
            attempts.push(ctx.attempt);
            if (ctx.attempt === 1) {
              busy(400);
              return "late";
            }
            return "in time";
          },
        );
      }
    }
    const cairn = await createCairn({
      store: ":memory:",
      workflows: [{ binding: "W", name: "w", class: Busy }],
    });
    try {
      const inst = await (cairn.env.W as any).create({ id: "a" });
      expect(await settled(() => inst.status())).toEqual({ status: "complete", output: "in time" });
      expect(attempts).toEqual([1, 2]);
      const history = await cairn.store.history.list("w", "a");
      const errored = history.filter((h) => h.type === "attempt_errored").map((h) => h.data!.error);
      expect(errored).toEqual([{ name: "WorkflowTimeoutError", message: "Execution timed out after 100ms" }]);
    } finally {
      await cairn.close();
    }
  });

  test("without retries left, the step fails with the timeout error, not the late result or error", async () => {
    class Busy extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const late = await step
          .do("busy", { timeout: 100, retries: { limit: 0, delay: 0 } }, async () => {
            busy(400);
            return "late";
          })
          .catch((e: Error) => `${e.name}: ${e.message}`);
        const failed = await step
          .do("busy-throw", { timeout: 100, retries: { limit: 0, delay: 0 } }, async () => {
            busy(400);
            throw new Error("late failure");
          })
          .catch((e: Error) => `${e.name}: ${e.message}`);
        return [late, failed];
      }
    }
    const cairn = await createCairn({
      store: ":memory:",
      workflows: [{ binding: "W", name: "w", class: Busy }],
    });
    try {
      const inst = await (cairn.env.W as any).create({ id: "a" });
      expect(await settled(() => inst.status())).toEqual({
        status: "complete",
        output: [
          "WorkflowTimeoutError: Execution timed out after 100ms",
          "WorkflowTimeoutError: Execution timed out after 100ms",
        ],
      });
      const steps = await cairn.store.steps.list("w", "a");
      expect(steps.map((s) => [s.name, s.status, s.result, s.error?.name])).toEqual([
        ["busy", "failed", null, "WorkflowTimeoutError"],
        ["busy-throw", "failed", null, "WorkflowTimeoutError"],
      ]);
    } finally {
      await cairn.close();
    }
  });
});
