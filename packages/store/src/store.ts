import type { InstanceStatus } from "@cairn/core";
import type {
  ClaimedInstance,
  ClaimOptions,
  EventRow,
  HistoryEntry,
  InstanceCreate,
  InstanceGuard,
  InstancePage,
  InstancePatch,
  InstanceRow,
  ListInstancesQuery,
  NewHistoryEntry,
  NewInstance,
  StepCommit,
  StepKind,
  StepRow,
  StoreMessage,
} from "./types.ts";

/**
 * Instances: one row per execution of a workflow.
 */
export interface InstanceStore {
  /** Inserts unless an instance with that workflow and id exists; returns whether it was inserted. */
  insert(row: NewInstance): Promise<boolean>;
  /**
   * Creates an instance with its history, started by the creating worker or queued (see
   * `InstanceCreate.start`), atomically. `exists` when the id is taken (nothing is written).
   * `createWith` builds it from the other operations.
   */
  create(c: InstanceCreate): Promise<"started" | "queued" | "exists">;
  /**
   * `insert` for many rows at once, atomically: one result per row, in order. Of rows with the same
   * workflow and id, only the first can be inserted.
   */
  insertMany(rows: NewInstance[]): Promise<boolean[]>;
  /**
   * Reads one instance. With `lock`, inside a transaction, the row stays locked until it ends, so a
   * read-then-write cannot interleave with another writer of that instance (PostgreSQL `FOR UPDATE`;
   * SQLite transactions are serialized anyway).
   */
  get(workflow: string, id: string, options?: { lock?: boolean }): Promise<InstanceRow | undefined>;
  /**
   * Applies `patch` if the row matches `guard`; returns whether it did. This is how every writer is
   * fenced: a run passes the epoch it was claimed with, a control command the statuses it acts on.
   * `history` is appended, atomically with the update, only when it applies.
   */
  update(
    workflow: string,
    id: string,
    patch: InstancePatch,
    guard?: InstanceGuard,
    history?: NewHistoryEntry[],
  ): Promise<boolean>;
  /** Removes the instance with its steps, events and history. */
  delete(workflow: string, id: string): Promise<boolean>;
  /** Cursor-paginated, ordered by creation time then id; stable under concurrent inserts. */
  list(query: ListInstancesQuery): Promise<InstancePage>;
  /** Instance counts per workflow and status. */
  countByStatus(workflow?: string): Promise<{ workflow: string; status: InstanceStatus; count: number }[]>;
  /**
   * Claims up to `limit` runnable instances: `queued` or `waiting` with `readyAt <= now` and no live
   * lease; waking ones (priority 0) first, then by `readyAt`. Instances left `running`, `waiting` or
   * `waitingForPause` by another worker whose lease expired are claimed too, first. Each claimed instance
   * becomes `running` (a `waitingForPause` one keeps that status), gets a new epoch, the owner and a
   * lease; the rows are returned as they are after the claim. Rows left by the process before
   * `expireLeases` have `takenOver: true` (stores shared by workers flag every takeover of an expired
   * lease): a step attempt may have been in flight when that process stopped.
   */
  claim(options: ClaimOptions): Promise<ClaimedInstance[]>;
  /**
   * Marks every lease as expired, so the next `claim` takes over instances left `running` or
   * `waitingForPause` by a worker that died. Only for a worker that knows it is alone (embedded SQLite).
   */
  expireLeases(): Promise<number>;
  /** The earliest `readyAt` among instances that could be claimed, to arm the wake-up timer. */
  nextReadyAt(): Promise<number | undefined>;
  /** Extends the lease of the owner's instances; returns how many it still holds. */
  renewLeases(owner: string, leaseUntil: number): Promise<number>;
  /**
   * Counts instances in `running` or `waitingForPause` (the ones that use a concurrency slot). With
   * `lockClaims`, inside a transaction, claims with `maxRunning` wait until the transaction ends, so
   * the count stays true while it starts instances of its own.
   */
  countRunning(options?: { lockClaims?: boolean }): Promise<number>;
}

