import { describe, expect, it } from "vitest";
import type { Backoff, ResolvedStepConfig } from "./config.ts";
import { NonRetryableError, WorkflowError, WorkflowTimeoutError } from "./errors.ts";
import type { HistoryEntry } from "./history.ts";
import { MAX_PAYLOAD_BYTES } from "./limits.ts";
import type { EventRow, StepRow } from "./records.ts";
import { ATTEMPT_LOST_ERROR } from "./recovery.ts";
import {
  type Attempt,
  endAttempt,
  endRun,
  endSleep,
  loseAttempt,
  type ParkState,
  park,
  parkPaused,
  planRestart,
  receiveEvent,
  replayStep,
  type StepCall,
  startAttempt,
  startSleep,
  startWait,
  timeOutWait,
  waitMode,
  waitNext,
} from "./transitions.ts";

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const bytes = (...b: number[]) => new Uint8Array(b);

const call: StepCall = {
  workflow: "orders",
  instanceId: "o-1",
  key: { kind: "do", name: "charge", count: 1 },
  seq: 3,
};
const step = { kind: "do", name: "charge", count: 1 } as const;

function config(limit: number, backoff: Backoff = "constant", delay: string | number = "10 seconds") {
  return { retries: { limit, delay, backoff }, timeout: "10 minutes" } satisfies ResolvedStepConfig;
}

function attempt(n: number, cfg: ResolvedStepConfig = config(5), previousError = null): Attempt {
  return { call, config: cfg, stepStartedAt: T0, attempt: n, startedAt: T0 + 100 * n, previousError };
}

const failure = (message: string) => ({ ok: false as const, error: new Error(message) });

describe("replayStep", () => {
  const row = (over: Partial<StepRow>): StepRow => ({
    workflow: "orders",
    instanceId: "o-1",
    ...step,
    seq: 1,
    status: "succeeded",
    config: null,
    attempts: 1,
    result: null,
    error: null,
    startedAt: T0,
    endedAt: T0 + 5,
    wakeAt: null,
    eventType: null,
    ...over,
  });

  it("returns the stored result of a succeeded step", () => {
    expect(replayStep("do", row({ result: bytes(1, 2) }))).toEqual({ outcome: "value", result: bytes(1, 2) });
  });

  it("rethrows a failed step's error with its name and message", () => {
    const r = replayStep("do", row({ status: "failed", error: { name: "TypeError", message: "boom" } }));
    expect(r?.outcome).toBe("error");
    const error = (r as { error: Error }).error;
    expect([error.name, error.message]).toEqual(["TypeError", "boom"]);
  });

  it("rethrows a timed-out wait as the wait timeout run() saw", () => {
    const stored = row({
      kind: "waitForEvent",
      status: "failed",
      error: { name: "WorkflowTimeoutError", message: "Execution timed out after 60000ms" },
    });
    const error = (replayStep("waitForEvent", stored) as { error: Error }).error;
    expect(error).toBeInstanceOf(WorkflowTimeoutError);
    expect([error.name, error.message]).toEqual(["Error", "Execution timed out after 60000ms"]);
  });

  it("has nothing to replay for a missing step or one without an outcome yet", () => {
    expect(replayStep("do", undefined)).toBeUndefined();
    for (const status of ["running", "retrying", "sleeping", "waiting"] as const)
      expect(replayStep("do", row({ status }))).toBeUndefined();
  });
});

