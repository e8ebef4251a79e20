import type { InstanceStatus, MetricsRow, StepKey } from "@cairn/core";
import type { ObjectReplica } from "./objects.ts";
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
  ScheduleKey,
  ScheduleRow,
  StepCommit,
  StepKind,
  StepRow,
  StoreMessage,
} from "./types.ts";

/**
 * Instances: one row per execution of a workflow.
 */
export interface InstanceStore {
  /**
   * Creates an instance with its history, started by the creating worker or queued (see
   * `InstanceCreate.start`), atomically. `exists` when the id is taken (nothing is written).
   * `createWith` builds it from the other operations.
   */
  create(c: InstanceCreate): Promise<"started" | "queued" | "exists">;
  /**
   * Inserts many rows at once, atomically, each unless an instance with that workflow and id exists:
   * one result per row, in order, whether it was inserted. Of rows with the same workflow and id,
   * only the first can be inserted. The caller appends their history (`createBatch`).
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
  /**
   * Forgets what the instance's runs recorded, so it can run again (restart), leaving its row to
   * `update`. Without `from`: all its steps, events and history. With `from`: the given steps, the
   * events they received (`consumedBy`), their history entries, and the instance-level entries after
   * `from.afterEventId`; everything else stays.
   */
  rewind(workflow: string, id: string, from?: RewindFrom): Promise<void>;
  /** Cursor-paginated, ordered by creation time then id; stable under concurrent inserts. */
  list(query: ListInstancesQuery): Promise<InstancePage>;
  /** Instance counts per workflow and status. */
  countByStatus(workflow?: string): Promise<{ workflow: string; status: InstanceStatus; count: number }[]>;
}

/**
 * The work queue: which instances workers run, and who holds them. An instance is runnable when it is
 * `queued` or `waiting` with `readyAt <= now` and no live lease, or left running by a worker whose
 * lease expired.
 */
export interface WorkQueue {
  /**
   * Claims up to `limit` runnable instances: waking ones (priority 0) first, then by `readyAt`.
   * Instances left `running`, `waiting` or `waitingForPause` by another worker whose lease expired
   * are claimed too, first. Each claimed instance becomes `running` (a `waitingForPause` one keeps
   * that status), gets a new epoch, the owner and a lease; the rows are returned as they are after
   * the claim. Rows left by the process before `expireLeases` have `takenOver: true` (stores shared
   * by workers flag every takeover of an expired lease): a step attempt may have been in flight when
   * that process stopped.
   */
  claim(options: ClaimOptions): Promise<ClaimedInstance[]>;
  /** The earliest `readyAt` among instances that could be claimed, to arm the wake-up timer. */
  nextReadyAt(): Promise<number | undefined>;
  /** Extends the lease of the owner's instances; returns how many it still holds. */
  renewLeases(owner: string, leaseUntil: number): Promise<number>;
  /**
   * Marks every lease as expired, so the next `claim` takes over instances left `running` or
   * `waitingForPause` by a worker that died. Only for a worker that knows it is alone (a store
   * without `capabilities.sharedByWorkers`).
   */
  expireLeases(): Promise<number>;
  /**
   * Counts instances in `running` or `waitingForPause` (the ones that use a concurrency slot). With
   * `lockClaims`, inside a transaction, claims with `maxRunning` wait until the transaction ends, so
   * the count stays true while it starts instances of its own.
   */
  countRunning(options?: { lockClaims?: boolean }): Promise<number>;
  /** Counts `waiting` instances whose timer has come (`readyAt <= now`): sleeps and retries due. */
  countDue(now: number): Promise<number>;
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
  /**
   * Stores one step outcome of a run, atomically, if the instance still has the run's `epoch` and is
   * `running`, `waiting` or `waitingForPause`: updates its status (see `StepCommit.status`), puts the
   * step row (inserting it, or replacing the row of that step) and appends the history. Otherwise
   * writes nothing. Returns the instance's status before the commit, or `undefined` when the run no
   * longer owns it (fenced). A concurrent claim of the instance is ordered before or after it, never
   * in between. With `chunks`, the step's chunk rows are replaced by them in the same transaction.
   */
  commit(c: StepCommit): Promise<InstanceStatus | undefined>;
  /**
   * Chunk `index` (0-based) of a step's stream result (`StepCommit.chunks`), or `undefined` when
   * there is none (the step has fewer, or the instance was deleted or rewound).
   */
  chunk(workflow: string, instanceId: string, key: StepKey, index: number): Promise<Uint8Array | undefined>;
  /** Moves every pending timer (`wakeAt`) of an instance by `deltaMs` (resume after pause). */
  shiftWakeTimes(workflow: string, instanceId: string, deltaMs: number): Promise<void>;
  /** Whether a `waitForEvent` step of the instance is waiting for `type`. */
  hasWaiter(workflow: string, instanceId: string, type: string): Promise<boolean>;
}

