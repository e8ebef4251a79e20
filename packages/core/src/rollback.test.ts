import { describe, expect, it } from "vitest";
import { defaultStepConfig, type ResolvedStepConfig } from "./config.ts";
import { WorkflowError } from "./errors.ts";
import type { StepRow } from "./records.ts";
import {
  apiStatus,
  eligibleRollbacks,
  endRollbacks,
  parseRollbackOptions,
  ROLLBACK_MISSING,
  rollbackCall,
  rollbackMissing,
  startRollbacks,
  TERMINATE_TRIGGER_ERROR,
} from "./rollback.ts";
import { type Attempt, endAttempt, startAttempt } from "./transitions.ts";

const T0 = 1_767_225_600_000;
const defaults = defaultStepConfig("1 second");
const rbConfig: ResolvedStepConfig = {
  retries: { limit: 2, delay: 5, backoff: "linear" },
  timeout: "1 minute",
};

function row(over: Partial<StepRow>): StepRow {
  return {
    workflow: "trip",
    instanceId: "t-1",
    kind: "do",
    name: "book",
    count: 1,
    seq: 1,
    status: "succeeded",
    config: defaults,
    attempts: 1,
    result: null,
    error: null,
    startedAt: T0,
    endedAt: T0 + 1,
    wakeAt: null,
    eventType: null,
    ...over,
  };
}

