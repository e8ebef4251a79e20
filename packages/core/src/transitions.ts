import { canRetry, type ResolvedStepConfig, retryDelayMs } from "./config.ts";
import {
  deserializeError,
  eventTimeoutError,
  eventTimeoutMessage,
  isNonRetryable,
  type SerializedError,
  serializeError,
  WorkflowError,
} from "./errors.ts";
import type {
  AttemptMetrics,
  HistoryDataOf,
  HistoryEntry,
  HistoryEventType,
  NewHistoryEntry,
} from "./history.ts";
import { MAX_PAYLOAD_BYTES } from "./limits.ts";
import type { EventRow, InstancePatch, InstanceRow, StepRow } from "./records.ts";
import { decideLostAttempt } from "./recovery.ts";
import { ACTIVE_STATUSES, type InstanceStatus } from "./status.ts";
import { type StepKey, type StepKind, stepKeyString, stepLabel } from "./step-key.ts";
import type { RestartOptions } from "./workflow.ts";

/**
 * The engine's decisions about one run, as pure functions: each takes stored rows, what just
 * happened and `now`, and returns what to write (a step row and its history entries, or an instance
 * patch) and what the run does next. The runtime (`runtime/src/run.ts`) drives them: it owns timers,
 * the pause gate, concurrency slots and the store, and commits what these return, fenced by its
 * epoch. Nothing here reads a clock or a store, or runs user code other than the `adjustDelay` a
 * caller may pass (the `adjustWait` hook); values arrive already encoded.
 */

/** One `step.*` call of a run: where its row is stored and which call it is. */
export interface StepCall {
  workflow: string;
  instanceId: string;
  /** The step's key; also the `step` of every history entry written for it. */
  key: StepKey;
  /** The call's position in the run (see `StepRow.seq`). */
  seq: number;
}

/** A step row to commit with its history entries, in one store operation. */
export interface StepWrite {
  step: StepRow;
  history: NewHistoryEntry[];
  /** A stream result's bytes, stored as the step's chunk rows (`step.result` stands for them). */
  chunks?: readonly Uint8Array[];
}

/** A history entry of an instance, before the store numbers it. */
export function historyEntry<T extends HistoryEventType>(
  workflow: string,
  instanceId: string,
  timestamp: number,
  type: T,
  step?: StepKey,
  data?: HistoryDataOf<T>,
): NewHistoryEntry {
  const e: Record<string, unknown> = { workflow, instanceId, type, timestamp };
  if (step) e.step = step;
  if (data) e.data = data;
  return e as NewHistoryEntry;
}

/** The entry a `rollback` step writes where a `do` step writes `type`. */
const ROLLBACK_ENTRY: Partial<Record<HistoryEventType, HistoryEventType>> = {
  step_started: "rollback_step_started",
  attempt_started: "rollback_attempt_started",
  attempt_completed: "rollback_attempt_completed",
  attempt_errored: "rollback_attempt_errored",
  step_completed: "rollback_step_completed",
  step_errored: "rollback_step_errored",
};

function stepEntry<T extends HistoryEventType>(
  call: StepCall,
  timestamp: number,
  type: T,
  data?: HistoryDataOf<T>,
): NewHistoryEntry {
  const t = call.key.kind === "rollback" ? (ROLLBACK_ENTRY[type] ?? type) : type;
  return historyEntry(call.workflow, call.instanceId, timestamp, t as T, call.key, data);
}

/** A step row; positional, so the hot path builds one object per row and nothing else. */
function stepRow(
  call: StepCall,
  status: StepRow["status"],
  startedAt: number,
  config: ResolvedStepConfig | null,
  attempts: number,
  result: Uint8Array | null,
  error: SerializedError | null,
  endedAt: number | null,
  wakeAt: number | null,
  eventType: string | null,
  rollbackConfig: ResolvedStepConfig | null = null,
): StepRow {
  const row: StepRow = {
    workflow: call.workflow,
    instanceId: call.instanceId,
    kind: call.key.kind,
    name: call.key.name,
    count: call.key.count,
    seq: call.seq,
    status,
    config,
    attempts,
    result,
    error,
    startedAt,
    endedAt,
    wakeAt,
    eventType,
  };
  // Only steps with a rollback carry the fields: rows of workflows without rollbacks are unchanged.
  if (rollbackConfig !== null) {
    row.hasRollback = true;
    row.rollbackConfig = rollbackConfig;
  }
  return row;
}