describe("an attempt's start and end", () => {
  it("the marker stores the step running, with step_started on the first attempt only", () => {
    const first = startAttempt(attempt(1));
    expect(first.step).toMatchObject({
      status: "running",
      attempts: 1,
      startedAt: T0,
      endedAt: null,
      seq: 3,
    });
    expect(first.history.map((h) => [h.type, h.timestamp])).toEqual([
      ["step_started", T0],
      ["attempt_started", T0 + 100],
    ]);
    const previous = { name: "Error", message: "first" };
    const second = startAttempt({ ...attempt(2), previousError: previous });
    expect(second.history.map((h) => h.type)).toEqual(["attempt_started"]);
    // The previous attempt's error stays, so a recovery can tell whether that one was lost too.
    expect(second.step.error).toEqual(previous);
  });

  it("a success stores the result and returns; unshown attempts write their start entries with it", () => {
    const end = endAttempt(attempt(1), { ok: true, result: bytes(7) }, T0 + 150, false);
    expect(end.next).toBe("return");
    expect(end.step).toEqual({
      workflow: "orders",
      instanceId: "o-1",
      ...step,
      seq: 3,
      status: "succeeded",
      config: config(5),
      attempts: 1,
      result: bytes(7),
      error: null,
      startedAt: T0,
      endedAt: T0 + 150,
      wakeAt: null,
      eventType: null,
    });
    expect(end.history.map((h) => [h.type, h.timestamp, h.step, h.data])).toEqual([
      ["step_started", T0, step, { config: config(5) }],
      ["attempt_started", T0 + 100, step, { attempt: 1 }],
      ["attempt_completed", T0 + 150, step, { attempt: 1 }],
      ["step_completed", T0 + 150, step, undefined],
    ]);
    const shown = endAttempt(attempt(1), { ok: true, result: bytes(7) }, T0 + 150, true);
    expect(shown.history.map((h) => h.type)).toEqual(["attempt_completed", "step_completed"]);
  });

  describe("retry timing for each backoff: the retry is due the delay after the failure", () => {
    // A delay of 10 s; attempts 1…4 fail at now = T0 + 1000 · n.
    const rows: [Backoff, number[]][] = [
      ["constant", [10_000, 10_000, 10_000, 10_000]],
      ["linear", [10_000, 20_000, 30_000, 40_000]],
      ["exponential", [10_000, 20_000, 40_000, 80_000]],
    ];
    it.each(rows)("%s", (backoff, delays) => {
      for (const [i, delay] of delays.entries()) {
        const n = i + 1;
        const now = T0 + 1000 * n;
        const end = endAttempt(attempt(n, config(5, backoff)), failure(`try ${n}`), now, true);
        expect(end).toMatchObject({ next: "retry", at: now + delay });
        expect(end.step).toMatchObject({
          status: "retrying",
          attempts: n,
          wakeAt: now + delay,
          endedAt: null,
          error: { name: "Error", message: `try ${n}` },
        });
        expect(end.history).toEqual([
          {
            workflow: "orders",
            instanceId: "o-1",
            type: "attempt_errored",
            timestamp: now,
            step,
            data: { attempt: n, error: { name: "Error", message: `try ${n}` }, retryDelayMs: delay },
          },
        ]);
      }
    });

    it("a delay given in milliseconds, and one adjusted (a test forcing it to 0)", () => {
      const cfg = config(5, "exponential", 250);
      expect(endAttempt(attempt(3, cfg), failure("x"), T0, true)).toMatchObject({ at: T0 + 1000 });
      const forced = endAttempt(attempt(3, cfg), failure("x"), T0, true, () => 0);
      expect(forced).toMatchObject({ next: "retry", at: T0 });
      expect(forced.history[0]?.data).toMatchObject({ retryDelayMs: 0 });
    });
  });

  it("a step fails for good when its retries are spent: limit 2 fails at the 3rd attempt", () => {
    expect(endAttempt(attempt(2, config(2)), failure("no"), T0, true).next).toBe("retry");
    const error = new TypeError("no");
    const end = endAttempt(attempt(3, config(2)), { ok: false, error }, T0 + 9, true);
    expect(end.next).toBe("throw");
    // The error itself reaches run().
    expect((end as { error: unknown }).error).toBe(error);
    expect(end.step).toMatchObject({
      status: "failed",
      attempts: 3,
      endedAt: T0 + 9,
      wakeAt: null,
      error: { name: "TypeError", message: "no" },
    });
    expect(end.history.map((h) => [h.type, h.data])).toEqual([
      ["attempt_errored", { attempt: 3, error: { name: "TypeError", message: "no" } }],
      ["step_errored", { error: { name: "TypeError", message: "no" } }],
    ]);
  });

  it("a NonRetryableError fails the step at once, with retries left", () => {
    const end = endAttempt(
      attempt(1, config(5)),
      { ok: false, error: new NonRetryableError("stop") },
      T0,
      true,
    );
    expect(end.next).toBe("throw");
    expect(end.step).toMatchObject({ status: "failed", attempts: 1, error: { name: "NonRetryableError" } });
    // Recognised by name too, as errors flattened across a boundary are.
    const flat = { name: "NonRetryableError", message: "stop" };
    expect(endAttempt(attempt(1), { ok: false, error: flat }, T0, true).next).toBe("throw");
  });

  it("a thrown non-error is stored serialized and thrown as a rebuilt error", () => {
    const end = endAttempt(attempt(1, config(0)), { ok: false, error: "plain" }, T0, true);
    expect(end.step.error).toEqual({ name: "Error", message: "plain" });
    const thrown = (end as { error: unknown }).error;
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as Error).message).toBe("plain");
  });

  it("a timeout is a failure like any other: retried, then the step fails with it", () => {
    const timeout = new WorkflowTimeoutError("Execution timed out after 5000ms");
    const retried = endAttempt(attempt(1, config(1)), { ok: false, error: timeout }, T0, true);
    expect(retried).toMatchObject({ next: "retry", at: T0 + 10_000 });
    expect(retried.step.error).toEqual({ name: "WorkflowTimeoutError", message: timeout.message });
    const failed = endAttempt(attempt(2, config(1)), { ok: false, error: timeout }, T0, true);
    expect(failed.next).toBe("throw");
    expect((failed as { error: unknown }).error).toBe(timeout);
  });

  it("a result over 1 MiB fails the attempt with step.output_too_large", () => {
    const big = new Uint8Array(MAX_PAYLOAD_BYTES + 1);
    const end = endAttempt(attempt(1, config(0)), { ok: true, result: big }, T0, true);
    expect(end.next).toBe("throw");
    expect(WorkflowError.is((end as { error: unknown }).error, "step.output_too_large")).toBe(true);
    expect(end.step).toMatchObject({ status: "failed", result: null });
    expect(end.step.error?.message).toContain(
      `charge-1 output is too large (${MAX_PAYLOAD_BYTES + 1} bytes)`,
    );
    const exact = endAttempt(attempt(1), { ok: true, result: new Uint8Array(MAX_PAYLOAD_BYTES) }, T0, true);
    expect(exact.next).toBe("return");
  });
});

