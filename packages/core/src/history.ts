import type { StepKind } from "./step-key.ts";

/** History entry types: the event names of SPEC §5 (and of Cloudflare's `subscribe()`). */
export type HistoryEventType =
  | "workflow_queued"
  | "workflow_started"
  | "workflow_running"
  | "workflow_paused"
  | "workflow_waiting_for_pause"
  | "workflow_waiting"
  | "workflow_completed"
  | "workflow_errored"
  | "workflow_terminated"
  | "step_started"
  | "step_completed"
  | "step_errored"
  | "attempt_started"
  | "attempt_completed"
  | "attempt_errored"
  | "sleep_started"
  | "sleep_completed"
  | "wait_started"
  | "wait_completed"
  | "wait_timed_out";

export const FINAL_HISTORY_EVENTS: readonly HistoryEventType[] = [
  "workflow_completed",
  "workflow_errored",
  "workflow_terminated",
];

/**
 * One line of an instance's append-only log. `eventId` increases across the whole store, so a
 * subscriber can resume after the last id it saw. Step entries name their step.
 */
export interface HistoryEntry {
  eventId: number;
  workflow: string;
  instanceId: string;
  type: HistoryEventType;
  timestamp: number;
  step?: { kind: StepKind; name: string; count: number };
  /** Event-specific details: `attempt`, `error`, `retryDelayMs`, `durationMs`, `eventType`, `config`. */
  data?: Record<string, unknown>;
}

export type NewHistoryEntry = Omit<HistoryEntry, "eventId">;