// ---- replay -------------------------------------------------------------------------------------

/** A stored outcome that replay hands back instead of running the step: its encoded value or error. */
export type Replay = { outcome: "value"; result: Uint8Array | null } | { outcome: "error"; error: Error };

/**
 * The replay lookup of a step call: the stored outcome to return or throw, or `undefined` when the
 * step has none yet (no row, or one still running, retrying, sleeping or waiting) and must run or go
 * on. A failed wait rethrows as the wait timeout `run()` saw the first time.
 */
export function replayStep(kind: StepKind, stored: StepRow | undefined): Replay | undefined {
  if (stored?.status === "succeeded") return { outcome: "value", result: stored.result };
  if (stored?.status !== "failed") return undefined;
  const error =
    kind === "waitForEvent"
      ? eventTimeoutError(stored.error?.message ?? eventTimeoutMessage(0))
      : deserializeError(stored.error ?? { name: "Error", message: "" });
  return { outcome: "error", error };
}

// ---- step.do attempts ---------------------------------------------------------------------------

/** One attempt of a `step.do`. */
export interface Attempt {
  call: StepCall;
  /** The step's resolved config, frozen at its first attempt. */
  config: ResolvedStepConfig;
  /** When the step's first attempt started. */
  stepStartedAt: number;
  /** 1-based. */
  attempt: number;
  /** When this attempt started. */
  startedAt: number;
  /** The previous attempt's error (this is a retry), or `null`. */
  previousError: SerializedError | null;
  /** The resolved `rollbackConfig` of a step that registered a rollback (stored with the row). */
  rollbackConfig?: ResolvedStepConfig | null;
  /** The CPU time the callback used, when the run measured it: stored with the attempt's end. */
  cpuTimeMs?: number;
  /** The CPU time an attempt may use (`limits.cpu_ms`): one over it is marked, not stopped. */
  cpuLimitMs?: number;
}

/**
 * The data of an attempt's end entry: its number, and its cost when it was measured (CPU time
 * rounded to 0.01 ms, wall time from its start to `now`, and the limit flag when it went over).
 */
export function attemptEndData(a: Attempt, now: number): { attempt: number } & AttemptMetrics {
  if (a.cpuTimeMs === undefined) return { attempt: a.attempt };
  const cpuTimeMs = Math.round(a.cpuTimeMs * 100) / 100;
  const wallTimeMs = now - a.startedAt;
  return a.cpuLimitMs !== undefined && cpuTimeMs > a.cpuLimitMs
    ? { attempt: a.attempt, cpuTimeMs, wallTimeMs, cpuLimitExceeded: true }
    : { attempt: a.attempt, cpuTimeMs, wallTimeMs };
}

/**
 * The "attempt started" marker: the step row as `running` with the attempt's start entries
 * (`step_started` on the first attempt). It keeps the previous attempt's error: on recovery it tells
 * whether that one was lost too.
 */
export function startAttempt(a: Attempt): StepWrite {
  const history: NewHistoryEntry[] = [];
  if (a.attempt === 1) history.push(stepEntry(a.call, a.stepStartedAt, "step_started", { config: a.config }));
  history.push(stepEntry(a.call, a.startedAt, "attempt_started", { attempt: a.attempt }));
  const step = stepRow(
    a.call,
    "running",
    a.stepStartedAt,
    a.config,
    a.attempt,
    null,
    a.previousError,
    null,
    null,
    null,
    a.rollbackConfig ?? null,
  );
  return { step, history };
}

/**
 * What a callback's attempt gave: its value encoded, or what it threw. A `ReadableStream` result
 * has its bytes in `chunks` (the 1 MiB limit does not apply to them) and `result` standing for them.
 */
