import type {
  HistoryEntry,
  InstanceStatus,
  NewHistoryEntry,
  ResolvedStepConfig,
  SerializedError,
  StepKey,
  StepKind,
} from "@cairn/core";

/**
 * One instance as stored. Values (`params`, `output`) are opaque encoded bytes: the runtime owns the
 * encoding (structured clone), the store only keeps them.
 */
export interface InstanceRow {
  workflow: string;
  id: string;
  status: InstanceStatus;
  params: Uint8Array;
  output: Uint8Array | null;
  error: SerializedError | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  /** Set while paused: resume shifts every pending step timer by `now - pausedAt`. */
  pausedAt: number | null;
  /** When the instance should next be run; `null` when nothing will wake it by itself. */
  readyAt: number | null;
  /** 0 for waking instances, 1 for new ones: waking instances run first. */
  priority: number;
  /** Bumped by every claim and restart; every write from a run carries the epoch it was claimed with. */
  epoch: number;
  /** The worker running it, and until when its claim holds. */
  owner: string | null;
  leaseUntil: number | null;
}

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

export type InstancePatch = Partial<
  Pick<
    InstanceRow,
    | "status"
    | "output"
    | "error"
    | "updatedAt"
    | "startedAt"
    | "endedAt"
    | "pausedAt"
    | "readyAt"
    | "priority"
    | "epoch"
    | "owner"
    | "leaseUntil"
  >
>;

/** A condition an update must meet, so concurrent writers cannot overwrite newer state (fencing). */
export interface InstanceGuard {
  epoch?: number;
  statusIn?: readonly InstanceStatus[];
  owner?: string;
}

export type StepStatus = "running" | "retrying" | "sleeping" | "waiting" | "succeeded" | "failed";

/** The stored state of one step: its frozen config, attempts so far, and its outcome once it has one. */
export interface StepRow extends StepKey {
  workflow: string;
  instanceId: string;
  /**
   * The step's position among all step calls of a run (1-based). Replays call steps in the same
   * order, so it orders steps by when they started, even within one millisecond.
   */
  seq: number;
  status: StepStatus;
  config: ResolvedStepConfig | null;
  attempts: number;
  result: Uint8Array | null;
  error: SerializedError | null;
  startedAt: number;
  endedAt: number | null;
  /** When a sleeping, retrying or waiting step next needs attention (sleep end, retry, wait timeout). */
  wakeAt: number | null;
  /** The event type a `waitForEvent` step waits for. */
  eventType: string | null;
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

export interface EventRow {
  workflow: string;
  instanceId: string;
  seq: number;
  type: string;
  payload: Uint8Array;
  timestamp: number;
  /** The `waitForEvent` step that received it (`stepKeyString`), or `null` while buffered. */
  consumedBy: string | null;
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

export type { HistoryEntry, NewHistoryEntry, StepKind };