describe("loseAttempt: an attempt found running after the process stopped", () => {
  const running: StepRow = {
    workflow: "orders",
    instanceId: "o-1",
    ...step,
    seq: 3,
    status: "running",
    config: config(5),
    attempts: 2,
    result: null,
    error: { name: "Error", message: "first attempt failed" },
    startedAt: T0,
    endedAt: null,
    wakeAt: null,
    eventType: null,
  };

  it("counts as a failed attempt: retried after the backoff", () => {
    const lost = loseAttempt(call, running, config(5), T0 + 500);
    expect(lost).toMatchObject({ next: "retry", at: T0 + 500 + 10_000 });
    expect(lost.step).toMatchObject({ status: "retrying", attempts: 2, wakeAt: T0 + 10_500 });
    expect(lost.step.error?.name).toBe(ATTEMPT_LOST_ERROR);
    expect(lost.history.map((h) => [h.type, (h.data as { attempt: number }).attempt])).toEqual([
      ["attempt_errored", 2],
    ]);
  });

  it("fails the step when retries are spent", () => {
    const lost = loseAttempt(call, running, config(1), T0 + 500);
    expect(lost.next).toBe("throw");
    expect(lost.step).toMatchObject({ status: "failed", endedAt: T0 + 500, wakeAt: null });
    expect((lost as { error: Error }).error.name).toBe(ATTEMPT_LOST_ERROR);
    expect(lost.history.map((h) => h.type)).toEqual(["attempt_errored", "step_errored"]);
  });
});

