import {
  type InstanceStatus,
  type NewHistoryEntry,
  reconnectDelayMs,
  type StepKind,
  stepKeyString,
} from "@cairn/core";
import {
  type ClaimedInstance,
  type ClaimOptions,
  createdRow,
  createWith,
  type EventRow,
  type EventStore,
  type HistoryRowValues,
  type HistoryStore,
  historyPage,
  type InstanceCreate,
  type InstanceGuard,
  type InstancePatch,
  type InstanceStore,
  type ListInstancesQuery,
  listQuery,
  type NewInstance,
  nullableNumber,
  type ObjectReplica,
  packHistory,
  pageOf,
  type ReplicaObject,
  type RowWriters,
  rowReader,
  type ScheduleStore,
  type StepCommit,
  type StepRow,
  type StepStore,
  type Store,
  type StoreCapabilities,
  type StoreMessage,
  type StoreTx,
  statusCount,
  TransactionListeners,
  type WorkQueue,
} from "@cairn/store";
import pg from "pg";
import { batchHistory, ListBatcher, WriteBatcher } from "./batch.ts";
import { mapPostgresError, PostgresStoreError } from "./errors.ts";
import { LATEST_VERSION, MIGRATIONS } from "./migrations.ts";
import { instanceColumn, type Queries, queries, quoteSchema } from "./sql.ts";

/** The part of a query result the store reads; `pg` results have it. */
export interface QueryResultLike {
  rows: Record<string, unknown>[];
  rowCount: number | null;
  /** The command tag; `COMMIT` reports `ROLLBACK` when the transaction had already failed. */
  command?: string;
}

/**
 * Anything that runs a parameterised query: a `pg.Pool`, a `pg.Client`, a `pg.PoolClient` (for
 * example one inside a transaction of your own), or a wrapper around one of them.
 */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<QueryResultLike>;
}

export interface PostgresStoreOptions {
  /**
   * Where queries go. A pool (anything with `connect()` handing out clients that have `release()`)
   * runs each transaction on a client of its own, so transactions run in parallel. Anything else is
   * treated as one connection: the store runs one operation at a time on it, so a transaction never
   * interleaves with other writes.
   */
  db: Queryable;
  /** The schema holding Cairn's tables (created by `migrate()`); default `cairn`. */
  schema?: string;
  /**
   * `db` is one connection already inside a transaction you own: `transaction(fn)` becomes a
   * savepoint, and nothing is committed until you commit. Default false.
   */
  inTransaction?: boolean;
  /** `close()` also ends `db` (calls its `end()`). Default false: whoever made `db` ends it. */
  ownsDb?: boolean;
  /**
   * How long (ms) a transaction of the store may sit idle between statements before the server ends
   * its session; default 5000. A worker that stalls (stopped, swapped out, partitioned) in the middle
   * of a transaction would otherwise hold its row and claim locks forever, and no other worker could
   * take over its instances once its lease ran out. Cairn's own transactions never wait on user code.
   */
  transactionIdleTimeoutMs?: number;
}

export interface OpenPostgresStoreOptions {
  /** A `postgres://` URL; the store creates a `pg.Pool` for it and ends it on `close()`. */
  url?: string;
  /** A pool you own, used instead of `url`; `close()` leaves it open. */
  pool?: pg.Pool;
  /** The schema holding Cairn's tables; default `cairn`. */
  schema?: string;
  /** Connections in the pool created from `url`; default 10. */
  poolSize?: number;
  /** See `PostgresStoreOptions.transactionIdleTimeoutMs`; default 5000. */
  transactionIdleTimeoutMs?: number;
  /**
   * How long to keep trying to reach the server when it cannot be reached at open (it is down, or
   * not up yet): retries back off from 250 ms to 5 s, each logged. Default: forever (a worker waits
   * for its database, as it rides out outages once running). 0 fails at once.
   */
  connectRetryMs?: number;
  /** Where the retries are reported. Default: console.error. */
  log?: (message: string, error?: unknown) => void;
}

interface PoolLike extends Queryable {
  connect(): Promise<Queryable & { release(destroy?: boolean | Error): void }>;
}

type Run = (text: string, values?: unknown[]) => Promise<QueryResultLike>;
type Row = Record<string, unknown>;

const isPool = (db: Queryable): db is PoolLike =>
  typeof (db as Partial<PoolLike>).connect === "function" &&
  typeof (db as { totalCount?: unknown }).totalCount === "number";

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/**
 * `pg` returns bytea as a Buffer (callers get a plain Uint8Array over the same memory) and jsonb as
 * its parsed value.
 */
const bytesOf = (v: unknown): Uint8Array | null =>
  v === null || v === undefined
    ? null
    : new Uint8Array((v as Uint8Array).buffer, (v as Uint8Array).byteOffset, (v as Uint8Array).byteLength);
const rows = rowReader({
  bytes: bytesOf,
  json: <T>(v: unknown): T | null => (v as T | null | undefined) ?? null,
});

type CreateOutcome = "started" | "queued" | "exists";

/** Chunk rows of a stream result per statement: 4 MiB of binary parameters. */
const CHUNKS_PER_INSERT = 16;

/** An `instances.update` with history, waiting to be written with others of its `group` (shape). */
interface LoggedUpdate {
  workflow: string;
  id: string;
  patch: InstancePatch;
  guard: InstanceGuard;
  history: NewHistoryEntry[];
  group: string;
}

