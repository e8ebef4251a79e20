/**
 * The testing helpers' tests, written once and run twice: under vitest (`testing.test.ts`, against
 * the TypeScript sources) and under `node:test` (`tests/testing/testing.node-test.ts`, against the
 * built packages). Each runner passes its `test` function and an assertion adapter.
 */
import {
  NonRetryableError,
  type Workflow,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
} from "@cairn/core";
import { createCairn } from "@cairn/engine";
import {
  createTestCairn,
  introspectWorkflow,
  introspectWorkflowInstance,
  type TestCairn,
  type WorkflowInstanceModifier,
} from "@cairn/testing";

/** The assertions the cases need; both runners adapt their own to it. */
export interface Check {
  /** `Object.is` equality. */
  equal(actual: unknown, expected: unknown): void;
  /** Deep structural equality. */
  deepEqual(actual: unknown, expected: unknown): void;
  /** Resolves when `promise` rejects with an error whose message equals `message` (or matches it). */
  rejects(promise: Promise<unknown>, message: string | RegExp): Promise<void>;
}

export type TestFn = (name: string, fn: () => Promise<void>) => void;

const DAY = 86_400_000;
const HOUR = 3_600_000;

type Env = { WF: Workflow };

async function setup(
  cls: unknown,
  options: { autoAdvance?: boolean } = {},
): Promise<TestCairn<any> & { env: Env }> {
  return (await createTestCairn<Env>({
    workflows: [{ binding: "WF", name: "wf", class: cls as any }],
    ...options,
  })) as TestCairn<any> & { env: Env };
}

async function history(cairn: TestCairn<any>, id: string) {
  return (await cairn.store.history.list("wf", id)).map((e) => ({
    type: e.type,
    step: e.step?.name,
    data: e.data,
  }));
}