describe("waits", () => {
  it("waitMode: no wait, in memory up to the hot threshold, parked beyond it", () => {
    expect(waitMode(T0, T0, 5000)).toBe("now");
    expect(waitMode(T0 - 1, T0, 5000)).toBe("now");
    expect(waitMode(T0 + 5000, T0, 5000)).toBe("hot");
    expect(waitMode(T0 + 5001, T0, 5000)).toBe("park");
  });

  it("a sleep stores sleeping until it wakes, then succeeds with the result it is given", () => {
    const sleepCall: StepCall = { ...call, key: { kind: "sleep", name: "nap", count: 2 } };
    const start = startSleep(sleepCall, T0, 60_000);
    expect(start.step).toMatchObject({
      kind: "sleep",
      status: "sleeping",
      startedAt: T0,
      wakeAt: T0 + 60_000,
    });
    expect(start.history.map((h) => [h.type, h.data])).toEqual([
      ["sleep_started", { durationMs: 60_000, wakeAt: T0 + 60_000 }],
    ]);
    const done = endSleep(sleepCall, start.step, T0 + 60_003, bytes(9));
    expect(done.step).toMatchObject({
      status: "succeeded",
      startedAt: T0,
      endedAt: T0 + 60_003,
      wakeAt: null,
      result: bytes(9),
    });
    expect(done.history.map((h) => [h.type, h.timestamp])).toEqual([["sleep_completed", T0 + 60_003]]);
  });

  const waitCall: StepCall = { ...call, key: { kind: "waitForEvent", name: "approval", count: 1 } };

  it("a wait receiving an event already buffered: delivered at once, even past its timeout", () => {
    const start = startWait(waitCall, T0, "approved", T0 + 3_600_000);
    expect(start.step).toMatchObject({ status: "waiting", eventType: "approved", wakeAt: T0 + 3_600_000 });
    expect(start.history.map((h) => [h.type, h.data])).toEqual([
      ["wait_started", { eventType: "approved", timeoutAt: T0 + 3_600_000 }],
    ]);
    expect(waitNext(1, T0 + 3_600_000, T0, 5000)).toBe("deliver");
    expect(waitNext(1, T0 - 1, T0, 5000)).toBe("deliver");
    // Sent a minute before the wait began.
    const buffered: EventRow = {
      workflow: "orders",
      instanceId: "o-1",
      seq: 1,
      type: "approved",
      payload: bytes(1),
      timestamp: T0 - 60_000,
      consumedBy: null,
    };
    const received = receiveEvent(waitCall, T0, buffered, bytes(4, 2), T0 + 1);
    expect(received.step).toEqual({
      workflow: "orders",
      instanceId: "o-1",
      kind: "waitForEvent",
      name: "approval",
      count: 1,
      seq: 3,
      status: "succeeded",
      config: null,
      attempts: 0,
      result: bytes(4, 2),
      error: null,
      startedAt: T0,
      endedAt: T0 + 1,
      wakeAt: null,
      eventType: "approved",
    });
    expect(received.history.map((h) => [h.type, h.timestamp])).toEqual([["wait_completed", T0 + 1]]);
  });

  it("without a buffered event, a wait times out, waits in memory or parks", () => {
    expect(waitNext(0, T0, T0, 5000)).toBe("timeOut");
    expect(waitNext(0, T0 + 5000, T0, 5000)).toBe("hot");
    expect(waitNext(0, T0 + 5001, T0, 5000)).toBe("park");
  });

  it("a wait timing out fails the step under the engine's name and throws Cloudflare's error", () => {
    const timedOut = timeOutWait(waitCall, T0, "approved", 60_000, T0 + 60_000);
    expect(timedOut.step).toMatchObject({
      status: "failed",
      startedAt: T0,
      endedAt: T0 + 60_000,
      eventType: "approved",
      error: { name: "WorkflowTimeoutError", message: "Execution timed out after 60000ms" },
    });
    expect(timedOut.history.map((h) => [h.type, h.data])).toEqual([
      [
        "wait_timed_out",
        { error: { name: "WorkflowTimeoutError", message: "Execution timed out after 60000ms" } },
      ],
    ]);
    expect(timedOut.error).toBeInstanceOf(WorkflowTimeoutError);
    expect(timedOut.error.name).toBe("Error");
  });
});