describe("parseRollbackOptions", () => {
  const fn = async () => {};
  it("is undefined without options and resolves rollbackConfig over the defaults", () => {
    expect(parseRollbackOptions("s", undefined, defaults)).toBeUndefined();
    expect(parseRollbackOptions("s", { rollback: fn }, defaults)?.config).toBe(defaults);
    const parsed = parseRollbackOptions(
      "s",
      { rollback: fn, rollbackConfig: { retries: { limit: 3, delay: "15 seconds", backoff: "linear" } } },
      defaults,
    );
    expect(parsed?.config).toEqual({
      retries: { limit: 3, delay: "15 seconds", backoff: "linear" },
      timeout: "10 minutes",
    });
    expect(parsed?.rollback).toBe(fn);
  });

  it.each([
    [null, 'Rollback options for "s" must be an object'],
    [42, 'Rollback options for "s" must be an object'],
    [[fn], 'Rollback options for "s" must be an object'],
    [{}, 'Rollback for "s" must be a function'],
    [{ rollback: "nope" }, 'Rollback for "s" must be a function'],
    [{ rollback: fn, rollbackConfig: 5 }, 'Rollback config for "s" is in a invalid format.'],
    [
      { rollback: fn, rollbackConfig: { sensitive: "output" } },
      'Rollback config for "s" is in a invalid format.',
    ],
    [
      { rollback: fn, rollbackConfig: { retries: { limit: -1 } } },
      'Rollback config for "s" is in a invalid format.',
    ],
    [
      { rollback: fn, rollbackConfig: { timeout: "soon" } },
      'Rollback config for "s" is in a invalid format.',
    ],
  ])("refuses %j with upstream's text", (options, message) => {
    let caught: unknown;
    try {
      parseRollbackOptions("s", options, defaults);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(WorkflowError);
    expect((caught as WorkflowError).code).toBe("step.invalid_config");
    expect((caught as Error).message).toBe(`(step.invalid_config) ${message}`);
  });
});

describe("eligibleRollbacks", () => {
  it("takes started steps with a rollback, newest start first, including the failed one", () => {
    const steps = [
      row({ name: "a", seq: 1, hasRollback: true, rollbackConfig: rbConfig }),
      row({ name: "plain", seq: 2 }),
      row({ name: "b", seq: 3, hasRollback: true, rollbackConfig: rbConfig }),
      row({ kind: "sleep", name: "nap", seq: 4, config: null, attempts: 0 }),
      row({ name: "c", seq: 5, status: "failed", hasRollback: true, rollbackConfig: rbConfig }),
    ];
    expect(eligibleRollbacks(steps).map((s) => s.name)).toEqual(["c", "b", "a"]);
  });

  it("leaves out steps whose rollback has an outcome, keeps one whose rollback is retrying", () => {
    const steps = [
      row({ name: "a", seq: 1, hasRollback: true, rollbackConfig: rbConfig }),
      row({ name: "b", seq: 2, hasRollback: true, rollbackConfig: rbConfig }),
      row({ name: "c", seq: 3, hasRollback: true, rollbackConfig: rbConfig }),
      row({ kind: "rollback", name: "c", seq: 3 }),
      row({ kind: "rollback", name: "b", seq: 2, status: "retrying", endedAt: null }),
    ];
    expect(eligibleRollbacks(steps).map((s) => s.name)).toEqual(["b", "a"]);
  });

  it("ignores a step that never started an attempt", () => {
    expect(eligibleRollbacks([row({ attempts: 0, hasRollback: true, status: "running" })])).toEqual([]);
  });
});

describe("rollback steps", () => {
  const forward = row({ name: "book", count: 2, seq: 7, hasRollback: true, rollbackConfig: rbConfig });
  const call = rollbackCall(forward);
  const attempt = (n: number): Attempt => ({
    call,
    config: rbConfig,
    stepStartedAt: T0,
    attempt: n,
    startedAt: T0 + n,
    previousError: null,
  });

  it("is keyed (rollback, name, count) of its forward step and writes rollback_* entries", () => {
    expect(call.key).toEqual({ kind: "rollback", name: "book", count: 2 });
    expect(startAttempt(attempt(1)).history.map((h) => h.type)).toEqual([
      "rollback_step_started",
      "rollback_attempt_started",
    ]);
    const ok = endAttempt(attempt(1), { ok: true, result: new Uint8Array([1]) }, T0 + 5, true);
    expect(ok.history.map((h) => h.type)).toEqual(["rollback_attempt_completed", "rollback_step_completed"]);
    expect(ok.step.kind).toBe("rollback");
  });

  it("retries under its rollbackConfig, then fails for good", () => {
    const first = endAttempt(attempt(1), { ok: false, error: new Error("x") }, T0 + 10, true);
    expect(first.next).toBe("retry");
    expect(first.history[0]).toMatchObject({ type: "rollback_attempt_errored", data: { retryDelayMs: 5 } });
    const last = endAttempt(attempt(3), { ok: false, error: new Error("x") }, T0 + 20, true);
    expect(last.next).toBe("throw");
    expect(last.history.map((h) => h.type)).toEqual(["rollback_attempt_errored", "rollback_step_errored"]);
  });

  it("a missing handler fails with RollbackMissing", () => {
    const w = rollbackMissing(call, forward, T0);
    expect(w.step).toMatchObject({ kind: "rollback", status: "failed", error: ROLLBACK_MISSING });
    expect(w.history).toEqual([
      expect.objectContaining({ type: "rollback_step_errored", data: { error: ROLLBACK_MISSING } }),
    ]);
  });

  it("forward rows carry has_rollback only when a rollback was registered", () => {
    const plain: Attempt = { ...attempt(1), call: { ...call, key: { kind: "do", name: "x", count: 1 } } };
    expect("hasRollback" in startAttempt(plain).step).toBe(false);
    expect(startAttempt({ ...plain, rollbackConfig: rbConfig }).step).toMatchObject({
      hasRollback: true,
      rollbackConfig: rbConfig,
    });
  });
});

describe("the phase", () => {
  const triggerError = { name: "Error", message: "boom" };

  it("starts by recording its trigger", () => {
    const w = startRollbacks("trip", "t-1", { trigger: "error", triggerError }, 3, T0);
    expect(w.patch).toEqual({ rollback: { trigger: "error", triggerError, totalSteps: 3 }, updatedAt: T0 });
    expect(w.history).toEqual([
      expect.objectContaining({ type: "rollback_started", data: { triggerError, totalSteps: 3 } }),
    ]);
  });

  it("ends errored with the trigger error, or terminated, with the outcome", () => {
    const ok = endRollbacks("trip", "t-1", { trigger: "error", triggerError }, 2, 2, undefined, T0);
    expect(ok.patch).toMatchObject({
      status: "errored",
      error: triggerError,
      rollback: { trigger: "error", triggerError, outcome: "complete" },
    });
    expect(ok.history.map((h) => h.type)).toEqual(["rollback_completed", "workflow_errored"]);
    const failed = endRollbacks(
      "trip",
      "t-1",
      { trigger: "terminate", triggerError: TERMINATE_TRIGGER_ERROR },
      3,
      1,
      { name: "Error", message: "no" },
      T0,
    );
    expect(failed.patch).toMatchObject({
      status: "terminated",
      rollback: { outcome: "failed", error: { name: "Error", message: "no" } },
    });
    expect(failed.history.map((h) => h.type)).toEqual(["rollback_errored", "workflow_terminated"]);
  });

  it("shows rollingBack while under way and running or waiting", () => {
    const rollback = { trigger: "error" as const, triggerError };
    expect(apiStatus({ status: "running", rollback })).toBe("rollingBack");
    expect(apiStatus({ status: "waiting", rollback })).toBe("rollingBack");
    expect(apiStatus({ status: "paused", rollback })).toBe("paused");
    expect(apiStatus({ status: "errored", rollback: { ...rollback, outcome: "complete" } })).toBe("errored");
    expect(apiStatus({ status: "running" })).toBe("running");
  });
});
