import { type ResolvedStepConfig, resolveStepConfig } from "./config.ts";
import { type SerializedError, WorkflowError } from "./errors.ts";
import type { NewHistoryEntry } from "./history.ts";
import type { InstanceRow, RollbackState, StepRow } from "./records.ts";
import { ACTIVE_STATUSES, type ApiInstanceStatus } from "./status.ts";
import { stepKeyString } from "./step-key.ts";
import { historyEntry, type InstanceWrite, type StepCall, type StepWrite } from "./transitions.ts";
import type { WorkflowRollbackContext } from "./workflow.ts";

/**
 * Rollbacks (saga compensation, SPEC §9.1) as pure decisions: which steps are compensated and in
 * which order, the phase's start and end writes, and a handler that is missing. The runtime
 * (`runtime/src/run.ts`) drives them; each compensation is a step of kind `rollback` run with the
 * attempt decisions of `transitions.ts`.
 */

/** What a `step.do` call registered: the handler (code, never stored) and its resolved config. */
export interface RollbackOptions {
  rollback: (c: WorkflowRollbackContext) => Promise<void>;
  config: ResolvedStepConfig;
}

/** What a step call made during the rollback phase is refused with (`run()` is then unwound). */
export const ROLLBACK_PHASE_MESSAGE = "Cannot execute steps during rollback phase";

/** The error a rollback whose handler is not registered after replay fails with. */
export const ROLLBACK_MISSING: SerializedError = {
  name: "RollbackMissing",
  message: "Rollback function not available in registry",
};

/** The trigger error of `terminate({ rollback: true })`. */
export const TERMINATE_TRIGGER_ERROR: SerializedError = {
  name: "WorkflowTerminatedError",
  message: "The instance was terminated with rollback",
};