describe("endRun", () => {
  const cleared = { readyAt: null, owner: null, leaseUntil: null, pausedAt: null, updatedAt: T0 };

  it("completes with the output", () => {
    const end = endRun("orders", "o-1", { output: bytes(5) }, T0);
    expect(end.patch).toEqual({ status: "complete", output: bytes(5), endedAt: T0, ...cleared });
    expect(end.history.map((h) => h.type)).toEqual(["workflow_completed"]);
    expect(end.statusIn).toEqual(["running", "waiting", "waitingForPause"]);
  });

  it("errors with the error run() threw", () => {
    const error = { name: "Error", message: "bad", where: "run" as const };
    const end = endRun("orders", "o-1", { error }, T0);
    expect(end.patch).toEqual({ status: "errored", error, endedAt: T0, ...cleared });
    expect(end.history.map((h) => [h.type, h.data])).toEqual([["workflow_errored", { error }]]);
  });

  it("errors when the output is too large or cannot be stored", () => {
    const big = endRun("orders", "o-1", { output: new Uint8Array(MAX_PAYLOAD_BYTES + 1) }, T0);
    expect(big.patch.error).toEqual({
      name: "WorkflowError",
      message: `(payload.too_large) The instance output is ${MAX_PAYLOAD_BYTES + 1} bytes encoded; the limit is 1 MiB`,
    });
    const fn = endRun("orders", "o-1", { unserialisable: "() => 1 could not be cloned." }, T0);
    expect(fn.patch.status).toBe("errored");
    expect("output" in fn.patch).toBe(false);
    expect(fn.patch.error).toEqual({
      name: "WorkflowFatalError",
      message: "The instance output is not serialisable (() => 1 could not be cloned.)",
    });
  });
});

describe("parking", () => {
  const base: ParkState = {
    workflow: "orders",
    instanceId: "o-1",
    pausing: false,
    wakeAt: T0 + 3_600_000,
    waitTypes: [],
    storedStatus: "running",
  };
  const event = (type: string, consumedBy: string | null): EventRow => ({
    workflow: "orders",
    instanceId: "o-1",
    seq: 1,
    type,
    payload: bytes(),
    timestamp: T0 - 1,
    consumedBy,
  });

  it("a long sleep parks the instance waiting, without an owner, ready at its wake-up", () => {
    const w = park(base, [], T0);
    expect(w.patch).toEqual({
      status: "waiting",
      readyAt: T0 + 3_600_000,
      priority: 0,
      updatedAt: T0,
      owner: null,
      leaseUntil: null,
    });
    expect(w.history.map((h) => h.type)).toEqual(["workflow_waiting"]);
    expect(w.statusIn).toEqual(["running", "waiting"]);
    expect(w.notifyReady).toBe(false);
    // Already stored waiting: no second entry.
    expect(park({ ...base, storedStatus: "waiting" }, [], T0).history).toEqual([]);
  });

  it("an event wait with nothing to wake it parks with no ready time", () => {
    const w = park(
      { ...base, wakeAt: null, waitTypes: ["approved"] },
      [event("approved", "waitForEvent:1:a")],
      T0,
    );
    expect(w.patch.readyAt).toBeNull();
    expect(w.notifyReady).toBe(false);
  });

  it("an event that arrived after the last delivery makes it ready at once, and workers are told", () => {
    const state = { ...base, waitTypes: ["approved"] };
    const w = park(state, [event("other", null), event("approved", null)], T0);
    expect(w.patch.readyAt).toBe(T0);
    expect(w.notifyReady).toBe(true);
    // An unconsumed event of a type nobody waits for changes nothing.
    expect(park(state, [event("other", null)], T0).patch.readyAt).toBe(T0 + 3_600_000);
  });

  it("a pausing run parks paused", () => {
    const w = park({ ...base, pausing: true }, [], T0);
    expect(w.patch).toEqual({
      status: "paused",
      pausedAt: T0,
      readyAt: null,
      updatedAt: T0,
      owner: null,
      leaseUntil: null,
    });
    expect(w.history.map((h) => h.type)).toEqual(["workflow_paused"]);
    expect(w.statusIn).toEqual(["running", "waiting", "waitingForPause"]);
  });

  it("parks paused when a pause arrived meanwhile, only over waitingForPause", () => {
    const w = parkPaused("orders", "o-1", T0);
    expect(w.patch.status).toBe("paused");
    expect(w.statusIn).toEqual(["waitingForPause"]);
  });
});