export type AttemptResult =
  | { ok: true; result: Uint8Array; chunks?: readonly Uint8Array[] }
  | { ok: false; error: unknown };

/**
 * What follows an attempt's end, with the step row and history to commit first: `return` the
 * callback's value (the step succeeded), `throw` `error` into `run()` (the step failed for good), or
 * `retry` at `at` (the step row is `retrying` until then).
 */
export type AttemptEnd = StepWrite &
  ({ next: "return" } | { next: "throw"; error: unknown } | { next: "retry"; at: number });

/** Applied to a retry's delay before it is stored (the runtime's `adjustWait` hook). */
export type AdjustDelay = (ms: number) => number;

/**
 * The end of an attempt at `now`. A result over `MAX_PAYLOAD_BYTES` fails the attempt. A failure is
 * retried after the backoff of `config.retries` while the limit allows and the error is not a
 * `NonRetryableError`; otherwise the step fails and the error itself is thrown into `run()`.
 * `shown` says whether the attempt's marker (`startAttempt`) was stored; if not, its start entries
 * go with its end.
 */
export function endAttempt(
  a: Attempt,
  result: AttemptResult,
  now: number,
  shown: boolean,
  adjustDelay?: AdjustDelay,
  /** The base delay a delay function returned (for `retries.delay: "[dynamic]"`). */
  delayBaseMs?: number,
): AttemptEnd {
  const { call, config, attempt } = a;
  const history: NewHistoryEntry[] = [];
  if (!shown) {
    if (attempt === 1) history.push(stepEntry(call, a.stepStartedAt, "step_started", { config }));
    history.push(stepEntry(call, a.startedAt, "attempt_started", { attempt }));
  }
  let failure: unknown;
  if (result.ok) {
    const size = result.result.byteLength;
    if (size <= MAX_PAYLOAD_BYTES) {
      history.push(stepEntry(call, now, "attempt_completed", attemptEndData(a, now)));
      history.push(stepEntry(call, now, "step_completed"));
      const step = stepRow(
        call,
        "succeeded",
        a.stepStartedAt,
        config,
        attempt,
        result.result,
        null,
        now,
        null,
        null,
        a.rollbackConfig ?? null,
      );
      return result.chunks
        ? { next: "return", step, history, chunks: result.chunks }
        : { next: "return", step, history };
    }
    failure = new WorkflowError(
      "step.output_too_large",
      `Step ${stepLabel(call.key)} output is too large (${size} bytes). Maximum allowed size is 1MiB.`,
    );
  } else failure = result.error;
  const error = serializeError(failure);
  if (isNonRetryable(failure) || !canRetry(config.retries, attempt)) {
    history.push(stepEntry(call, now, "attempt_errored", { ...attemptEndData(a, now), error }));
    history.push(stepEntry(call, now, "step_errored", { error }));
    const step = stepRow(
      call,
      "failed",
      a.stepStartedAt,
      config,
      attempt,
      null,
      error,
      now,
      null,
      null,
      a.rollbackConfig ?? null,
    );
    return {
      next: "throw",
      error: failure instanceof Error ? failure : deserializeError(error),
      step,
      history,
    };
  }
  const base = retryDelayMs(config.retries, attempt, delayBaseMs);
  const delay = adjustDelay ? adjustDelay(base) : base;
  history.push(
    stepEntry(call, now, "attempt_errored", { ...attemptEndData(a, now), error, retryDelayMs: delay }),
  );
  const at = now + delay;
  const step = stepRow(
    call,
    "retrying",
    a.stepStartedAt,
    config,
    attempt,
    null,
    error,
    null,
    at,
    null,
    a.rollbackConfig ?? null,
  );
  return { next: "retry", at, step, history };
}

/**
 * The attempt of a `running` step row (the marker of an attempt in flight when the process running
 * it stopped) failed: a retry after the step's backoff, or the step's failure, as `decideLostAttempt`
 * says.
 */