/** The fields a patch sets (an `undefined` field is absent, not a NULL), in a stable order. */
const patchKeys = (patch: InstancePatch) =>
  (Object.keys(patch) as (keyof InstancePatch)[]).filter((k) => patch[k] !== undefined).sort();

/** Prepared statement names, one per statement text, shared by every store of the process. */
const statementNames = new Map<string, string>();
const statementName = (text: string): string => {
  let name = statementNames.get(text);
  if (name === undefined) statementNames.set(text, (name = `cairn_${statementNames.size + 1}`));
  return name;
};

/** A step row's values from `kind` on, in the column order of `commitStep`. */
function stepColumns(s: StepRow): unknown[] {
  return [
    s.kind,
    s.name,
    s.count,
    s.seq,
    s.status,
    json(s.config),
    s.attempts,
    s.result,
    json(s.error),
    s.startedAt,
    s.endedAt,
    s.wakeAt,
    s.eventType,
  ];
}

/** The rows that store history entries: a step's entries appended together are one packed row. */
const pack = (entries: readonly NewHistoryEntry[]): HistoryRowValues[] => packHistory(entries);

/** Parallel arrays of history rows' columns (`pack`), for `unnest`. */
function historyArrays(rows: readonly HistoryRowValues[]): unknown[] {
  return [
    rows.map((r) => r.workflow),
    rows.map((r) => r.instanceId),
    rows.map((r) => r.type),
    rows.map((r) => r.timestamp),
    rows.map((r) => r.stepKind),
    rows.map((r) => r.stepName),
    rows.map((r) => r.stepCount),
    rows.map((r) => r.data),
  ];
}

/** Parallel arrays of step keys, for `unnest`. */
function keyArrays(keys: { kind: StepKind; name: string; count: number }[]): unknown[] {
  return [keys.map((k) => k.kind), keys.map((k) => k.name), keys.map((k) => k.count)];
}

/**
 * The scaled-out store: many workers share one PostgreSQL database, each with its own store.
 *
 * Invariants: every method outside `transaction` is one SQL statement (so atomic on its own); claims
 * and event consumption lock rows with `FOR UPDATE SKIP LOCKED`; fenced writes rely on READ COMMITTED
 * re-checking a row's guard after waiting for a concurrent writer. No group commit: PostgreSQL already
 * flushes concurrent commits together, and pooled transactions run in parallel.
 */
export class PostgresStore implements Store {
  readonly kind = "postgres";
  /** Many workers share one database. */
  readonly capabilities: StoreCapabilities = { sharedByWorkers: true };
  readonly schema: string;
  readonly instances: InstanceStore;
  readonly queue: WorkQueue;
  readonly steps: StepStore;
  readonly events: EventStore;
  readonly history: HistoryStore;
  readonly schedules: ScheduleStore;
  readonly #db: Queryable;
  readonly #pool: PoolLike | undefined;
  readonly #sql: Queries;
  readonly #inTransaction: boolean;
  readonly #ownsDb: boolean;
  /** `BEGIN` and the session setting that ends a stalled transaction, sent as one simple query. */
  readonly #begin: string;
  /** Runs one statement outside any transaction of the store's. */
  readonly #run: Run;
  /** Single-connection mode: the tail of the queue of operations. */
  #lock: Promise<unknown> = Promise.resolve();
  readonly #inFlight = new Set<Promise<unknown>>();
  /** The connection lease renewals run on (pool stores only); see `#renew`. */
  #renewClient?: Promise<pg.Client>;
  #closed = false;
  readonly #transactions = new TransactionListeners();