describe("planRestart", () => {
  const stepRow = (kind: StepRow["kind"], name: string, count: number, seq: number): StepRow => ({
    workflow: "orders",
    instanceId: "o-1",
    kind,
    name,
    count,
    seq,
    status: "succeeded",
    config: null,
    attempts: 1,
    result: null,
    error: null,
    startedAt: T0 + seq,
    endedAt: T0 + seq,
    wakeAt: null,
    eventType: null,
  });
  // Stored in key order, not call order: the plan goes by seq.
  const steps = [
    stepRow("do", "charge", 1, 1),
    stepRow("do", "charge", 2, 4),
    stepRow("do", "ship", 1, 3),
    stepRow("sleep", "cool off", 1, 2),
    stepRow("waitForEvent", "approval", 1, 5),
  ];
  let id = 0;
  const entry = (type: HistoryEntry["type"], s?: { kind: StepRow["kind"]; name: string; count: number }) =>
    ({ eventId: ++id, workflow: "orders", instanceId: "o-1", type, timestamp: T0, step: s }) as HistoryEntry;
  const history = [
    entry("workflow_queued"),
    entry("step_started", { kind: "do", name: "charge", count: 1 }),
    entry("sleep_started", { kind: "sleep", name: "cool off", count: 1 }),
    entry("step_started", { kind: "do", name: "ship", count: 1 }), // eventId 4
    entry("step_started", { kind: "do", name: "charge", count: 2 }),
    entry("wait_started", { kind: "waitForEvent", name: "approval", count: 1 }),
  ];

  it("restart-from keeps exactly the steps started before the target", () => {
    const plan = planRestart({ epoch: 7 }, { name: "ship" }, steps, history, T0 + 9);
    if (plan.wipe !== "from") throw new Error("expected a plan from a step");
    expect(plan.keep.map((s) => `${s.kind}:${s.name}-${s.count}`)).toEqual([
      "do:charge-1",
      "sleep:cool off-1",
    ]);
    expect(plan.delete.map((s) => s.seq)).toEqual([4, 3, 5]);
    expect(plan.deletedKeys).toEqual(["do:2:charge", "do:1:ship", "waitForEvent:1:approval"]);
    expect(plan.eventsOf).toEqual(["waitForEvent:1:approval"]);
    expect(plan.historyAfterEventId).toBe(3);
    expect(plan.patch).toEqual({
      epoch: 8,
      output: null,
      error: null,
      startedAt: null,
      endedAt: null,
      pausedAt: null,
      readyAt: T0 + 9,
      priority: 1,
      owner: null,
      leaseUntil: null,
    });
    expect(plan.history).toEqual(["workflow_queued"]);
  });

  it("the target is named by type and count; restarting from the first step keeps nothing", () => {
    const fromSleep = planRestart({ epoch: 1 }, { name: "cool off", type: "sleep" }, steps, history, T0);
    expect(fromSleep.wipe === "from" && fromSleep.keep.map((s) => s.name)).toEqual(["charge"]);
    const second = planRestart({ epoch: 1 }, { name: "charge", count: 2 }, steps, history, T0);
    expect(second.wipe === "from" && second.keep.map((s) => s.seq).sort()).toEqual([1, 2, 3]);
    const first = planRestart({ epoch: 1 }, { name: "charge" }, steps, history, T0);
    expect(first.wipe === "from" && first.keep).toEqual([]);
  });

  it("without from, everything goes", () => {
    const plan = planRestart({ epoch: 2 }, undefined, [], [], T0);
    expect(plan.wipe).toBe("all");
    expect(plan.patch.epoch).toBe(3);
  });

  it("a target that is not stored is refused", () => {
    expect(() => planRestart({ epoch: 1 }, { name: "refund" }, steps, history, T0)).toThrow(
      'Step "refund" not found in execution history',
    );
    expect(() => planRestart({ epoch: 1 }, { name: "ship", type: "sleep" }, steps, history, T0)).toThrow(
      expect.objectContaining({ code: "instance.cannot_restart" }),
    );
  });
});