export function defineTestingCases({ test, check }: { test: TestFn; check: Check }): void {
  // ---- step mocks ---------------------------------------------------------------------------

  test("mockStepResult replaces the step's outcome and keeps its history entries", async () => {
    let scans = 0;
    class Moderator extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const scan = await step.do("AI content scan", async () => {
          scans++;
          return { violationScore: 99 };
        });
        return scan.violationScore === 0 ? "approved" : "review";
      }
    }
    await using cairn = await setup(Moderator);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "m1");
    await instance.modify(async (m) => {
      await m.mockStepResult({ name: "AI content scan" }, { violationScore: 0 });
    });
    await cairn.env.WF.create({ id: "m1" });
    check.deepEqual(await instance.waitForStepResult({ name: "AI content scan" }), { violationScore: 0 });
    await instance.waitForStatus("complete");
    check.equal(await instance.getOutput(), "approved");
    check.equal(scans, 0);
    const types = (await history(cairn, "m1")).filter((e) => e.step === "AI content scan").map((e) => e.type);
    check.deepEqual(types, ["step_started", "attempt_started", "attempt_completed", "step_completed"]);
  });

  test("mocking one step's result twice fails with Cloudflare's message", async () => {
    class Noop extends WorkflowEntrypoint {
      async run() {}
    }
    await using cairn = await setup(Noop);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "twice");
    await instance.modify(async (m) => {
      await m.mockStepResult({ name: "my step" }, "first mocked result");
      await check.rejects(
        m.mockStepResult({ name: "my step" }, "second mocked result"),
        "[WorkflowIntrospector] Trying to mock step 'my step' multiple times!",
      );
      await check.rejects(
        m.mockStepError({ name: "my step" }, new Error("x")),
        "[WorkflowIntrospector] Trying to mock error on step 'my step' after mocking its result!",
      );
      await check.rejects(
        m.forceStepTimeout({ name: "my step" }),
        "[WorkflowIntrospector] Trying to force timeout on step 'my step' after mocking its result!",
      );
      // Another index is another step.
      await m.mockStepResult({ name: "my step", index: 2 }, "fine");
      await check.rejects(m.mockStepResult({ name: "my step", index: 0 }, "x"), /1-based/);
    });
  });

  test("mockStepError on every attempt fails the step and the instance", async () => {
    let ran = 0;
    class Flaky extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("my step", { retries: { limit: 2, delay: "1 minute" } }, async () => ++ran);
      }
    }
    await using cairn = await setup(Flaky);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "e1");
    await instance.modify(async (m) => {
      await m.mockStepError({ name: "my step" }, new Error("Oops"));
    });
    await cairn.env.WF.create({ id: "e1" });
    await check.rejects(instance.waitForStepResult({ name: "my step" }), "Oops");
    await check.rejects(
      instance.waitForStatus("complete"),
      "[WorkflowIntrospector] The Workflow instance e1 has reached status 'errored'. This is a finite status that prevents it from ever reaching the expected status of 'complete'.",
    );
    await instance.waitForStatus("errored");
    check.deepEqual(await instance.getError(), { name: "Error", message: "Oops" });
    await check.rejects(
      instance.getOutput(),
      'Cannot retrieve output: Workflow instance is in status "errored" but must be "complete" to have an output available',
    );
    check.equal(ran, 0);
    check.equal((await cairn.store.steps.get("wf", "e1", "do", "my step", 1))?.attempts, 3);
  });

  test("mockStepError n times, then mockStepResult: n attempts fail, then the mock succeeds", async () => {
    let ran = 0;
    class Flaky extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("my step", { retries: { limit: 5, delay: "1 second" } }, async () => ++ran);
      }
    }
    await using cairn = await setup(Flaky);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "e2");
    await instance.modify(async (m) => {
      await m.disableRetryDelays();
      await m.mockStepError({ name: "my step" }, new Error("Oops"), 2);
      await m.mockStepResult({ name: "my step" }, { result: "mocked" });
    });
    await cairn.env.WF.create({ id: "e2" });
    check.deepEqual(await instance.waitForStepResult({ name: "my step" }), { result: "mocked" });
    await instance.waitForStatus("complete");
    check.deepEqual(await instance.getOutput(), { result: "mocked" });
    check.equal(ran, 0);
    const errors = (await history(cairn, "e2")).filter((e) => e.type === "attempt_errored");
    check.deepEqual(
      errors.map((e) => e.data?.error),
      [
        { name: "Error", message: "Oops" },
        { name: "Error", message: "Oops" },
      ],
    );
  });

  test("mockStepError n times without a result mock: the real callback runs after n failures", async () => {
    const attempts: number[] = [];
    class Flaky extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("charge", { retries: { limit: 3, delay: "1 minute" } }, async (ctx) => {
          attempts.push(ctx.attempt);
          return "charged";
        });
      }
    }
    await using cairn = await setup(Flaky);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "e3");
    await instance.modify(async (m) => {
      await m.mockStepError({ name: "charge" }, new Error("card declined"), 1);
      await m.mockStepError({ name: "charge" }, new Error("still declined"), 1);
    });
    await cairn.env.WF.create({ id: "e3" });
    check.equal(await instance.waitForStepResult({ name: "charge" }), "charged");
    check.deepEqual(attempts, [3]);
    const errors = (await history(cairn, "e3")).filter((e) => e.type === "attempt_errored");
    check.deepEqual(
      errors.map((e) => (e.data?.error as { message: string } | undefined)?.message),
      ["card declined", "still declined"],
    );
  });

  test("a mocked NonRetryableError ends the step after one attempt", async () => {
    class Flaky extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("charge", { retries: { limit: 5, delay: "1 minute" } }, async () => "charged");
      }
    }
    await using cairn = await setup(Flaky);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "nr");
    await instance.modify(async (m) => {
      await m.mockStepError({ name: "charge" }, new NonRetryableError("card stolen"));
    });
    await cairn.env.WF.create({ id: "nr" });
    await instance.waitForStatus("errored");
    check.equal((await cairn.store.steps.get("wf", "nr", "do", "charge", 1))?.attempts, 1);
    check.equal((await instance.getError()).message.includes("card stolen"), true);
  });

  test("forceStepTimeout: forced attempts time out, later ones run; without times every attempt does", async () => {
    const attempts: number[] = [];
    class Slow extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do(
          "call api",
          { retries: { limit: 1, delay: "1 second" }, timeout: "30 seconds" },
          async (ctx) => {
            attempts.push(ctx.attempt);
            return "ok";
          },
        );
      }
    }
    await using cairn = await setup(Slow);
    await using once = await introspectWorkflowInstance(cairn.env.WF, "t1");
    await once.modify(async (m) => {
      await m.forceStepTimeout({ name: "call api" }, 1);
    });
    await cairn.env.WF.create({ id: "t1" });
    check.equal(await once.waitForStepResult({ name: "call api" }), "ok");
    check.deepEqual(attempts, [2]);
    const errored = (await history(cairn, "t1")).find((e) => e.type === "attempt_errored");
    check.deepEqual(errored?.data?.error, {
      name: "WorkflowTimeoutError",
      message: "Execution timed out after 30000ms",
    });

    await using always = await introspectWorkflowInstance(cairn.env.WF, "t2");
    await always.modify(async (m) => {
      await m.forceStepTimeout({ name: "call api" });
    });
    await cairn.env.WF.create({ id: "t2" });
    await check.rejects(always.waitForStepResult({ name: "call api" }), "Execution timed out after 30000ms");
    await always.waitForStatus("errored");
    check.deepEqual(await always.getError(), {
      name: "WorkflowTimeoutError",
      message: "Execution timed out after 30000ms",
    });
    check.deepEqual(attempts, [2]);
  });

  test("step selectors use the 1-based index of a repeated name", async () => {
    class Loop extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const out: string[] = [];
        for (let i = 1; i <= 3; i++) out.push(await step.do("item", async () => `real ${i}`));
        return out;
      }
    }
    await using cairn = await setup(Loop);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "loop");
    await instance.modify(async (m) => {
      await m.mockStepResult({ name: "item", index: 2 }, "mocked 2");
    });
    await cairn.env.WF.create({ id: "loop" });
    check.equal(await instance.waitForStepResult({ name: "item", index: 3 }), "real 3");
    check.equal(await instance.waitForStepResult({ name: "item", index: 2 }), "mocked 2");
    check.equal(await instance.waitForStepResult({ name: "item" }), "real 1");
    await instance.waitForStatus("complete");
    check.deepEqual(await instance.getOutput(), ["real 1", "mocked 2", "real 3"]);
  });

  // ---- waits ----------------------------------------------------------------------------------

  test("disableSleeps: every sleep, or only the selected ones, ends at once", async () => {
    class Naps extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.sleep("nap", "1 hour");
        await step.sleep("nap", "1 hour");
        await step.sleepUntil("until", Date.UTC(2026, 5, 1));
        return "rested";
      }
    }
    await using cairn = await setup(Naps, { autoAdvance: false });
    const start = cairn.clock.now();
    await using all = await introspectWorkflowInstance(cairn.env.WF, "all");
    await all.modify(async (m) => m.disableSleeps());
    await cairn.env.WF.create({ id: "all" });
    await all.waitForStatus("complete");
    check.equal(cairn.clock.now(), start);

    await using some = await introspectWorkflowInstance(cairn.env.WF, "some");
    await some.modify(async (m) => m.disableSleeps([{ name: "nap", index: 2 }, { name: "until" }]));
    await cairn.env.WF.create({ id: "some" });
    await cairn.runUntilIdle();
    check.equal((await cairn.env.WF.get("some").then((i) => i.status())).status, "waiting");
    await cairn.advanceTime("1 hour");
    await some.waitForStatus("complete");
    const durations = (await history(cairn, "some"))
      .filter((e) => e.type === "sleep_started")
      .map((e) => e.data?.durationMs);
    check.deepEqual(durations, [HOUR, 0, 0]);
  });

  test("disableRetryDelays: retries happen without waiting, for all steps or the selected ones", async () => {
    const attempts: string[] = [];
    class Flaky extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        for (const name of ["a", "b"])
          await step.do(name, { retries: { limit: 2, delay: "1 hour" } }, async (ctx) => {
            attempts.push(`${name}${ctx.attempt}`);
            if (ctx.attempt < 3) throw new Error("not yet");
            return name;
          });
        return "done";
      }
    }
    await using cairn = await setup(Flaky, { autoAdvance: false });
    const start = cairn.clock.now();
    await using all = await introspectWorkflowInstance(cairn.env.WF, "r1");
    await all.modify(async (m) => m.disableRetryDelays());
    await cairn.env.WF.create({ id: "r1" });
    await all.waitForStatus("complete");
    check.equal(cairn.clock.now(), start);
    check.deepEqual(attempts, ["a1", "a2", "a3", "b1", "b2", "b3"]);
    const delays = (await history(cairn, "r1"))
      .filter((e) => e.type === "attempt_errored")
      .map((e) => e.data?.retryDelayMs);
    check.deepEqual(delays, [0, 0, 0, 0]);

    await using some = await introspectWorkflowInstance(cairn.env.WF, "r2");
    await some.modify(async (m) => m.disableRetryDelays([{ name: "b" }]));
    await cairn.env.WF.create({ id: "r2" });
    await cairn.runUntilIdle();
    check.equal((await cairn.env.WF.get("r2").then((i) => i.status())).status, "waiting");
    await cairn.advanceTime("3 hours");
    await some.waitForStatus("complete");
    const delays2 = (await history(cairn, "r2"))
      .filter((e) => e.type === "attempt_errored")
      .map((e) => e.data?.retryDelayMs);
    check.deepEqual(delays2, [HOUR, 2 * HOUR, 0, 0]);
  });

  // ---- events ---------------------------------------------------------------------------------

  class Approval extends WorkflowEntrypoint {
    async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
      const draft = await step.do("draft", async () => "draft 1");
      try {
        const approval = await step.waitForEvent<{ by: string }>("approval", {
          type: "approved",
          timeout: "7 days",
        });
        return { draft, approvedBy: approval.payload.by };
      } catch (e) {
        await step.do("notify timeout", async () => `${(e as Error).name}: ${(e as Error).message}`);
        return { draft, approvedBy: null };
      }
    }
  }

  test("mockEvent delivers an event before or after the instance starts waiting", async () => {
    await using cairn = await setup(Approval);
    await using early = await introspectWorkflowInstance(cairn.env.WF, "a1");
    await early.modify(async (m) => m.mockEvent({ type: "approved", payload: { by: "ana" } }));
    await cairn.env.WF.create({ id: "a1" });
    await early.waitForStatus("complete");
    check.deepEqual(await early.getOutput(), { draft: "draft 1", approvedBy: "ana" });

    await using late = await introspectWorkflowInstance(cairn.env.WF, "a2");
    await cairn.env.WF.create({ id: "a2" });
    await late.waitForStatus("waiting");
    await late.modify(async (m) => m.mockEvent({ type: "approved", payload: { by: "bo" } }));
    await late.waitForStatus("complete");
    check.deepEqual(await late.getOutput(), { draft: "draft 1", approvedBy: "bo" });
    const types = (await history(cairn, "a2")).filter((e) => e.step === "approval").map((e) => e.type);
    check.deepEqual(types, ["wait_started", "wait_completed"]);
  });

  test("forceEventTimeout makes the selected waitForEvent time out at once", async () => {
    await using cairn = await setup(Approval, { autoAdvance: false });
    const start = cairn.clock.now();
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "to");
    await instance.modify(async (m) => m.forceEventTimeout({ name: "approval" }));
    await cairn.env.WF.create({ id: "to" });
    check.equal(
      await instance.waitForStepResult({ name: "notify timeout" }),
      "Error: Execution timed out after 604800000ms",
    );
    await instance.waitForStatus("complete");
    check.deepEqual(await instance.getOutput(), { draft: "draft 1", approvedBy: null });
    check.equal(cairn.clock.now(), start);
    check.deepEqual(
      (await history(cairn, "to")).filter((e) => e.step === "approval").map((e) => e.type),
      ["wait_started", "wait_timed_out"],
    );
  });

  // ---- statuses -------------------------------------------------------------------------------

  test("waitForStatus: queued at once; unreachable final statuses reject with Cloudflare's message", async () => {
    await using cairn = await setup(Approval);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "s1");
    await instance.waitForStatus("queued");
    await check.rejects(instance.waitForStatus("sleeping" as any), /Unknown status 'sleeping'/);
    const handle = await cairn.env.WF.create({ id: "s1" });
    await instance.waitForStatus("running");
    await instance.waitForStatus("waiting");
    await check.rejects(
      instance.getError(),
      'Cannot retrieve error: Workflow instance is in status "waiting" but must be "errored" to have error information available',
    );
    await check.rejects(
      instance.getOutput(),
      'Cannot retrieve output: Workflow instance is in status "waiting" but must be "complete" to have an output available',
    );
    const complete = instance.waitForStatus("complete");
    await handle.terminate();
    await check.rejects(
      complete,
      "[WorkflowIntrospector] The Workflow instance s1 has reached status 'terminated'. This is a finite status that prevents it from ever reaching the expected status of 'complete'.",
    );
    await instance.waitForStatus("terminated");
    await check.rejects(
      instance.waitForStepResult({ name: "never" }),
      "[WorkflowIntrospector] The Workflow instance s1 has reached status 'terminated' without a result for step 'never' (index 1).",
    );
  });

  // ---- the fake clock -------------------------------------------------------------------------

  class Trial extends WorkflowEntrypoint {
    async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
      await step.do("start trial", async () => "started");
      await step.sleep("trial period", "30 days");
      return step.do("bill", async () => "billed");
    }
  }

  test("a 30-day sleep runs on the fake clock with advanceTime", async () => {
    await using cairn = await setup(Trial, { autoAdvance: false });
    const start = cairn.clock.now();
    const handle = await cairn.env.WF.create({ id: "trial" });
    await cairn.runUntilIdle();
    check.equal((await handle.status()).status, "waiting");
    await cairn.advanceTime("29 days");
    check.equal((await handle.status()).status, "waiting");
    check.equal(await cairn.store.steps.get("wf", "trial", "do", "bill", 1), undefined);
    await cairn.advanceTime("1 day");
    check.deepEqual(await handle.status(), { status: "complete", output: "billed" });
    check.equal(cairn.clock.now() - start, 30 * DAY);
  });

  test("autoAdvance: waiting for a status moves the fake clock through a 30-day sleep", async () => {
    await using cairn = await setup(Trial);
    const start = cairn.clock.now();
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "auto");
    await cairn.env.WF.create({ id: "auto" });
    check.equal(await instance.waitForStepResult({ name: "bill" }), "billed");
    await instance.waitForStatus("complete");
    check.equal(cairn.clock.now() - start, 30 * DAY);
  });

  // ---- introspectWorkflow -----------------------------------------------------------------------

  test("introspectWorkflow applies its modifications to every instance of a createBatch", async () => {
    let charged = 0;
    class Order extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const price = await step.do("price", async () => 10);
        await step.sleep("wait for stock", "2 days");
        await step.do("charge", async () => ++charged);
        return price;
      }
    }
    await using cairn = await setup(Order, { autoAdvance: false });
    const introspector = await introspectWorkflow(cairn.env.WF);
    // Cloudflare's examples do not await modifyAll before creating.
    void introspector.modifyAll(async (m: WorkflowInstanceModifier) => {
      await m.disableSleeps();
      await m.mockStepResult({ name: "price" }, 42);
    });
    await check.rejects(
      introspectWorkflow(cairn.env.WF),
      'Workflow "wf" already has an active introspection session for binding "WF".',
    );
    const created = await cairn.env.WF.createBatch([{}, {}, { id: "known" }]);
    const instances = await introspector.get();
    check.deepEqual(
      instances.map((i) => i.id),
      created.map((i) => i.id),
    );
    check.equal(instances.length, 3);
    for (const instance of instances) {
      await instance.waitForStatus("complete");
      check.equal(await instance.getOutput(), 42);
    }
    check.equal(charged, 3);
    await introspector.dispose();
    await check.rejects(cairn.env.WF.get("known"), "instance.not_found");
    // The session is over: a new one may start, and new instances are no longer modified.
    await using again = await introspectWorkflow(cairn.env.WF);
    check.deepEqual(await again.get(), []);
    await again.dispose();
    const plain = await cairn.env.WF.create({ id: "plain" });
    await cairn.runUntilIdle();
    check.equal((await plain.status()).status, "waiting");
  });

  // ---- bindings, disposal, hooks ----------------------------------------------------------------

  test("the bindings of any Cairn can be introspected (createCairn too); other values are refused", async () => {
    class Noop extends WorkflowEntrypoint {
      async run() {}
    }
    class Fetcher extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const page = await step.do("fetch page", async () => "real page");
        await step.sleep("cool off", "1 day");
        return page;
      }
    }
    await check.rejects(introspectWorkflowInstance({}, "x"), /needs a workflow binding of a Cairn/);
    await using plain = await createCairn({
      store: ":memory:",
      workflows: [{ binding: "WF", name: "wf", class: Fetcher }],
    });
    const WF = plain.env.WF as Workflow;
    await using one = await introspectWorkflowInstance(WF, "p1");
    await one.modify(async (m) => {
      await m.disableSleeps();
      await m.mockStepResult({ name: "fetch page" }, "mocked page");
    });
    await WF.create({ id: "p1" });
    await one.waitForStatus("complete");
    check.equal(await one.getOutput(), "mocked page");
    await using all = await introspectWorkflow(WF);
    await all.modifyAll(async (m) => m.disableSleeps());
    await WF.createBatch([{ id: "p2" }, { id: "p3" }]);
    const instances = await all.get();
    check.deepEqual(
      instances.map((i) => i.id),
      ["p2", "p3"],
    );
    for (const i of instances) {
      await i.waitForStatus("complete");
      check.equal(await i.getOutput(), "real page");
    }
    await plain.close();
    await check.rejects(
      introspectWorkflowInstance(WF, "x"),
      '[WorkflowIntrospector] The Cairn that owns binding "WF" is closed',
    );
    const cairn = await setup(Noop);
    await cairn.close();
    await check.rejects(
      introspectWorkflowInstance(cairn.env.WF, "x"),
      '[WorkflowIntrospector] The Cairn that owns binding "WF" is closed',
    );
  });

  test("autoAdvance never moves the clock while a step callback waits for real I/O", async () => {
    class Io extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const body = await step.do("call api", { retries: { limit: 2, delay: "1 second" } }, async (ctx) => {
          // Real time, not the fake clock: like a network call.
          await new Promise((r) => setTimeout(r, 200));
          return `attempt ${ctx.attempt}`;
        });
        await step.sleep("nap", "1 day");
        return body;
      }
    }
    await using cairn = await setup(Io);
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "io");
    await cairn.env.WF.create({ id: "io" });
    await instance.waitForStatus("complete");
    check.equal(await instance.getOutput(), "attempt 1");
    check.equal((await cairn.store.steps.get("wf", "io", "do", "call api", 1))?.attempts, 1);
  });

  test("mocks survive restart(): the restarted instance gets its mocked event again", async () => {
    await using cairn = await setup(Approval, { autoAdvance: false });
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "r1");
    await instance.modify(async (m) => {
      await m.mockStepResult({ name: "draft" }, "mocked draft");
      await m.mockEvent({ type: "approved", payload: { by: "ana" } });
    });
    const handle = await cairn.env.WF.create({ id: "r1" });
    await cairn.runUntilIdle();
    check.deepEqual(await handle.status(), {
      status: "complete",
      output: { draft: "mocked draft", approvedBy: "ana" },
    });
    await handle.restart();
    await cairn.runUntilIdle();
    check.deepEqual(await handle.status(), {
      status: "complete",
      output: { draft: "mocked draft", approvedBy: "ana" },
    });
    check.deepEqual(
      (await history(cairn, "r1")).filter((e) => e.step === "approval").map((e) => e.type),
      ["wait_started", "wait_completed"],
    );
  });

  test("dispose deletes the instance; close leaves no timers behind", async () => {
    await using cairn = await setup(Trial, { autoAdvance: false });
    const instance = await introspectWorkflowInstance(cairn.env.WF, "d1");
    await instance.modify(async (m) => m.mockStepResult({ name: "bill" }, "mocked"));
    await cairn.env.WF.create({ id: "d1" });
    await cairn.runUntilIdle();
    await instance[Symbol.asyncDispose]();
    await check.rejects(cairn.env.WF.get("d1"), "instance.not_found");
    // The id is free again, without the old modifications.
    await using fresh = await introspectWorkflowInstance(cairn.env.WF, "d1");
    await cairn.env.WF.create({ id: "d1" });
    await cairn.advanceTime("30 days");
    check.equal(await fresh.waitForStepResult({ name: "bill" }), "billed");
    await cairn.env.WF.create({ id: "d2" });
    await cairn.runUntilIdle();
    check.equal(cairn.clock.pendingTimers > 0, true);
    await cairn.close();
    check.equal(cairn.clock.pendingTimers, 0);
  });

  test("application hooks still run, around the mocks", async () => {
    const seen: unknown[] = [];
    class One extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("one", async () => "real");
      }
    }
    await using cairn = (await createTestCairn<Env>({
      workflows: [{ binding: "WF", name: "wf", class: One }],
      hooks: {
        wrapStep: async (_info, next) => {
          const value = await next();
          seen.push(value);
          return value;
        },
      },
    })) as TestCairn<any> & { env: Env };
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "h");
    await instance.modify(async (m) => m.mockStepResult({ name: "one" }, "mocked"));
    await cairn.env.WF.create({ id: "h" });
    await instance.waitForStatus("complete");
    check.deepEqual(seen, ["mocked"]);
  });
}