  constructor(options: PostgresStoreOptions) {
    this.schema = options.schema ?? "cairn";
    quoteSchema(this.schema);
    this.#db = options.db;
    this.#pool = isPool(options.db) ? options.db : undefined;
    this.#sql = queries(this.schema);
    this.#inTransaction = options.inTransaction ?? false;
    this.#ownsDb = options.ownsDb ?? false;
    const idle = options.transactionIdleTimeoutMs ?? 5000;
    if (!Number.isInteger(idle) || idle < 1)
      throw new Error(`transactionIdleTimeoutMs must be a positive whole number of ms, got ${idle}`);
    this.#begin = `BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${idle}`;
    if (this.#inTransaction && this.#pool)
      throw new Error("inTransaction needs one connection (a client), not a pool");
    this.#run = (text, values) =>
      this.#track(() => this.#exclusive(() => this.#query(this.#db, text, values)));
    const ops = this.#ops(this.#run, this.#inTransaction);
    this.instances = ops.instances;
    this.queue = ops.queue;
    if (this.#poolOptions())
      this.queue.renewLeases = async (owner, leaseUntil) =>
        (await this.#track(() => this.#renew([leaseUntil, owner]))).rowCount ?? 0;
    this.steps = ops.steps;
    this.events = ops.events;
    this.history = ops.history;
    this.schedules = ops.schedules;
    if (!this.#inTransaction) {
      const claim = ops.queue.claim;
      this.queue.claim = (o) => (o.maxRunning === undefined ? claim(o) : this.#claimLimited(o));
      this.instances.create = (c) => this.#create(c);
    }
    // With a pool, concurrent commits and loads of different runs share statements.
    if (this.#pool) {
      const commits = new WriteBatcher<StepCommit, InstanceStatus | undefined>({
        instance: (c) => `${c.workflow}\u0000${c.instanceId}`,
        // A commit with chunk rows is a transaction of its own: a group it alone is in.
        group: (c) => (c.chunks ? `chunks\u0000${c.workflow}\u0000${c.instanceId}` : ""),
        size: (c) => c.step.result?.byteLength ?? 0,
        one: ops.steps.commit,
        many: (batch) => this.#track(() => this.#commitMany(batch)),
      });
      this.steps.commit = (c) => this.#track(() => commits.write(c));
      // Concurrent creates share a statement: one count of running instances under the claim lock
      // and one commit for all of them, instead of each holding the lock through its own commit.
      const creates = new WriteBatcher<InstanceCreate, CreateOutcome>({
        instance: (c) => `${c.row.workflow}\u0000${c.row.id}`,
        group: (c) => (c.start ? `start\u0000${c.start.maxRunning ?? ""}` : ""),
        size: (c) => c.row.params.byteLength,
        one: (c) => this.#create(c),
        many: (batch) => this.#track(() => this.#createMany(batch)),
      });
      this.instances.create = (c) => this.#track(() => creates.write(c));
      const update = ops.instances.update;
      const updates = new WriteBatcher<LoggedUpdate, boolean>({
        instance: (u) => `${u.workflow}\u0000${u.id}`,
        group: (u) => u.group,
        size: (u) => u.patch.output?.byteLength ?? 0,
        one: (u) => update(u.workflow, u.id, u.patch, u.guard, u.history),
        many: (batch) => this.#track(() => this.#updateMany(batch)),
      });
      // Updates that log history (a run's end) are batched; the others are rarer and run alone.
      this.instances.update = (workflow, id, patch, guard = {}, history = []) => {
        const keys = patchKeys(patch);
        if (history.length === 0 || keys.length === 0 || guard.statusIn?.length === 0)
          return update(workflow, id, patch, guard, history);
        const group = `${keys.join()}|${guard.epoch !== undefined}|${guard.owner !== undefined}|${guard.statusIn?.join() ?? "-"}`;
        return this.#track(() => updates.write({ workflow, id, patch, guard, history, group }));
      };
      const read = (text: string) => (workflows: string[], ids: string[]) =>
        this.#track(() => this.#query(this.#db, text, [workflows, ids])).then((r) => r.rows);
      const steps = new ListBatcher<StepRow>((w, i) =>
        read(this.#sql.listStepsOf)(w, i).then((r) => r.map(rows.step)),
      );
      const events = new ListBatcher<EventRow>((w, i) =>
        read(this.#sql.listEventsOf)(w, i).then((r) => r.map(rows.event)),
      );
      this.steps.list = (workflow, id) => this.#track(() => steps.list(workflow, id));
      this.events.list = (workflow, id) => this.#track(() => events.list(workflow, id));
    }
  }

  async migrate(): Promise<void> {
    const q = this.#sql;
    for (;;) {
      const done = await this.#withTransaction(async (run) => {
        await run(q.advisoryLock, [q.migrationLockKey]);
        if ((await run(q.schemaExists, [this.schema])).rows.length === 0) await run(q.createSchema);
        await run(q.createMigrations);
        const current = Number((await run(q.schemaVersion)).rows[0]!.v);
        if (current > LATEST_VERSION)
          throw new PostgresStoreError(
            "schema_too_new",
            `This Cairn store (schema "${this.schema}") has schema version ${current}, newer than this version of Cairn understands (${LATEST_VERSION}). Upgrade Cairn.`,
          );
        const next = MIGRATIONS.find((m) => m.version > current);
        if (!next) return true;
        await run(next.sql(quoteSchema(this.schema)));
        await run(q.recordMigration, [next.version, next.name, Date.now()]);
        return false;
      });
      if (done) return;
    }
  }

  /** Durable Objects' ownership and changesets in this schema (SPEC §13.7; migration 7). */
  objectReplica(): ObjectReplica {
    const q = this.#sql;
    const run = this.#run;
    return {
      namespaceKeys: async (proposed) => {
        const classes = Object.keys(proposed);
        const out: Record<string, Uint8Array> = {};
        // A class another worker inserts meanwhile is in neither half of the answer: ask again.
        for (let i = 0; i < 3 && classes.some((c) => !out[c]); i++) {
          const rows = (await run(q.namespaceKeys, [classes, classes.map((c) => proposed[c])])).rows;
          for (const r of rows) out[String(r.class)] = bytesOf(r.key)!;
        }
        const missing = classes.filter((c) => !out[c]);
        if (missing.length) throw new Error(`no namespace key stored for ${missing.join(", ")}`);
        return out;
      },
      acquire: async ({ className, id, owner, now, leaseMs, url, name }) => {
        const values = [className, id, owner, now, now + leaseMs, url ?? null, name ?? null];
        const taken = (await run(q.acquireObject, values)).rows[0];
        if (!taken) {
          const held = (await run(q.objectHolder, [className, id])).rows[0];
          return {
            acquired: false,
            owner: String(held?.owner),
            leaseUntil: Number(held?.lease_until ?? 0),
            ...(typeof held?.owner_url === "string" ? { ownerUrl: held.owner_url } : {}),
          };
        }
        const log = (await run(q.objectLog, [className, id])).rows.map((r) => ({
          seq: Number(r.seq),
          kind: r.kind as "changeset" | "snapshot",
          bytes: bytesOf(r.bytes)!,
        }));
        return {
          acquired: true,
          epoch: Number(taken.epoch),
          log,
          alarm: nullableNumber(taken.alarm_at),
        };
      },
      list: async (className, { limit, offset }) =>
        (await run(q.listObjects, [className, limit, offset])).rows.map(replicaObject),
      get: async (className, id) => {
        const row = (await run(q.getObject, [className, id])).rows[0];
        return row ? replicaObject(row) : undefined;
      },
      count: async (classNames) => {
        const out: Record<string, number> = Object.fromEntries(classNames.map((c) => [c, 0]));
        for (const r of (await run(q.countObjects, [classNames])).rows) out[String(r.class)] = Number(r.n);
        return out;
      },
      log: async (className, id) =>
        (await run(q.objectLog, [className, id])).rows.map((r) => ({
          seq: Number(r.seq),
          kind: r.kind as "changeset" | "snapshot",
          bytes: bytesOf(r.bytes)!,
        })),
      append: async ({ className, id, owner, epoch, entry, alarm }) => {
        const text = entry.kind === "snapshot" ? q.appendSnapshot : q.appendChangeset;
        const values = [
          className,
          id,
          owner,
          epoch,
          entry.seq,
          entry.bytes,
          alarm !== undefined,
          alarm ?? null,
        ];
        return (await run(text, values)).rows.length > 0;
      },
      migrate: async (plan, now) => {
        const applied: string[] = [];
        for (;;) {
          // One migration per transaction, under a lock: workers starting together apply each once.
          const tag = await this.#withTransaction(async (run) => {
            await run(q.advisoryLock, [q.objectsMigrationLockKey]);
            const done = (await run(q.objectMigrations)).rows.map((r) => String(r.tag));
            const next = plan(done)[0];
            if (!next) return undefined;
            for (const a of next.actions)
              if (a.kind === "rename") await run(q.renameObjectClass, [a.from, a.to]);
              else if (a.kind === "delete") await run(q.deleteObjectClass, [a.className]);
            await run(q.recordObjectMigration, [next.tag, now]);
            return next.tag;
          });
          if (tag === undefined) return applied;
          applied.push(tag);
        }
      },
      renew: async (owner, leaseUntil) => (await run(q.renewObjects, [owner, leaseUntil])).rowCount ?? 0,
      release: async (className, id, owner, epoch) => {
        await run(q.releaseObject, [className, id, owner, epoch]);
      },
      dueAlarms: async (owner, now, limit) =>
        (await run(q.dueObjectAlarms, [owner, now, limit])).rows.map((r) => ({
          className: String(r.class),
          id: String(r.object_id),
          time: Number(r.alarm_at),
        })),
      nextAlarm: async (owner, now) =>
        nullableNumber((await run(q.nextObjectAlarm, [owner, now])).rows[0]?.t),
    };
  }

  onTransaction(listener: (durationMs: number) => void): () => void {
    return this.#transactions.add(listener);
  }

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return this.#withTransaction((run) => fn(this.#ops(run, true)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    const renew = this.#renewClient;
    this.#renewClient = undefined;
    await renew?.then((c) => c.end()).catch(() => {});
    if (this.#ownsDb) await (this.#db as { end?: () => Promise<void> }).end?.();
  }

  /**
   * A claim with `maxRunning` outside a transaction: one statement that waits for the claim lock,
   * counts the running instances and claims (see `claimLimited`).
   */
  async #claimLimited(o: ClaimOptions): Promise<ClaimedInstance[]> {
    const values = [o.owner, o.now, o.now + o.leaseMs, o.limit, o.maxRunning];
    return (await this.#run(this.#sql.claimLimited, values)).rows.map(rows.claimed);
  }

  /** Runs `fn` in a transaction of its own: a pooled client, or the one connection, held throughout. */
  #withTransaction<T>(fn: (run: Run) => Promise<T>): Promise<T> {
    return this.#track(async () => {
      if (this.#pool) {
        const client = await this.#pool.connect().catch((e) => Promise.reject(mapPostgresError(e)));
        // The server may end the session while the client is checked out (idle transaction timeout,
        // restart): the pool only listens for errors of idle clients, so listen here; the failed
        // query reports it, and the client is not returned to the pool.
        let broken = false;
        const onError = () => {
          broken = true;
        };
        const events = client as unknown as Partial<Pick<pg.Client, "on" | "off">>;
        events.on?.("error", onError);
        try {
          return await this.#transactionOn(client, fn);
        } catch (e) {
          broken ||= PostgresStoreError.is(e, "unavailable");
          throw e;
        } finally {
          events.off?.("error", onError);
          client.release(broken);
        }
      }
      return this.#exclusive(() => this.#transactionOn(this.#db, fn));
    });
  }

  async #transactionOn<T>(conn: Queryable, fn: (run: Run) => Promise<T>): Promise<T> {
    const nested = this.#inTransaction;
    if (nested || !this.#transactions.active) return this.#transactionBody(conn, nested, fn);
    const startedAt = performance.now();
    try {
      return await this.#transactionBody(conn, nested, fn);
    } finally {
      this.#transactions.report(startedAt);
    }
  }

  async #transactionBody<T>(conn: Queryable, nested: boolean, fn: (run: Run) => Promise<T>): Promise<T> {
    await this.#query(conn, nested ? "SAVEPOINT cairn_tx" : this.#begin);
    let value: T;
    try {
      value = await fn((text, values) => this.#query(conn, text, values));
    } catch (e) {
      // The original error wins; a failed rollback shows up on the connection's next use.
      await this.#query(
        conn,
        nested ? "ROLLBACK TO SAVEPOINT cairn_tx; RELEASE SAVEPOINT cairn_tx" : "ROLLBACK",
      ).catch(() => {});
      throw e;
    }
    if (nested) {
      await this.#query(conn, "RELEASE SAVEPOINT cairn_tx");
      return value;
    }
    const res = await this.#query(conn, "COMMIT");
    // COMMIT of a transaction where a statement failed (and `fn` caught the error) rolls back instead.
    if (res.command === "ROLLBACK")
      throw new PostgresStoreError(
        "query",
        "The transaction was rolled back: one of its statements failed, and the error was caught",
      );
    return value;
  }

  async #query(conn: Queryable, text: string, values?: unknown[]): Promise<QueryResultLike> {
    try {
      // Statements with parameters run as named prepared statements on `pg` connections: each
      // connection parses and plans a statement once, not on every call.
      if (values !== undefined && (conn instanceof pg.Client || conn instanceof pg.Pool))
        return await (conn as pg.Client).query({ name: statementName(text), text, values });
      return await conn.query(text, values);
    } catch (e) {
      throw mapPostgresError(e);
    }
  }

  /** Several logged updates of distinct instances, with the same shape, in one statement. */
  async #updateMany(batch: LoggedUpdate[]): Promise<boolean[]> {
    const first = batch[0]!;
    const keys = patchKeys(first.patch);
    const shape = {
      epoch: first.guard.epoch !== undefined,
      owner: first.guard.owner !== undefined,
      statuses: !!first.guard.statusIn,
    };
    const values: unknown[] = [batch.map((u) => u.workflow), batch.map((u) => u.id)];
    for (const k of keys)
      values.push(batch.map((u) => (k === "error" || k === "rollback" ? json(u.patch[k]) : u.patch[k])));
    if (shape.epoch) values.push(batch.map((u) => u.guard.epoch));
    if (shape.owner) values.push(batch.map((u) => u.guard.owner));
    if (shape.statuses) values.push(first.guard.statusIn);
    const h = batchHistory(batch.map((u) => pack(u.history)));
    values.push(...historyArrays(h.entries), h.item);
    const res = await this.#query(
      this.#db,
      this.#sql.updateInstancesLogged(keys.map(instanceColumn), shape),
      values,
    );
    const applied = new Set(res.rows.map((r) => Number(r.i)));
    return batch.map((_, i) => applied.has(i + 1));
  }

  /** Several step commits, of distinct instances, in one statement (see `WriteBatcher`). */
  async #commitMany(commits: StepCommit[]): Promise<(InstanceStatus | undefined)[]> {
    const col = <T>(f: (c: StepCommit) => T) => commits.map(f);
    const steps = commits.map((c) => stepColumns(c.step));
    const plain = commits.map((c) => pack(c.history));
    const h = batchHistory(
      commits.map((c, i) => (c.statusEntry ? [...plain[i]!, ...pack([c.statusEntry])] : plain[i]!)),
    );
    const res = await this.#query(this.#db, this.#sql.commitSteps, [
      col((c) => c.workflow),
      col((c) => c.instanceId),
      col((c) => c.epoch),
      col((c) => c.status),
      col((c) => c.now),
      ...steps[0]!.map((_, k) => steps.map((row) => row[k])),
      plain.map((rows) => rows.length),
      ...historyArrays(h.entries),
      h.item,
      h.place,
      col((c) => json(c.step.rollbackConfig)),
    ]);
    const statuses: (InstanceStatus | undefined)[] = commits.map(() => undefined);
    for (const r of res.rows) if (r.status !== null) statuses[Number(r.i) - 1] = r.status as InstanceStatus;
    return statuses;
  }

  /** The settings of a `pg.Pool`, to open connections of the store's own besides the pool's. */
  #poolOptions(): pg.ClientConfig | undefined {
    return (this.#pool as unknown as { options?: pg.ClientConfig } | undefined)?.options;
  }

  /**
   * Renews leases on a connection of its own, opened on first use and again after it breaks. Through
   * the pool, a heartbeat would queue behind every transaction waiting for a connection: under a
   * burst that wait exceeds the lease, and other workers take over instances that are still running.
   */
  async #renew(values: unknown[]): Promise<QueryResultLike> {
    const pending = (this.#renewClient ??= (async () => {
      const c = new pg.Client(this.#poolOptions());
      c.on("error", () => {
        if (this.#renewClient === pending) this.#renewClient = undefined;
      });
      await c.connect();
      return c;
    })());
    try {
      return await this.#query(await pending, this.#sql.renewLeases, values);
    } catch (e) {
      if (this.#renewClient === pending) this.#renewClient = undefined;
      void pending.then((c) => c.end()).catch(() => {});
      throw mapPostgresError(e);
    }
  }

  /** Counts an operation in flight (close waits for it); refuses new ones once closed. */
  #track<T>(op: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new PostgresStoreError("closed", "The Cairn store is closed"));
    const p = op();
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  /** On one connection, runs operations one at a time; with a pool, runs them straight away. */
  #exclusive<T>(op: () => Promise<T>): Promise<T> {
    if (this.#pool) return op();
    const p = this.#lock.then(op, op);
    this.#lock = p.catch(() => {});
    return p;
  }

  /** The operations on `run`'s connection; `inTransaction` when it is inside a transaction. */
  #ops(run: Run, inTransaction: boolean): StoreTx {
    const ops: StoreTx = {
      instances: this.#instanceOps(run, () => ops),
      queue: this.#queueOps(run),
      steps: this.#stepOps(run, inTransaction),
      events: this.#eventOps(run),
      history: this.#historyOps(run),
      schedules: this.#scheduleOps(run),
      notify: async (message: StoreMessage) => {
        await run(this.#sql.notify, [this.#sql.channel, JSON.stringify(message)]);
      },
    };
    return ops;
  }

  /** `instances.create` outside a transaction: one statement (see `createInstance`). */
  /** Several creates of distinct instances, started or not alike, in one statement (`WriteBatcher`). */
  async #createMany(batch: InstanceCreate[]): Promise<CreateOutcome[]> {
    const col = <T>(f: (c: InstanceCreate) => T) => batch.map(f);
    const start = batch[0]!.start;
    const h = batchHistory(batch.map((c) => pack(c.history)));
    const res = await this.#query(this.#db, this.#sql.createInstances, [
      col((c) => c.row.workflow),
      col((c) => c.row.id),
      col((c) => c.row.params),
      col((c) => c.row.createdAt),
      col((c) => c.start?.owner ?? null),
      col((c) => c.start?.leaseUntil ?? null),
      col((c) => (c.notify ? JSON.stringify(c.notify) : null)),
      start !== undefined,
      start?.maxRunning ?? null,
      this.#sql.channel,
      ...historyArrays(h.entries),
      h.item,
      h.place,
    ]);
    const outcomes: CreateOutcome[] = batch.map(() => "exists");
    for (const r of res.rows) outcomes[Number(r.i) - 1] = r.status === "running" ? "started" : "queued";
    return outcomes;
  }

  async #create(c: InstanceCreate): Promise<CreateOutcome> {
    const started = createdRow(c, true);
    const res = await this.#run(this.#sql.createInstance, [
      c.row.workflow,
      c.row.id,
      c.row.params,
      c.row.createdAt,
      c.start !== undefined,
      c.start?.maxRunning ?? null,
      started.owner ?? null,
      started.leaseUntil ?? null,
      this.#sql.channel,
      c.notify ? JSON.stringify(c.notify) : null,
      ...historyArrays(pack(c.history)),
    ]);
    const status = res.rows[0]?.status as string | undefined;
    return status === undefined ? "exists" : status === "running" ? "started" : "queued";
  }

  /**
   * LISTENs on the schema's channel over a dedicated connection (made from the pool's settings) and
   * reconnects after a second when it drops. Only stores built on a `pg.Pool` can listen.
   */
  async listen(
    onMessage: (message: StoreMessage) => void,
    onLost?: (error: unknown) => void,
    onRestored?: () => void,
  ): Promise<() => Promise<void>> {
    const options = this.#poolOptions();
    if (!options) throw new Error("listen needs a store built on a pg.Pool");
    const channel = this.#sql.channel;
    let stopped = false;
    let client: pg.Client | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const lost = (error: unknown) => {
      if (stopped) return;
      onLost?.(error);
      const old = client;
      client = undefined;
      old?.removeAllListeners();
      old?.on("error", () => {});
      old?.end().catch(() => {});
      retry ??= setTimeout(() => {
        retry = undefined;
        connect().then(() => {
          if (!stopped) onRestored?.();
        }, lost);
      }, 1000);
    };
    const connect = async () => {
      const c = new pg.Client(options);
      client = c;
      c.on("notification", (n) => {
        if (!n.payload) return;
        try {
          onMessage(JSON.parse(n.payload) as StoreMessage);
        } catch {}
      });
      c.on("error", lost);
      c.on("end", () => lost(new Error("LISTEN connection ended")));
      await c.connect();
      await c.query(`LISTEN "${channel}"`);
    };
    await connect();
    return async () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = undefined;
      c?.removeAllListeners();
      await c?.end().catch(() => {});
    };
  }

  #instanceOps(run: Run, tx: () => StoreTx): InstanceStore {
    const q = this.#sql;
    const writers: Pick<RowWriters, "insertInstance"> = {
      insertInstance: async (r: NewInstance) =>
        ((
          await run(q.insertInstance, [
            r.workflow,
            r.id,
            r.status ?? "queued",
            r.params,
            r.createdAt,
            r.startedAt ?? null,
            r.readyAt === undefined ? r.createdAt : r.readyAt,
            r.priority ?? 1,
            r.epoch ?? 0,
            r.owner ?? null,
            r.leaseUntil ?? null,
          ])
        ).rowCount ?? 0) > 0,
    };
    return {
      create: (c) => createWith(tx(), writers, c),
      insertMany: async (batch: NewInstance[]) => {
        if (batch.length === 0) return [];
        const col = <T>(f: (r: NewInstance) => T) => batch.map(f);
        const inserted = await run(q.insertInstances, [
          col((r) => r.workflow),
          col((r) => r.id),
          col((r) => r.status ?? "queued"),
          col((r) => r.params),
          col((r) => r.createdAt),
          col((r) => r.startedAt ?? null),
          col((r) => (r.readyAt === undefined ? r.createdAt : r.readyAt)),
          col((r) => r.priority ?? 1),
          col((r) => r.epoch ?? 0),
          col((r) => r.owner ?? null),
          col((r) => r.leaseUntil ?? null),
        ]);
        const firsts = new Set(inserted.rows.map((r) => Number(r.n)));
        return batch.map((_, i) => firsts.has(i + 1));
      },
      get: async (workflow, id, options) => {
        const r = (await run(options?.lock ? q.getInstanceForUpdate : q.getInstance, [workflow, id])).rows[0];
        return r && rows.instance(r);
      },
      update: async (workflow, id, patch: InstancePatch, guard: InstanceGuard = {}, history = []) => {
        // No status is in an empty `statusIn`; an `undefined` field is absent, not a NULL.
        if (guard.statusIn?.length === 0) return false;
        const keys = (Object.keys(patch) as (keyof InstancePatch)[]).filter((k) => patch[k] !== undefined);
        const values: unknown[] = keys.map((k) =>
          k === "error" || k === "rollback" ? json(patch[k]) : patch[k],
        );
        values.push(workflow, id);
        if (guard.epoch !== undefined) values.push(guard.epoch);
        if (guard.owner !== undefined) values.push(guard.owner);
        if (guard.statusIn) values.push(guard.statusIn);
        const shape = {
          epoch: guard.epoch !== undefined,
          owner: guard.owner !== undefined,
          statuses: !!guard.statusIn,
        };
        if (keys.length === 0 && history.length === 0)
          return (await run(q.matchInstance(shape), values)).rows.length > 0;
        if (history.length === 0)
          return ((await run(q.updateInstance(keys.map(instanceColumn), shape), values)).rowCount ?? 0) > 0;
        const n = values.length;
        values.push(...historyArrays(pack(history)));
        const text = q.updateInstanceLogged(keys.map(instanceColumn), shape, n + 1);
        return (await run(text, values)).rows.length > 0;
      },
      delete: async (workflow, id) => ((await run(q.deleteInstance, [workflow, id])).rowCount ?? 0) > 0,
      rewind: async (workflow, id, from) => {
        if (!from) {
          await run(q.rewindInstance, [workflow, id]);
          return;
        }
        const received = from.steps.filter((k) => k.kind === "waitForEvent").map(stepKeyString);
        await run(q.rewindInstanceFrom, [
          workflow,
          id,
          ...keyArrays(from.steps),
          from.afterEventId,
          received,
        ]);
      },
      list: async (query: ListInstancesQuery) => {
        const { shape, params } = listQuery(query);
        return pageOf((await run(q.listInstances(shape), params)).rows.map(rows.instance), query.limit);
      },
      countByStatus: async (workflow) =>
        (workflow ? await run(q.countByStatusFor, [workflow]) : await run(q.countByStatus)).rows.map(
          statusCount,
        ),
    };
  }

  #queueOps(run: Run): WorkQueue {
    const q = this.#sql;
    return {
      claim: async (o: ClaimOptions) => {
        let limit = o.limit;
        if (o.maxRunning !== undefined) {
          // Serialize claimers so the count below stays true until this transaction commits.
          await run(q.advisoryLock, [q.claimLockKey]);
          limit = Math.min(limit, o.maxRunning - Number((await run(q.countRunning)).rows[0]?.n ?? 0));
        }
        if (limit <= 0) return [];
        return (await run(q.claim, [o.owner, o.now, o.now + o.leaseMs, limit])).rows.map(rows.claimed);
      },
      nextReadyAt: async () => nullableNumber((await run(q.nextReadyAt)).rows[0]?.t) ?? undefined,
      renewLeases: async (owner, leaseUntil) => (await run(q.renewLeases, [leaseUntil, owner])).rowCount ?? 0,
      expireLeases: async () => (await run(q.expireLeases)).rowCount ?? 0,
      countRunning: async (options) => {
        if (options?.lockClaims) await run(q.advisoryLock, [q.claimLockKey]);
        return Number((await run(q.countRunning)).rows[0]?.n ?? 0);
      },
      countDue: async (now) => Number((await run(q.countDue, [now])).rows[0]?.n ?? 0),
    };
  }

  #stepOps(run: Run, inTransaction: boolean): StepStore {
    const q = this.#sql;
    const steps: StepStore = {
      list: async (workflow, instanceId) =>
        (await run(q.listSteps, [workflow, instanceId])).rows.map(rows.step),
      get: async (workflow, instanceId, kind, name, count) => {
        const r = (await run(q.getStep, [workflow, instanceId, kind, name, count])).rows[0];
        return r && rows.step(r);
      },
      commit: async (c: StepCommit) => {
        // Chunk rows go with the step in one transaction (the step's statement locks the instance).
        if (c.chunks && !inTransaction) return this.transaction((tx) => tx.steps.commit(c));
        const plain = pack(c.history);
        const entries = c.statusEntry ? [...plain, ...pack([c.statusEntry])] : plain;
        const s = c.step;
        const res = await run(q.commitStep, [
          c.workflow,
          c.instanceId,
          c.epoch,
          c.status,
          c.now,
          ...stepColumns(s),
          ...historyArrays(entries),
          plain.length,
          json(s.rollbackConfig),
        ]);
        const status = res.rows[0]?.status as InstanceStatus | undefined;
        if (status !== undefined && c.chunks) {
          const key = [c.workflow, c.instanceId, s.kind, s.name, s.count];
          await run(q.deleteStepChunks, key);
          for (let i = 0; i < c.chunks.length; i += CHUNKS_PER_INSERT) {
            const values: unknown[] = [...key];
            const end = Math.min(c.chunks.length, i + CHUNKS_PER_INSERT);
            for (let j = i; j < end; j++) values.push(j, c.chunks[j]);
            await run(q.insertChunks(end - i), values);
          }
        }
        return status;
      },
      chunk: async (workflow, instanceId, key, index) => {
        const r = (await run(q.getChunk, [workflow, instanceId, key.kind, key.name, key.count, index]))
          .rows[0];
        return bytesOf(r?.bytes) ?? undefined;
      },
      shiftWakeTimes: async (workflow, instanceId, delta) => {
        await run(q.shiftWakeTimes, [delta, workflow, instanceId]);
      },
      hasWaiter: async (workflow, instanceId, type) =>
        (await run(q.hasWaiter, [workflow, instanceId, type])).rows.length > 0,
    };
    return steps;
  }

  #eventOps(run: Run): EventStore {
    const q = this.#sql;
    return {
      insert: async (e) =>
        Number(
          (await run(q.insertEvent, [e.workflow, e.instanceId, e.type, e.payload, e.timestamp])).rows[0]!.seq,
        ),
      list: async (workflow, instanceId) =>
        (await run(q.listEvents, [workflow, instanceId])).rows.map(rows.event),
      consume: async (workflow, instanceId, type, stepKey) => {
        const r = (await run(q.consumeEvent, [stepKey, workflow, instanceId, type])).rows[0];
        return r && rows.event(r);
      },
    };
  }

  #scheduleOps(run: Run): ScheduleStore {
    const q = this.#sql;
    return {
      list: async () =>
        (await run(q.listSchedules, [])).rows.map((r) => ({
          kind: r.kind as "workflow" | "trigger",
          name: String(r.name),
          cron: String(r.cron),
          lastAt: Number(r.last_at),
          updatedAt: Number(r.updated_at),
        })),
      advance: async (key, to, now) =>
        ((await run(q.advanceSchedule, [key.kind, key.name, key.cron, to, now])).rowCount ?? 0) > 0,
    };
  }

  #historyOps(run: Run): HistoryStore {
    const q = this.#sql;
    return {
      append: async (entries: NewHistoryEntry[]) => {
        if (entries.length === 0) return;
        await run(q.appendHistory, historyArrays(pack(entries)));
      },
      list: async (workflow, instanceId, o = {}) => {
        const after = o.afterEventId ?? 0;
        const res = await run(q.listHistory, [workflow, instanceId, after, o.limit ?? null]);
        return historyPage(res.rows.flatMap(rows.history), after, o.limit);
      },
      metrics: async (workflow, from, to, limit) => {
        const res = await run(q.metricsHistory, [workflow, from, to, limit]);
        return res.rows.flatMap((r) => rows.metrics(r, from, to)).slice(0, limit);
      },
    };
  }
}