export function loseAttempt(
  call: StepCall,
  stored: StepRow,
  config: ResolvedStepConfig,
  now: number,
  adjustDelay?: AdjustDelay,
  /** For `retries.delay: "[dynamic]"`: the base delay to use (the function is not called for a lost attempt). */
  delayBaseMs?: number,
): StepWrite & ({ next: "throw"; error: Error } | { next: "retry"; at: number }) {
  const d = decideLostAttempt({
    name: call.key.name,
    attempts: stored.attempts,
    config,
    previousError: stored.error,
    ...(delayBaseMs !== undefined ? { delayBaseMs } : {}),
  });
  const row = { ...stored, seq: call.seq, config, error: d.error };
  if (d.retry) {
    const delay = adjustDelay ? adjustDelay(d.delayMs) : d.delayMs;
    const at = now + delay;
    const step: StepRow = { ...row, status: "retrying", endedAt: null, wakeAt: at };
    const history = [
      stepEntry(call, now, "attempt_errored", { attempt: d.attempt, error: d.error, retryDelayMs: delay }),
    ];
    return { next: "retry", at, step, history };
  }
  const step: StepRow = { ...row, status: "failed", endedAt: now, wakeAt: null };
  const history = [
    stepEntry(call, now, "attempt_errored", { attempt: d.attempt, error: d.error }),
    stepEntry(call, now, "step_errored", { error: d.error }),
  ];
  return { next: "throw", error: deserializeError(d.error), step, history };
}

// ---- waits --------------------------------------------------------------------------------------

/**
 * How a run waits until `wakeAt`: not at all (`now`), in memory (`hot`, for waits of at most
 * `hotWaitMs`), or by parking the instance in the store until then (`park`).
 */
export function waitMode(wakeAt: number, now: number, hotWaitMs: number): "now" | "hot" | "park" {
  const remaining = wakeAt - now;
  if (remaining <= 0) return "now";
  return remaining <= hotWaitMs ? "hot" : "park";
}

/** A sleep starts at `now` for `durationMs` (already adjusted): the row `sleeping` until it ends. */
export function startSleep(call: StepCall, now: number, durationMs: number): StepWrite {
  const wakeAt = now + durationMs;
  return {
    step: stepRow(call, "sleeping", now, null, 0, null, null, null, wakeAt, null),
    history: [stepEntry(call, now, "sleep_started", { durationMs, wakeAt })],
  };
}

/** A sleep ended at `now`; `result` is the encoded `undefined` it returns. */
export function endSleep(call: StepCall, sleeping: StepRow, now: number, result: Uint8Array): StepWrite {
  return {
    step: { ...sleeping, status: "succeeded", endedAt: now, wakeAt: null, result },
    history: [stepEntry(call, now, "sleep_completed")],
  };
}

/** A `waitForEvent` starts at `now`, for an event of `eventType` until `timeoutAt`. */
export function startWait(call: StepCall, now: number, eventType: string, timeoutAt: number): StepWrite {
  return {
    step: stepRow(call, "waiting", now, null, 0, null, null, null, timeoutAt, eventType),
    history: [stepEntry(call, now, "wait_started", { eventType, timeoutAt })],
  };
}

/**
 * What a wait does once it is reached (or re-armed): take an event at once when one of its type is
 * buffered (`buffered`: unconsumed events not promised to an earlier waiter), even past its timeout;
 * otherwise time out, or wait in memory or parked as `waitMode` says.
 */
export function waitNext(
  buffered: number,
  timeoutAt: number,
  now: number,
  hotWaitMs: number,
): "deliver" | "timeOut" | "hot" | "park" {
  if (buffered > 0) return "deliver";
  const mode = waitMode(timeoutAt, now, hotWaitMs);
  return mode === "now" ? "timeOut" : mode;
}

/**
 * A wait received `event` at `now`: the step succeeds with `result` (the encoded `WorkflowStepEvent`
 * that `waitForEvent` returns). The caller consumes the event in the same transaction.
 */
export function receiveEvent(
  call: StepCall,
  waitStartedAt: number,
  event: Pick<EventRow, "type">,
  result: Uint8Array,
  now: number,
): StepWrite {
  return {
    step: stepRow(call, "succeeded", waitStartedAt, null, 0, result, null, now, null, event.type),
    history: [stepEntry(call, now, "wait_completed")],
  };
}

