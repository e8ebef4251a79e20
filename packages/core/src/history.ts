import type { ResolvedStepConfig } from "./config.ts";
import type { SerializedError } from "./errors.ts";
import type { StepKind } from "./step-key.ts";

/** History entry types: the event names of SPEC §5 (and of Cloudflare's `subscribe()`), in its order. */
export const HISTORY_EVENT_TYPES = [
  "workflow_queued",
  "workflow_started",
  "workflow_running",
  "workflow_paused",
  "workflow_waiting_for_pause",
  "workflow_waiting",
  "workflow_completed",
  "workflow_errored",
  "workflow_terminated",
  "step_started",
  "step_completed",
  "step_errored",
  "attempt_started",
  "attempt_completed",
  "attempt_errored",
  "sleep_started",
  "sleep_completed",
  "wait_started",
  "wait_completed",
  "wait_timed_out",
  "rollback_started",
  "rollback_step_started",
  "rollback_attempt_started",
  "rollback_attempt_completed",
  "rollback_attempt_errored",
  "rollback_step_completed",
  "rollback_step_errored",
  "rollback_completed",
  "rollback_errored",
] as const;

export type HistoryEventType = (typeof HISTORY_EVENT_TYPES)[number];

export const FINAL_HISTORY_EVENTS: readonly HistoryEventType[] = [
  "workflow_completed",
  "workflow_errored",
  "workflow_terminated",
];

/**
 * What an attempt's end entry records of its cost (SPEC §12.2), when the run measured it: the CPU
 * time its callback used (approximate, see docs/decisions.md), its wall time (end − start) and
 * whether the CPU time went over the Worker's `limits.cpu_ms` (reported, not enforced).
 */
export interface AttemptMetrics {
  cpuTimeMs?: number;
  wallTimeMs?: number;
  cpuLimitExceeded?: boolean;
}

/**
 * The details each history entry type carries in `data` (types not listed carry none). Times are
 * epoch milliseconds; `attempt` is 1-based.
 */
export type HistoryData = {
  /** The resolved config, frozen at the first attempt. */
  step_started: { config: ResolvedStepConfig };
  attempt_started: { attempt: number };
  attempt_completed: { attempt: number } & AttemptMetrics;
  /** `retryDelayMs` is present when another attempt follows, after that wait. */
  attempt_errored: { attempt: number; error: SerializedError; retryDelayMs?: number } & AttemptMetrics;
  step_errored: { error: SerializedError };
  sleep_started: { durationMs: number; wakeAt: number };
  wait_started: { eventType: string; timeoutAt: number };
  wait_timed_out: { error: SerializedError };
  workflow_errored: { error: SerializedError };
  rollback_started: { triggerError: SerializedError; totalSteps: number };
  rollback_step_started: { config: ResolvedStepConfig };
  rollback_attempt_started: { attempt: number };
  rollback_attempt_completed: { attempt: number } & AttemptMetrics;
  rollback_attempt_errored: {
    attempt: number;
    error: SerializedError;
    retryDelayMs?: number;
  } & AttemptMetrics;
  rollback_step_errored: { error: SerializedError };
  rollback_completed: { totalSteps: number; completedSteps: number };
  rollback_errored: { error: SerializedError; totalSteps: number; completedSteps: number };
};

/** The `data` of an entry of type `T`: `undefined` for types without details. */
export type HistoryDataOf<T extends HistoryEventType> = T extends keyof HistoryData
  ? HistoryData[T]
  : undefined;

interface HistoryEntryBase<T extends HistoryEventType> {
  eventId: number;
  workflow: string;
  instanceId: string;
  type: T;
  timestamp: number;
  /** Present on step entries (`step_*`, `attempt_*`, `sleep_*`, `wait_*`): the step they belong to. */
  step?: { kind: StepKind; name: string; count: number };
  /** Event-specific details (see `HistoryData`); absent for types that have none. */
  data?: HistoryDataOf<T>;
}

/**
 * One line of an instance's append-only log, a union discriminated by `type`: narrowing on `type`
 * types `data`. `eventId` increases across the whole store, so a subscriber can resume after the
 * last id it saw.
 */
export type HistoryEntry = { [T in HistoryEventType]: HistoryEntryBase<T> }[HistoryEventType];

/** An entry before the store numbers it. */
export type NewHistoryEntry = HistoryEntry extends infer E
  ? E extends HistoryEntry
    ? Omit<E, "eventId">
    : never
  : never;