/** Events sent to instances, buffered per type until a `waitForEvent` consumes them in order. */
export interface EventStore {
  /** Buffers an event; returns its `seq`, which increases across the whole store. */
  insert(event: Omit<EventRow, "seq" | "consumedBy">): Promise<number>;
  list(workflow: string, instanceId: string): Promise<EventRow[]>;
  /** Marks the oldest unconsumed event of `type` as received by `stepKey` and returns it. */
  consume(workflow: string, instanceId: string, type: string, stepKey: string): Promise<EventRow | undefined>;
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
   * The entries of a workflow's instances with `from <= timestamp <= to`, as metrics read them (SPEC
   * §12.2): type, instance, step name, time, and the CPU and wall time an attempt's end recorded.
   * At most `limit` rows, oldest first (by event id). A full scan of the workflow's entries: there
   * is no index by time, so the write path pays nothing for it.
   */
  metrics(workflow: string, from: number, to: number, limit: number): Promise<MetricsRow[]>;
}

/**
 * Schedules (SPEC §9.4): for each cron of a workflow (`workflows[].schedules`) or of the Worker
 * (`triggers.crons`), the latest slot already settled, so that every slot fires once across all the
 * workers sharing the store.
 */
export interface ScheduleStore {
  /** Every stored schedule row. */
  list(): Promise<ScheduleRow[]>;
  /**
   * Moves the schedule's `lastAt` to `to` if it is later than the stored one, inserting the row when
   * there is none; returns whether it did. One guarded write: of concurrent calls for the same
   * schedule and slot (in any number of processes), exactly one returns true; a `to` at or before the
   * stored `lastAt` returns false and writes nothing. Inside a transaction, the row stays locked until
   * it ends (so the instance a slot creates is written in the same transaction as the claim).
   */
  advance(key: ScheduleKey, to: number, now: number): Promise<boolean>;
}

/** What a store can do beyond the interface, which changes how the runtime uses it. */
export interface StoreCapabilities {
  /**
   * Several worker processes may claim from the store at once (PostgreSQL): each renews the leases
   * of what it runs, and claims count every worker's running instances against `maxConcurrent`.
   * When false (embedded SQLite, used by one process), the one worker that opens the store is alone
   * on it: it takes over whatever a previous process left running (`queue.expireLeases`), needs no
   * lease renewal, and counts only its own instances.
   */
  readonly sharedByWorkers: boolean;
}

/**
 * Where `instances.rewind` starts: the steps to forget (with the events they received and their
 * history), and the event id after which instance-level history goes too.
 */
export interface RewindFrom {
  steps: StepKey[];
  afterEventId: number;
}

/** Everything a transaction can touch. */
export interface StoreTx {
  instances: InstanceStore;
  queue: WorkQueue;
  steps: StepStore;
  events: EventStore;
  history: HistoryStore;
  schedules: ScheduleStore;
  /**
   * Sends a message to every process listening on the store, when (and only if) the transaction
   * commits. Stores used by one process (embedded SQLite) do not implement it.
   */
  notify?(message: StoreMessage): Promise<void>;
}

/**
 * Where Cairn keeps its state. Every method outside `transaction` is its own atomic operation.
 * Failures of the database reject with a `StoreError` (a stable `code`, the driver's error as `cause`).
 *
 * `transaction(fn)` runs `fn` atomically: all its writes land or none do. If `fn` throws, nothing it
 * wrote remains and the error is rethrown. Stores may commit several concurrent transactions together
 * (group commit); each still succeeds or fails on its own. `fn` must only use `tx`: it must not wait on
 * other I/O.
 *
 * ```ts
 * const started = await store.transaction(async (tx) => {
 *   const row = await tx.instances.get(workflow, id, { lock: true });
 *   if (row?.status !== "queued") return false;
 *   return tx.instances.update(workflow, id, { status: "running", updatedAt: now }, { epoch: row.epoch },
 *     [{ workflow, instanceId: id, type: "workflow_running", timestamp: now }]);
 * });
 * ```
 */
export interface Store extends StoreTx {
  /** The store's name, for messages (`sqlite`, `postgres`). Code decides by `capabilities`. */
  readonly kind: string;
  readonly capabilities: StoreCapabilities;
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /**
   * Calls `listener` with the duration (ms, `BEGIN` to `COMMIT` or `ROLLBACK`) of every database
   * transaction the store runs from now on, for metrics. The SQLite store group-commits, so one of
   * its transactions may hold several `transaction(fn)` calls; a PostgreSQL savepoint inside a
   * transaction is not one of its own. Listeners must be quick and must not throw. Returns a
   * function that removes the listener.
   */
  onTransaction(listener: (durationMs: number) => void): () => void;
  /**
   * On a store shared by workers: where Durable Objects' ownership and commits live, so any worker
   * can run any object (SPEC §13.7). Absent on an embedded store (objects stay in local files).
   */
  objectReplica?(): ObjectReplica;
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
