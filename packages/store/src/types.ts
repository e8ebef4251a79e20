import type {
  EventRow,
  HistoryEntry,
  InstancePatch,
  InstanceRow,
  InstanceStatus,
  NewHistoryEntry,
  StepKind,
  StepRow,
  StepStatus,
} from "@cairn/core";

/**
 * A row as `queue.claim` returns it. `takenOver` is set when the claim took the instance over
 * from a worker that stopped (its lease expired) while it ran the instance: a step attempt may have
 * been in flight when that process died.
 */
export type ClaimedInstance = InstanceRow & { takenOver?: boolean };

export type NewInstance = Pick<InstanceRow, "workflow" | "id" | "params" | "createdAt"> &
  Partial<
    Pick<InstanceRow, "status" | "readyAt" | "priority" | "startedAt" | "owner" | "leaseUntil" | "epoch">
  >;

/** A condition an update must meet, so concurrent writers cannot overwrite newer state (fencing). */
export interface InstanceGuard {
  epoch?: number;
  statusIn?: readonly InstanceStatus[];
  owner?: string;
}

/**
 * One step outcome of a run, written by `steps.commit` only while the run still owns the instance.
 */
export interface StepCommit {
  workflow: string;
  instanceId: string;
  /** The epoch the run was claimed with (the fence). */
  epoch: number;
  /**
   * The run's status now. Stored unless the instance is `waitingForPause` (a pause is pending and
   * keeps that status); `now` becomes `updatedAt` when it changes.
   */
  status: "running" | "waiting";
  now: number;
  step: StepRow;
  history: NewHistoryEntry[];
  /** Appended after `history`, only when the stored status changes to `status`. */
  statusEntry?: NewHistoryEntry;
  /**
   * A stream result's bytes (SPEC §9.3), stored as the step's chunk rows in order, replacing any it
   * had; `step.result` holds what stands for them. Read back with `steps.chunk`; removed with the
   * step (`instances.rewind`, `instances.delete`).
   */
  chunks?: readonly Uint8Array[];
}

/** A new instance for `instances.create`, with what goes with it. */
export interface InstanceCreate {
  /** The instance as it is when queued (status `queued`, ready at `createdAt`). */
  row: Pick<InstanceRow, "workflow" | "id" | "params" | "createdAt">;
  history: NewHistoryEntry[];
  /**
   * Start it at once, claimed by `owner` (status `running`, epoch 1, leased until `leaseUntil`),
   * while fewer than `maxRunning` instances are `running` or `waitingForPause` across all workers
   * (claims are serialized meanwhile); otherwise it is queued.
   */
  start?: { owner: string; leaseUntil: number; maxRunning?: number };
  /** A message to send (`tx.notify`) when the instance is queued. */
  notify?: StoreMessage;
}

export interface ListInstancesQuery {
  workflow: string;
  status?: InstanceStatus;
  /** Opaque, from a previous page. */
  cursor?: string;
  limit: number;
  direction?: "asc" | "desc";
  createdAfter?: number;
  createdBefore?: number;
  /** Substring of the id. */
  search?: string;
}

export interface InstancePage {
  items: InstanceRow[];
  /** Present when more items follow. */
  cursor?: string;
}

export interface ClaimOptions {
  owner: string;
  now: number;
  limit: number;
  leaseMs: number;
  /**
   * Cap on instances `running` or `waitingForPause` across all workers after the claim. Claims are
   * serialized when it is set: a claim outside `transaction` is a transaction of its own.
   */
  maxRunning?: number;
}

/**
 * A message between processes sharing a store: an instance became ready to claim, or a worker that
 * holds an instance should act on it (pause it, cancel a pending pause, drop it, or take an event).
 */
export interface StoreMessage {
  kind: "ready" | "pause" | "resume" | "abort" | "event";
  workflow?: string;
  instanceId?: string;
  eventType?: string;
  /**
   * The instance's epoch when the command was decided: a run claimed at a later epoch ignores it
   * (pause, resume, abort).
   */
  epoch?: number;
  /** The worker that sent it (workers ignore their own messages). */
  sender?: string;
}

/**
 * Which schedule a row is: a cron of workflow `name` (`kind: "workflow"`), or of the Worker's
 * `scheduled()` handler (`kind: "trigger"`, `name` empty).
 */
export interface ScheduleKey {
  kind: "workflow" | "trigger";
  name: string;
  cron: string;
}

/** One stored schedule: slots up to `lastAt` are settled (fired, or older than the schedule). */
export interface ScheduleRow extends ScheduleKey {
  lastAt: number;
  updatedAt: number;
}

// The records the engine's decisions read and write (rows, patches) live in `@cairn/core` (`records.ts`).
export type {
  EventRow,
  HistoryEntry,
  InstancePatch,
  InstanceRow,
  NewHistoryEntry,
  StepKind,
  StepRow,
  StepStatus,
};