/**
 * A wait's timeout passed at `now`: the step fails, stored under the engine's name for the error
 * (`WorkflowTimeoutError`, like Cloudflare's wait log), and `error` (Cloudflare's, naming the
 * configured `timeoutMs`) is thrown into `run()`.
 */
export function timeOutWait(
  call: StepCall,
  waitStartedAt: number,
  eventType: string,
  timeoutMs: number,
  now: number,
): StepWrite & { error: Error } {
  const error = eventTimeoutError(eventTimeoutMessage(timeoutMs));
  const recorded = { name: "WorkflowTimeoutError", message: error.message };
  return {
    step: stepRow(call, "failed", waitStartedAt, null, 0, null, recorded, now, null, eventType),
    history: [stepEntry(call, now, "wait_timed_out", { error: recorded })],
    error,
  };
}

// ---- a run's end and parking --------------------------------------------------------------------

/** An instance patch with its history entries and the guard it is written under. */
export interface InstanceWrite {
  patch: InstancePatch;
  history: NewHistoryEntry[];
  statusIn: readonly InstanceStatus[];
}

/**
 * How `run()` ended: it returned `output` (encoded), returned a value that could not be encoded
 * (`unserialisable`, the encoder's message), or threw `error` (serialized with where it happened).
 */
export type RunResult = { output: Uint8Array } | { unserialisable: string } | { error: SerializedError };

/**
 * A run's end at `now`: the instance becomes `complete` with its output, or `errored` (an output
 * over `MAX_PAYLOAD_BYTES` or unserialisable errors it too), written only while it is active. The
 * lease and timers are cleared.
 */
export function endRun(workflow: string, instanceId: string, result: RunResult, now: number): InstanceWrite {
  let error: SerializedError | undefined;
  if ("error" in result) error = result.error;
  else if ("unserialisable" in result)
    error = {
      name: "WorkflowFatalError",
      message: `The instance output is not serialisable (${result.unserialisable})`,
    };
  else if (result.output.byteLength > MAX_PAYLOAD_BYTES)
    error = {
      name: "WorkflowError",
      message: `(payload.too_large) The instance output is ${result.output.byteLength} bytes encoded; the limit is 1 MiB`,
    };
  const cleared = { updatedAt: now, readyAt: null, owner: null, leaseUntil: null, pausedAt: null };
  if (error)
    return {
      patch: { status: "errored", error, endedAt: now, ...cleared },
      history: [historyEntry(workflow, instanceId, now, "workflow_errored", undefined, { error })],
      statusIn: ACTIVE_STATUSES,
    };
  const output = (result as { output: Uint8Array }).output;
  return {
    patch: { status: "complete", output, endedAt: now, ...cleared },
    history: [historyEntry(workflow, instanceId, now, "workflow_completed")],
    statusIn: ACTIVE_STATUSES,
  };
}

/** What a run that parks knows about itself. */
export interface ParkState {
  workflow: string;
  instanceId: string;
  /** A pause is pending: the instance parks as `paused`. */
  pausing: boolean;
  /** The earliest wake-up among its long waits (sleep ends, retries, wait timeouts), if any. */
  wakeAt: number | null;
  /** The event types its waits wait for. */
  waitTypes: readonly string[];
  /** The status last stored for it by the run. */
  storedStatus: "running" | "waiting" | "waitingForPause";
}

/** A park's write, and whether workers must be told the instance is ready at once. */
export type ParkWrite = InstanceWrite & { notifyReady: boolean };

/**
 * Parking a run at `now`: nothing runs and what is left waits long or for a pause, so the instance
 * is left to the store, without an owner, and the run is dropped from memory. A pausing run parks
 * `paused`; any other parks `waiting`, ready at its earliest wake-up, or at once when one of the
 * instance's `events` (read under the row's lock) is an unconsumed one a wait is waiting for: it
 * arrived after the last delivery. When the `waiting` write finds the instance `waitingForPause`
 * (a pause arrived meanwhile), `parkPaused` is written instead.
 */