const ROLLBACK_CONFIG_KEYS = new Set(["retries", "timeout"]);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Validates the fourth argument of `step.do` (upstream's texts, as `step.invalid_config`) and
 * resolves its `rollbackConfig` over `defaults`. `undefined` when the call passed none.
 */
export function parseRollbackOptions(
  name: string,
  options: unknown,
  defaults: ResolvedStepConfig,
): RollbackOptions | undefined {
  if (options === undefined) return undefined;
  if (!isPlainObject(options))
    throw new WorkflowError("step.invalid_config", `Rollback options for "${name}" must be an object`);
  if (typeof options.rollback !== "function")
    throw new WorkflowError("step.invalid_config", `Rollback for "${name}" must be a function`);
  const rollback = options.rollback as RollbackOptions["rollback"];
  const c = options.rollbackConfig;
  if (c === undefined) return { rollback, config: defaults };
  const bad = () =>
    new WorkflowError("step.invalid_config", `Rollback config for "${name}" is in a invalid format.`);
  if (!isPlainObject(c)) throw bad();
  for (const k of Object.keys(c)) if (!ROLLBACK_CONFIG_KEYS.has(k)) throw bad();
  try {
    return { rollback, config: resolveStepConfig(name, c, defaults) };
  } catch {
    throw bad();
  }
}

/** Whether a rollback step row holds an outcome (the compensation is done, for good or not). */
function settled(row: StepRow | undefined): boolean {
  return row?.status === "succeeded" || row?.status === "failed";
}

/**
 * The `do` steps to compensate, in the order their rollbacks run: steps that registered a rollback,
 * started (at least one attempt), and have no rollback outcome yet, newest start first (`seq`
 * descending). The step that failed and steps run in parallel are included.
 */
export function eligibleRollbacks(steps: Iterable<StepRow>): StepRow[] {
  const done = new Set<string>();
  const forward: StepRow[] = [];
  for (const s of steps) {
    if (s.kind === "rollback") {
      if (settled(s)) done.add(`${s.count}:${s.name}`);
    } else if (s.kind === "do" && s.hasRollback === true && s.attempts > 0) forward.push(s);
  }
  return forward.filter((s) => !done.has(`${s.count}:${s.name}`)).sort((a, b) => b.seq - a.seq);
}

/** The rollback step of a forward `do` step: same name and count, kind `rollback`. */
export function rollbackCall(forward: StepRow): StepCall {
  return {
    workflow: forward.workflow,
    instanceId: forward.instanceId,
    key: { kind: "rollback", name: forward.name, count: forward.count },
    seq: forward.seq,
  };
}

/** The stored key of the rollback step of `forward`. */
export function rollbackKeyString(forward: Pick<StepRow, "name" | "count">): string {
  return stepKeyString({ kind: "rollback", name: forward.name, count: forward.count });
}

/**
 * The rollback phase starts at `now` with `total` steps to compensate: the instance records its
 * trigger (so a crash resumes the phase) with a `rollback_started` entry. Written while active.
 */
export function startRollbacks(
  workflow: string,
  instanceId: string,
  state: RollbackState,
  total: number,
  now: number,
): InstanceWrite {
  return {
    patch: {
      rollback: { trigger: state.trigger, triggerError: state.triggerError, totalSteps: total },
      updatedAt: now,
    },
    history: [
      historyEntry(workflow, instanceId, now, "rollback_started", undefined, {
        triggerError: state.triggerError,
        totalSteps: total,
      }),
    ],
    statusIn: ACTIVE_STATUSES,
  };
}

/** A rollback whose handler is not registered (the code changed): it fails for good at `now`. */
export function rollbackMissing(call: StepCall, forward: StepRow, now: number): StepWrite {
  const error = ROLLBACK_MISSING;
  return {
    step: {
      workflow: call.workflow,
      instanceId: call.instanceId,
      kind: "rollback",
      name: call.key.name,
      count: call.key.count,
      seq: call.seq,
      status: "failed",
      config: forward.rollbackConfig ?? null,
      attempts: 0,
      result: null,
      error,
      startedAt: now,
      endedAt: now,
      wakeAt: null,
      eventType: null,
    },
    history: [
      historyEntry(call.workflow, call.instanceId, now, "rollback_step_errored", call.key, { error }),
    ],
  };
}

/**
 * The phase ended at `now`: `completed` of `total` rollbacks succeeded, and `failure` is the error
 * of the one that failed for good (the chain halted there), if any. The instance ends `errored`
 * with its trigger error (trigger `error`) or `terminated` (trigger `terminate`), its lease and
 * timers cleared, with the rollback's outcome.
 */
export function endRollbacks(
  workflow: string,
  instanceId: string,
  state: RollbackState,
  total: number,
  completed: number,
  failure: SerializedError | undefined,
  now: number,
): InstanceWrite {
  const rollback: RollbackState = {
    trigger: state.trigger,
    triggerError: state.triggerError,
    totalSteps: total,
    outcome: failure ? "failed" : "complete",
  };
  if (failure) rollback.error = failure;
  const history: NewHistoryEntry[] = [
    failure
      ? historyEntry(workflow, instanceId, now, "rollback_errored", undefined, {
          error: failure,
          totalSteps: total,
          completedSteps: completed,
        })
      : historyEntry(workflow, instanceId, now, "rollback_completed", undefined, {
          totalSteps: total,
          completedSteps: completed,
        }),
  ];
  const cleared = {
    updatedAt: now,
    readyAt: null,
    owner: null,
    leaseUntil: null,
    pausedAt: null,
    endedAt: now,
  };
  if (state.trigger === "error") {
    history.push(
      historyEntry(workflow, instanceId, now, "workflow_errored", undefined, { error: state.triggerError }),
    );
    return {
      patch: { status: "errored", error: state.triggerError, rollback, ...cleared },
      history,
      statusIn: ACTIVE_STATUSES,
    };
  }
  history.push(historyEntry(workflow, instanceId, now, "workflow_terminated"));
  return { patch: { status: "terminated", rollback, ...cleared }, history, statusIn: ACTIVE_STATUSES };
}

export const API_INSTANCE_STATUSES: readonly ApiInstanceStatus[] = [
  "queued",
  "running",
  "paused",
  "errored",
  "terminated",
  "complete",
  "waiting",
  "waitingForPause",
  "rollingBack",
  "unknown",
];

/**
 * The status people see: `rollingBack` while a rollback phase is under way and the instance is
 * running or waiting (a paused one shows its pause); the stored status otherwise. The binding's
 * `status()` reports the stored one (`running`), as its type has no `rollingBack`.
 */
export function apiStatus(row: Pick<InstanceRow, "status" | "rollback">): ApiInstanceStatus {
  if (row.rollback && !row.rollback.outcome && (row.status === "running" || row.status === "waiting"))
    return "rollingBack";
  return row.status;
}