/** Steps: one row per `(kind, name, count)` of an instance. */
export interface StepStore {
  list(workflow: string, instanceId: string): Promise<StepRow[]>;
  get(
    workflow: string,
    instanceId: string,
    kind: StepKind,
    name: string,
    count: number,
  ): Promise<StepRow | undefined>;
  /** Inserts or replaces the row for that step. */
  put(row: StepRow): Promise<void>;
  /**
   * Stores one step outcome of a run, atomically, if the instance still has the run's `epoch` and is
   * `running`, `waiting` or `waitingForPause`: updates its status (see `StepCommit.status`), puts the
   * step row and appends the history. Otherwise writes nothing. Returns the instance's status before
   * the commit, or `undefined` when the run no longer owns it (fenced). A concurrent claim of the
   * instance is ordered before or after it, never in between. `commitStepWith` builds it from the
   * other operations.
   */
  commit(c: StepCommit): Promise<InstanceStatus | undefined>;
  /** Removes the given steps (all of the instance's when `keys` is omitted). */
  delete(
    workflow: string,
    instanceId: string,
    keys?: { kind: StepKind; name: string; count: number }[],
  ): Promise<void>;
  /** Moves every pending timer (`wakeAt`) of an instance by `deltaMs` (resume after pause). */
  shiftWakeTimes(workflow: string, instanceId: string, deltaMs: number): Promise<void>;
  /** Whether a `waitForEvent` step of the instance is waiting for `type`. */
  hasWaiter(workflow: string, instanceId: string, type: string): Promise<boolean>;
}

/** Events sent to instances, buffered per type until a `waitForEvent` consumes them in order. */
export interface EventStore {
  insert(event: Omit<EventRow, "seq" | "consumedBy">): Promise<number>;
  list(workflow: string, instanceId: string): Promise<EventRow[]>;
  /** Marks the oldest unconsumed event of `type` as received by `stepKey` and returns it. */
  consume(workflow: string, instanceId: string, type: string, stepKey: string): Promise<EventRow | undefined>;
  /** Removes events: all of the instance's, or only those consumed by the given steps. */
  delete(workflow: string, instanceId: string, consumedBy?: string[]): Promise<void>;
}

/** The append-only log of each instance; `eventId`s increase across the whole store. */
export interface HistoryStore {
  append(entries: NewHistoryEntry[]): Promise<void>;
  /** Entries in order, after `afterEventId` when given. */
  list(
    workflow: string,
    instanceId: string,
    options?: { afterEventId?: number; limit?: number },
  ): Promise<HistoryEntry[]>;
  /**
   * Removes entries: all of the instance's, or those of the given steps (`stepKeyString`s) plus
   * instance-level entries after `afterEventId`.
   */
  delete(
    workflow: string,
    instanceId: string,
    filter?: { steps: string[]; afterEventId: number },
  ): Promise<void>;
}

/** Everything a transaction can touch. */
export interface StoreTx {
  instances: InstanceStore;
  steps: StepStore;
  events: EventStore;
  history: HistoryStore;
  /**
   * Sends a message to every process listening on the store, when (and only if) the transaction
   * commits. Stores used by one process (embedded SQLite) do not implement it.
   */
  notify?(message: StoreMessage): Promise<void>;
}

/**
 * Where Cairn keeps its state. Every method outside `transaction` is its own atomic operation.
 *
 * `transaction(fn)` runs `fn` atomically: all its writes land or none do. If `fn` throws, nothing it
 * wrote remains and the error is rethrown. Stores may commit several concurrent transactions together
 * (group commit); each still succeeds or fails on its own. `fn` must only use `tx`: it must not wait on
 * other I/O.
 *
 * ```ts
 * const created = await store.transaction(async (tx) => {
 *   if (!(await tx.instances.insert(row))) return false;
 *   await tx.history.append([{ workflow, instanceId, type: "workflow_queued", timestamp: now }]);
 *   return true;
 * });
 * ```
 */
export interface Store extends StoreTx {
  readonly kind: string;
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /**
   * Receives the messages other processes send with `tx.notify`. Delivery is best effort: workers
   * also poll, so a lost message only costs latency. `onLost` is called when the channel drops (it
   * reconnects by itself); `onRestored` once it listens again, so the listener can catch up on what
   * was sent meanwhile. Resolves to a function that stops listening.
   */
  listen?(
    onMessage: (message: StoreMessage) => void,
    onLost?: (error: unknown) => void,
    onRestored?: () => void,
  ): Promise<() => Promise<void>>;
  /** Prepares the schema (runs migrations). Idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;
}