export function park(s: ParkState, events: readonly EventRow[], now: number): ParkWrite {
  if (s.pausing) return { ...parkPaused(s.workflow, s.instanceId, now), statusIn: ACTIVE_STATUSES };
  let readyAt = s.wakeAt;
  if (s.waitTypes.length > 0 && events.some((e) => e.consumedBy === null && s.waitTypes.includes(e.type)))
    readyAt = now;
  const history =
    s.storedStatus === "waiting" ? [] : [historyEntry(s.workflow, s.instanceId, now, "workflow_waiting")];
  return {
    patch: { status: "waiting", readyAt, priority: 0, updatedAt: now, owner: null, leaseUntil: null },
    history,
    statusIn: ["running", "waiting"],
    notifyReady: readyAt !== null && readyAt <= now,
  };
}

/** Parking as `paused`: written only while a pause is pending (`waitingForPause`) when not pausing. */
export function parkPaused(workflow: string, instanceId: string, now: number): ParkWrite {
  return {
    patch: { status: "paused", pausedAt: now, readyAt: null, updatedAt: now, owner: null, leaseUntil: null },
    history: [historyEntry(workflow, instanceId, now, "workflow_paused")],
    statusIn: ["waitingForPause"],
    notifyReady: false,
  };
}

// ---- restart ------------------------------------------------------------------------------------

/**
 * What `restart` deletes and writes. The instance is queued again as new, under the next epoch
 * (`patch`, with a `workflow_queued` entry). Without `from` every step, event and history entry goes
 * (`wipe: "all"`). With it, steps started before the target step (`seq` below it) are kept with
 * their history, and the target and every step after it are deleted, with the events their waits
 * consumed and the history from the first entry of a deleted step on.
 */
export type RestartPlan = { patch: InstancePatch; history: ["workflow_queued"] } & (
  | { wipe: "all" }
  | {
      wipe: "from";
      keep: StepRow[];
      delete: StepRow[];
      /** Keys (`stepKeyString`) of the deleted steps: their history goes. */
      deletedKeys: string[];
      /** Keys of the deleted `waitForEvent` steps: the events they consumed go. */
      eventsOf: string[];
      /** Every history entry with an id above this goes too. */
      historyAfterEventId: number;
    }
);

/** The step a restart starts from, as `restart({ from })` names it. */
export type RestartFrom = NonNullable<RestartOptions["from"]>;

/**
 * The plan of a restart of `instance` at `now`, from the target step `from` (or from the top when it
 * is `undefined`: `steps` and `history` are then not consulted) and the instance's stored `steps`
 * and `history`. Throws `instance.cannot_restart` when `from` names a step that is not stored.
 */
export function planRestart(
  instance: Pick<InstanceRow, "epoch">,
  from: RestartFrom | undefined,
  steps: readonly StepRow[],
  history: readonly HistoryEntry[],
  now: number,
): RestartPlan {
  const patch: InstancePatch = {
    epoch: instance.epoch + 1,
    output: null,
    error: null,
    startedAt: null,
    endedAt: null,
    pausedAt: null,
    readyAt: now,
    priority: 1,
    owner: null,
    leaseUntil: null,
  };
  if (!from) return { wipe: "all", patch, history: ["workflow_queued"] };
  const kind: StepKind = from.type ?? "do";
  const count = from.count ?? 1;
  const target = steps.find((s) => s.kind === kind && s.name === from.name && s.count === count);
  if (!target)
    throw new WorkflowError("instance.cannot_restart", `Step "${from.name}" not found in execution history`);
  const deleted = steps.filter((s) => s.seq >= target.seq);
  const deletedKeys = deleted.map(stepKeyString);
  const keySet = new Set(deletedKeys);
  const first = history.find((h) => h.step && keySet.has(stepKeyString(h.step)));
  return {
    wipe: "from",
    keep: steps.filter((s) => s.seq < target.seq),
    delete: deleted,
    deletedKeys,
    eventsOf: deletedKeys.filter((k) => k.startsWith("waitForEvent:")),
    historyAfterEventId: first ? first.eventId - 1 : Number.MAX_SAFE_INTEGER,
    patch,
    history: ["workflow_queued"],
  };
}