/**
 * Opens (and migrates) a PostgreSQL store on a new pool for `url`, or on a `pool` you own.
 *
 * ```ts
 * const store = await openPostgresStore({ url: "postgres://cairn@db.internal/cairn", schema: "cairn" });
 * ```
 */
export async function openPostgresStore(options: OpenPostgresStoreOptions): Promise<PostgresStore> {
  let db = options.pool;
  if (!db) {
    if (!options.url) throw new Error("openPostgresStore needs a url or a pool");
    db = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 });
    // A pooled connection that breaks while idle is dropped by the pool; the next query reports it.
    db.on("error", () => {});
  }
  const store = new PostgresStore({
    db,
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    ...(options.transactionIdleTimeoutMs === undefined
      ? {}
      : { transactionIdleTimeoutMs: options.transactionIdleTimeoutMs }),
    ownsDb: !options.pool,
  });
  const log = options.log ?? ((message: string) => console.error(message));
  const giveUpAt = Date.now() + (options.connectRetryMs ?? Number.POSITIVE_INFINITY);
  for (let attempt = 1; ; attempt++) {
    try {
      await store.migrate();
      if (attempt > 1) log(`Cairn reached PostgreSQL at ${where(options)} (attempt ${attempt})`);
      return store;
    } catch (e) {
      const error = mapPostgresError(e);
      const delay = reconnectDelayMs(attempt + 1);
      if (!PostgresStoreError.is(error, "unavailable") || Date.now() + delay > giveUpAt) {
        await store.close();
        throw error;
      }
      log(
        `Cairn cannot reach PostgreSQL at ${where(options)} (${(error as Error).message}); retrying in ${delay} ms (attempt ${attempt})`,
        error,
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** The server and database a store talks to, for messages (never the password). */
function where(options: OpenPostgresStoreOptions): string {
  if (!options.url) return "the given pool";
  try {
    const u = new URL(options.url);
    return `${u.hostname || "localhost"}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "the given url";
  }
}

/** A `do_objects` row as `ReplicaObject` (the owner only while its lease runs). */
function replicaObject(r: Record<string, unknown>): ReplicaObject {
  const leaseUntil = nullableNumber(r.lease_until);
  return {
    id: String(r.object_id),
    name: typeof r.name === "string" ? r.name : null,
    createdAt: nullableNumber(r.created_at),
    lastAccess: nullableNumber(r.last_access),
    alarm: nullableNumber(r.alarm_at),
    owner: typeof r.owner === "string" && leaseUntil !== null && leaseUntil > Date.now() ? r.owner : null,
  };
}
