import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { BroadcastChannel } from "node:worker_threads";
import { type InstanceStatus, type MetricsRow, type NewHistoryEntry, stepKeyString } from "@cairn/core";
import {
  type ClaimedInstance,
  type ClaimOptions,
  createWith,
  type EventStore,
  type HistoryDataJson,
  type HistoryStore,
  historyPage,
  type InstanceGuard,
  type InstancePatch,
  type InstanceStore,
  type ListInstancesQuery,
  listQuery,
  type NewInstance,
  nullableNumber,
  packHistory,
  pageOf,
  type RowWriters,
  rowReader,
  type ScheduleStore,
  type StepCommit,
  type StepRow,
  type StepStore,
  type Store,
  type StoreCapabilities,
  StoreError,
  type StoreMessage,
  type StoreTx,
  statusCount,
  TransactionListeners,
  type WorkQueue,
} from "@cairn/store";
import { mapSqliteError } from "./errors.ts";
import { LATEST_VERSION, MIGRATIONS } from "./migrations.ts";
import { sqlite } from "./node-sqlite.ts";
import { instanceColumn, sql } from "./sql.ts";

export interface SqliteStoreOptions {
  /** A file path, or ":memory:". */
  path: string;
  /** `FULL` (default) makes every commit durable; `NORMAL` may lose the last commits on power loss. */
  synchronous?: "FULL" | "NORMAL";
  /**
   * Lets several connections to the same file within this process (one per thread, e.g. the API in
   * the main thread and the worker in a worker thread) tell each other about changes: transactions
   * get `notify` and the store gets `listen`, carried by a `BroadcastChannel` named after the file.
   * Default false (the store is used by one connection, which needs no messages).
   */
  channel?: boolean;
  /**
   * SQLite's page cache for this connection, in MiB (a whole number from 1 to 4096). Default 16:
   * the indexes a worker reads over and over stay in it, and the operating system's file cache
   * holds the rest. A larger cache costs its size in memory once the database outgrows it.
   */
  cacheSizeMiB?: number;
}

/** The default of `SqliteStoreOptions.cacheSizeMiB`. */
export const DEFAULT_SQLITE_CACHE_MIB = 16;

function cacheSizeOf(value: unknown): number {
  if (value === undefined) return DEFAULT_SQLITE_CACHE_MIB;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 4096)
    throw new TypeError(
      `SQLite store: cacheSizeMiB must be a whole number of MiB from 1 to 4096, got ${JSON.stringify(value)}`,
    );
  return value;
}

type Row = Record<string, SQLInputValue>;

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/**
 * The store's row decoders: node:sqlite returns BLOBs as Uint8Arrays and JSON as the text it was
 * stored as. Exported for tools that read a store's file directly (the crash tests).
 */
export const sqliteRows = rowReader({
  bytes: (v) => (v as Uint8Array | null | undefined) ?? null,
  json: <T>(v: unknown): T | null => (typeof v === "string" ? (JSON.parse(v) as T) : null),
});
const rows = sqliteRows;

/**
 * A row of `sql.listSteps` (an array, its columns in that statement's order) as a `StepRow`, like
 * `rows.step`. Configs repeat (the defaults are shared): each distinct text is parsed once per list
 * and the rows share the object, as they share it when written (`jsonOfConfig`).
 */
function stepFromArray(
  a: SQLInputValue[],
  workflow: string,
  instanceId: string,
  configs: Map<string, unknown>,
): StepRow {
  const configText = a[5];
  let config: unknown = null;
  if (typeof configText === "string") {
    config = configs.get(configText);
    if (config === undefined) configs.set(configText, (config = JSON.parse(configText)));
  }
  const step: StepRow = {
    workflow,
    instanceId,
    kind: a[0] as StepRow["kind"],
    name: a[1] as string,
    count: Number(a[2]),
    seq: Number(a[3]),
    status: a[4] as StepRow["status"],
    config: config as StepRow["config"],
    attempts: Number(a[6]),
    result: (a[7] as Uint8Array | null) ?? null,
    error: typeof a[8] === "string" ? JSON.parse(a[8]) : null,
    startedAt: Number(a[9]),
    endedAt: nullableNumber(a[10]),
    wakeAt: nullableNumber(a[11]),
    eventType: a[12] === null || a[12] === undefined ? null : (a[12] as string),
  };
  if (Number(a[13]) === 1) {
    step.hasRollback = true;
    step.rollbackConfig = typeof a[14] === "string" ? JSON.parse(a[14]) : null;
  }
  return step;
}

const HISTORY_ROWS_PER_INSERT = 16;

/** The statuses of an instance a run holds: a step commit is stored only in one of them. */
const OWNED: ReadonlySet<InstanceStatus> = new Set(["running", "waiting", "waitingForPause"]);

/** A history entry's data as JSON; a step's config (in `step_started`) from the cache below. */
const historyDataJson: HistoryDataJson = (e) => {
  if (e.data === undefined) return null;
  if ((e.type === "step_started" || e.type === "rollback_step_started") && e.data.config)
    return `{"config":${jsonOfConfig(e.data.config)}}`;
  return JSON.stringify(e.data);
};

/** Config objects repeat (the defaults are shared); their JSON is computed once. */
const configJson = new WeakMap<object, string>();
function jsonOfConfig(config: object | null): string | null {
  if (config === null) return null;
  let text = configJson.get(config);
  if (text === undefined) {
    text = JSON.stringify(config);
    configJson.set(config, text);
  }
  return text;
}

interface Pending {
  fn: (tx: StoreTx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Messages the transaction asked to send, posted once it commits. */
  messages?: StoreMessage[];
}

/**
 * The embedded store: one SQLite file in WAL mode, used by one worker process.
 *
 * Writes go through `transaction`, which group-commits: transactions requested while the event loop
 * is busy are run together in one SQLite transaction, each inside its own savepoint, so one commit
 * (one fsync) covers them all while each still succeeds or fails alone.
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite";
  /** One process uses the file: its worker is alone on it. */
  readonly capabilities: StoreCapabilities = { sharedByWorkers: false };
  readonly db: DatabaseSync;
  readonly instances: InstanceStore;
  readonly queue: WorkQueue;
  readonly steps: StepStore;
  readonly events: EventStore;
  readonly history: HistoryStore;
  readonly schedules: ScheduleStore;
  readonly #tx: StoreTx;
  /** The row writers `createWith` builds on (not part of `Store`). */
  readonly #rows: RowWriters;
  readonly #statements = new Map<string, StatementSync>();
  #queue: Pending[] = [];
  /** Instances `expireLeases` found left running by the previous process, until claimed. */
  readonly #leftRunning = new Set<string>();
  #scheduled = false;
  #closed = false;
  /** With `channel`: its name, the sending end, and the transaction running now (its messages). */
  readonly #channelName: string | undefined;
  #sender: BroadcastChannel | undefined;
  #running: Pending | undefined;
  readonly #listeners = new Set<BroadcastChannel>();
  readonly #transactions = new TransactionListeners();
  /** The last history event id given in the transaction running now, once read. */
  #lastEventId: number | undefined;

  constructor(options: SqliteStoreOptions) {
    const cacheMiB = cacheSizeOf(options.cacheSizeMiB);
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    try {
      this.db = new (sqlite().DatabaseSync)(options.path);
      this.db.exec(
        `PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -${cacheMiB * 1024}; PRAGMA temp_store = MEMORY;`,
      );
      if (options.path !== ":memory:") this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec(`PRAGMA synchronous = ${options.synchronous === "NORMAL" ? "NORMAL" : "FULL"}`);
    } catch (e) {
      throw mapSqliteError(e);
    }
    this.#rows = {
      insertInstance: async (r) => this.#insertInstance(r),
    };
    this.#tx = {
      instances: this.#instanceOps(),
      queue: this.#queueOps(),
      steps: this.#stepOps(),
      events: this.#eventOps(),
      history: this.#historyOps(),
      schedules: this.#scheduleOps(),
    };
    if (options.channel && options.path !== ":memory:") {
      this.#channelName = `cairn:sqlite:${resolve(options.path)}`;
      this.#tx.notify = async (message) => {
        if (!this.#running) throw new Error("notify is only available inside a transaction");
        (this.#running.messages ??= []).push(message);
      };
      this.listen = async (onMessage) => {
        const channel = new BroadcastChannel(this.#channelName!);
        channel.unref();
        channel.onmessage = (e) => onMessage((e as { data: StoreMessage }).data);
        this.#listeners.add(channel);
        return async () => {
          this.#listeners.delete(channel);
          channel.close();
        };
      };
    }
    // Outside a transaction, each write runs as a transaction of its own; reads go straight through.
    const reads = new Set([
      "get",
      "list",
      "countByStatus",
      "nextReadyAt",
      "countRunning",
      "countDue",
      "hasWaiter",
      "chunk",
    ]);
    type Group = "instances" | "queue" | "steps" | "events" | "history" | "schedules";
    const autocommit = <T extends object>(group: Group): T =>
      Object.fromEntries(
        Object.entries(this.#tx[group] as object).map(([name, fn]) => [
          name,
          reads.has(name)
            ? fn
            : (...args: unknown[]) =>
                this.transaction((tx) =>
                  (tx[group] as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name]!(
                    ...args,
                  ),
                ),
        ]),
      ) as T;
    this.instances = autocommit("instances");
    this.queue = autocommit("queue");
    this.steps = autocommit("steps");
    this.events = autocommit("events");
    this.history = autocommit("history");
    this.schedules = autocommit("schedules");
  }

  /** With `channel`: receives what other connections to this file in this process `notify`. */
  listen?: Store["listen"];

  async migrate(): Promise<void> {
    try {
      this.#migrate();
    } catch (e) {
      throw mapSqliteError(e);
    }
  }

  #migrate(): void {
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS cairn_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
    const row = this.db.prepare("SELECT MAX(version) AS v FROM cairn_migrations").get() as {
      v: number | null;
    };
    const current = row.v ?? 0;
    if (current > LATEST_VERSION)
      throw new StoreError(
        "schema_too_new",
        `This Cairn store has schema version ${current}, newer than this version of Cairn understands (${LATEST_VERSION}). Upgrade Cairn.`,
      );
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.db.exec("BEGIN IMMEDIATE");
      try {
        this.db.exec(m.sql);
        this.db
          .prepare("INSERT INTO cairn_migrations (version, name, applied_at) VALUES (?, ?, ?)")
          .run(m.version, m.name, Date.now());
        this.db.exec("COMMIT");
      } catch (e) {
        this.db.exec("ROLLBACK");
        throw e;
      }
    }
  }

  onTransaction(listener: (durationMs: number) => void): () => void {
    return this.#transactions.add(listener);
  }

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError("closed", "The Cairn store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    const outcomes: [Pending, boolean, unknown][] = [];
    // A lone transaction needs no savepoint: if it throws, the whole SQLite transaction rolls back.
    const alone = batch.length === 1;
    const startedAt = this.#transactions.active ? performance.now() : undefined;
    try {
      this.#stmt("BEGIN IMMEDIATE").run();
      this.#lastEventId = undefined;
      for (const p of batch) {
        if (!alone) this.#stmt("SAVEPOINT t").run();
        this.#running = p;
        try {
          const value = await p.fn(this.#tx);
          if (!alone) this.#stmt("RELEASE t").run();
          outcomes.push([p, true, value]);
        } catch (e) {
          p.messages = undefined;
          if (alone) throw e;
          this.#stmt("ROLLBACK TO t").run();
          this.#stmt("RELEASE t").run();
          outcomes.push([p, false, e]);
        } finally {
          this.#running = undefined;
        }
      }
      this.#stmt("COMMIT").run();
    } catch (caught) {
      const e = mapSqliteError(caught);
      if (this.db.isTransaction) this.db.exec("ROLLBACK");
      for (const p of batch) p.reject(e);
      outcomes.length = 0;
    }
    if (startedAt !== undefined) this.#transactions.report(startedAt);
    for (const [p] of outcomes) if (p.messages) this.#post(p.messages);
    for (const [p, ok, v] of outcomes) ok ? p.resolve(v) : p.reject(v);
    this.#scheduled = false;
    if (this.#queue.length > 0) this.#schedule();
  }

  #post(messages: StoreMessage[]): void {
    if (!this.#sender) {
      this.#sender = new BroadcastChannel(this.#channelName!);
      this.#sender.unref();
    }
    for (const m of messages) this.#sender.postMessage(m);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#scheduled || this.#queue.length > 0) await new Promise((r) => setImmediate(r));
    this.#closed = true;
    this.#sender?.close();
    for (const channel of this.#listeners) channel.close();
    this.#listeners.clear();
    this.db.close();
  }

  /** The prepared statement for `text`, prepared once. */
  #stmt(text: string): StatementSync {
    let s = this.#statements.get(text);
    if (!s) {
      s = this.db.prepare(text);
      this.#statements.set(text, s);
    }
    return s;
  }

  // Every statement of an operation runs through these, which map SQLite's errors (`mapSqliteError`).

  #all(text: string, ...params: SQLInputValue[]): Row[] {
    try {
      return this.#stmt(text).all(...params) as Row[];
    } catch (e) {
      throw mapSqliteError(e);
    }
  }

  #get(text: string, ...params: SQLInputValue[]): Row | undefined {
    try {
      return this.#stmt(text).get(...params) as Row | undefined;
    } catch (e) {
      throw mapSqliteError(e);
    }
  }

  #write(
    text: string,
    ...params: SQLInputValue[]
  ): { changes: number | bigint; lastInsertRowid: number | bigint } {
    try {
      return this.#stmt(text).run(...params);
    } catch (e) {
      throw mapSqliteError(e);
    }
  }

  #run(text: string, ...params: SQLInputValue[]): number {
    return Number(this.#write(text, ...params).changes);
  }

  #insertInstance(r: NewInstance): boolean {
    return (
      this.#run(
        sql.insertInstance,
        r.workflow,
        r.id,
        r.status ?? "queued",
        r.params,
        r.createdAt,
        r.createdAt,
        r.startedAt ?? null,
        r.readyAt === undefined ? r.createdAt : r.readyAt,
        r.priority ?? 1,
        r.epoch ?? 0,
        r.owner ?? null,
        r.leaseUntil ?? null,
      ) > 0
    );
  }

  #putStep(s: StepRow): void {
    this.#run(
      sql.putStep,
      s.workflow,
      s.instanceId,
      s.kind,
      s.name,
      s.count,
      s.seq,
      s.status,
      jsonOfConfig(s.config),
      s.attempts,
      s.result,
      json(s.error),
      s.startedAt,
      s.endedAt,
      s.wakeAt,
      s.eventType,
      s.hasRollback === true ? 1 : 0,
      jsonOfConfig(s.rollbackConfig ?? null),
    );
  }

  /**
   * `steps.commit`, in statements run at once: the fence is read from
   * the two columns it needs rather than the whole row, which a commit has no use for.
   */
  #commitStep(c: StepCommit): InstanceStatus | undefined {
    const row = this.#get(sql.fenceOf, c.workflow, c.instanceId);
    const status = row?.status as InstanceStatus | undefined;
    if (!row || Number(row.epoch) !== c.epoch || !OWNED.has(status!)) return undefined;
    let history = c.history;
    if (status !== "waitingForPause" && status !== c.status) {
      this.#run(sql.setStatus, c.status, c.now, c.workflow, c.instanceId);
      if (c.statusEntry) history = [...history, c.statusEntry];
    }
    this.#putStep(c.step);
    if (c.chunks) {
      const k = c.step;
      this.#run(sql.deleteStepChunks, c.workflow, c.instanceId, k.kind, k.name, k.count);
      for (const [i, bytes] of c.chunks.entries())
        this.#run(sql.insertChunk, c.workflow, c.instanceId, k.kind, k.name, k.count, i, bytes);
    }
    this.#appendHistory(history);
    return status;
  }

  #appendHistory(entries: readonly NewHistoryEntry[]): void {
    if (entries.length === 0) return;
    const packed = packHistory(entries, historyDataJson);
    // Ids are given here, since a packed row takes one per entry; AUTOINCREMENT's counter follows.
    let id = (this.#lastEventId ??= Number(this.#get(sql.lastEventId)?.seq ?? 0));
    for (let i = 0; i < packed.length; i += HISTORY_ROWS_PER_INSERT) {
      const end = Math.min(packed.length, i + HISTORY_ROWS_PER_INSERT);
      const values: SQLInputValue[] = [];
      for (let j = i; j < end; j++) {
        const r = packed[j]!;
        id += r.span ?? 1;
        values.push(
          id,
          r.workflow,
          r.instanceId,
          r.type,
          r.timestamp,
          r.stepKind,
          r.stepName,
          r.stepCount,
          r.data,
          r.span,
        );
      }
      this.#write(sql.appendHistory(end - i), ...values);
    }
    this.#lastEventId = id;
  }

  #instanceOps(): InstanceStore {
    return {
      create: (c) => createWith(this.#tx, this.#rows, c),
      insertMany: async (batch: NewInstance[]) => batch.map((r) => this.#insertInstance(r)),
      get: async (workflow, id) => {
        const r = this.#get(sql.getInstance, workflow, id);
        return r && rows.instance(r);
      },
      update: async (workflow, id, patch: InstancePatch, guard: InstanceGuard = {}, history) => {
        if (history?.length) {
          const applied = await this.#tx.instances.update(workflow, id, patch, guard);
          if (applied) await this.#tx.history.append(history);
          return applied;
        }
        // No status is in an empty `statusIn`; an `undefined` field is absent, not a NULL.
        if (guard.statusIn?.length === 0) return false;
        const keys = (Object.keys(patch) as (keyof InstancePatch)[]).filter((k) => patch[k] !== undefined);
        const values: SQLInputValue[] = keys.map((k) =>
          k === "error" || k === "rollback" ? json(patch[k]) : (patch[k] as SQLInputValue),
        );
        values.push(workflow, id);
        if (guard.epoch !== undefined) values.push(guard.epoch);
        if (guard.owner !== undefined) values.push(guard.owner);
        if (guard.statusIn) values.push(...guard.statusIn);
        const shape = {
          epoch: guard.epoch !== undefined,
          owner: guard.owner !== undefined,
          statuses: guard.statusIn?.length ?? 0,
        };
        if (keys.length === 0) return this.#get(sql.matchInstance(shape), ...values) !== undefined;
        return this.#run(sql.updateInstance(keys.map(instanceColumn), shape), ...values) > 0;
      },
      delete: async (workflow, id) => {
        const n = this.#run(sql.deleteInstance, workflow, id);
        this.#run(sql.deleteInstanceSteps, workflow, id);
        this.#run(sql.deleteInstanceChunks, workflow, id);
        this.#run(sql.deleteInstanceEvents, workflow, id);
        this.#run(sql.deleteInstanceHistory, workflow, id);
        return n > 0;
      },
      rewind: async (workflow, id, from) => {
        if (!from) {
          this.#run(sql.deleteInstanceSteps, workflow, id);
          this.#run(sql.deleteInstanceChunks, workflow, id);
          this.#run(sql.deleteInstanceEvents, workflow, id);
          this.#run(sql.deleteInstanceHistory, workflow, id);
          return;
        }
        for (const k of from.steps) {
          this.#run(sql.deleteStep, workflow, id, k.kind, k.name, k.count);
          this.#run(sql.deleteStepChunks, workflow, id, k.kind, k.name, k.count);
          if (k.kind === "waitForEvent")
            this.#run(sql.deleteEventsConsumedBy, workflow, id, stepKeyString(k));
          this.#run(sql.deleteHistoryOfStep, workflow, id, k.kind, k.name, k.count);
        }
        this.#run(sql.deleteHistoryAfter, workflow, id, from.afterEventId);
      },
      list: async (q: ListInstancesQuery) => {
        const { shape, params } = listQuery(q);
        return pageOf(this.#all(sql.listInstances(shape), ...params).map(rows.instance), q.limit);
      },
      countByStatus: async (workflow) =>
        (workflow ? this.#all(sql.countByStatusFor, workflow) : this.#all(sql.countByStatus)).map(
          statusCount,
        ),
    };
  }

  #queueOps(): WorkQueue {
    return {
      claim: async (o: ClaimOptions) => {
        let limit = o.limit;
        if (o.maxRunning !== undefined)
          limit = Math.min(limit, o.maxRunning - Number(this.#get(sql.countRunning)?.n ?? 0));
        if (limit <= 0) return [];
        const n = o.now;
        const candidates = this.#all(sql.claimExpired, n, o.owner, limit);
        if (candidates.length < limit)
          candidates.push(...this.#all(sql.claimReady, n, n, limit - candidates.length));
        if (candidates.length === 0) return [];
        const claimed: Row[] = [];
        // Several rows: one commit for all of them (as a transaction of the caller's would be).
        const own = candidates.length > 1 && !this.db.isTransaction;
        if (own) this.#write("BEGIN IMMEDIATE");
        try {
          for (const c of candidates) {
            const r = this.#get(
              sql.claimOne,
              o.owner,
              n + o.leaseMs,
              n,
              n,
              c.workflow!,
              c.id!,
              n,
              n,
              n,
              o.owner,
            );
            if (r) claimed.push(r);
          }
          if (own) this.#write("COMMIT");
        } catch (e) {
          if (own && this.db.isTransaction) this.db.exec("ROLLBACK");
          throw e;
        }
        return claimed.map((r) => {
          const row: ClaimedInstance = rows.instance(r);
          const key = `${row.workflow}\u0000${row.id}`;
          if (this.#leftRunning.delete(key)) row.takenOver = true;
          return row;
        });
      },
      nextReadyAt: async () => nullableNumber(this.#get(sql.nextReadyAt)?.t) ?? undefined,
      renewLeases: async (owner, leaseUntil) => this.#run(sql.renewLeases, leaseUntil, owner),
      expireLeases: async () => {
        const expired = this.#all(sql.expireLeases);
        for (const r of expired)
          if (r.status === "running" || r.status === "waiting" || r.status === "waitingForPause")
            this.#leftRunning.add(`${r.workflow}\u0000${r.id}`);
        return expired.length;
      },
      countRunning: async () => Number(this.#get(sql.countRunning)?.n ?? 0),
      countDue: async (now) => Number(this.#get(sql.countDue, now)?.n ?? 0),
    };
  }

  #stepOps(): StepStore {
    return {
      list: async (workflow, instanceId) => {
        // An instance's steps are read when a run loads it (50,000 of them for a long instance):
        // rows as arrays, without the two columns the caller gave, and each distinct config parsed once.
        let list: SQLInputValue[][];
        try {
          const stmt = this.#stmt(sql.listSteps);
          stmt.setReturnArrays(true);
          list = stmt.all(workflow, instanceId) as unknown as SQLInputValue[][];
        } catch (e) {
          throw mapSqliteError(e);
        }
        const configs = new Map<string, unknown>();
        const out = new Array<StepRow>(list.length);
        for (let i = 0; i < list.length; i++) out[i] = stepFromArray(list[i]!, workflow, instanceId, configs);
        return out;
      },
      get: async (workflow, instanceId, kind, name, count) => {
        const r = this.#get(sql.getStep, workflow, instanceId, kind, name, count);
        return r && rows.step(r);
      },
      commit: async (c) => this.#commitStep(c),
      chunk: async (workflow, instanceId, key, index) => {
        const r = this.#get(sql.getChunk, workflow, instanceId, key.kind, key.name, key.count, index);
        return r && (r.bytes as Uint8Array);
      },
      shiftWakeTimes: async (workflow, instanceId, delta) => {
        this.#run(sql.shiftWakeTimes, delta, workflow, instanceId);
      },
      hasWaiter: async (workflow, instanceId, type) =>
        this.#get(sql.hasWaiter, workflow, instanceId, type) !== undefined,
    };
  }

  #eventOps(): EventStore {
    return {
      insert: async (e) =>
        Number(
          this.#write(sql.insertEvent, e.workflow, e.instanceId, e.type, e.payload, e.timestamp)
            .lastInsertRowid,
        ),
      list: async (workflow, instanceId) => this.#all(sql.listEvents, workflow, instanceId).map(rows.event),
      consume: async (workflow, instanceId, type, stepKey) => {
        const r = this.#get(sql.consumeEvent, stepKey, workflow, instanceId, type);
        return r && rows.event(r);
      },
    };
  }

  #historyOps(): HistoryStore {
    return {
      append: async (entries: NewHistoryEntry[]) => this.#appendHistory(entries),
      list: async (workflow, instanceId, o = {}) => {
        const after = o.afterEventId ?? 0;
        const read = this.#all(sql.listHistory, workflow, instanceId, after, o.limit ?? -1);
        return historyPage(read.flatMap(rows.history), after, o.limit);
      },
      metrics: async (workflow, from, to, limit) => {
        // Rows are read until `limit` entries are found: a packed row may hold none in the range.
        const out: MetricsRow[] = [];
        if (limit <= 0) return out;
        try {
          for (const r of this.#stmt(sql.metricsHistory).iterate(workflow, from, to) as Iterable<Row>) {
            if (r.span === null && (r.timestamp as number) > to) continue;
            out.push(...rows.metrics(r, from, to));
            if (out.length >= limit) break;
          }
        } catch (e) {
          throw mapSqliteError(e);
        }
        return out.slice(0, limit);
      },
    };
  }

  #scheduleOps(): ScheduleStore {
    return {
      list: async () =>
        this.#all(sql.listSchedules).map((r) => ({
          kind: r.kind as "workflow" | "trigger",
          name: String(r.name),
          cron: String(r.cron),
          lastAt: Number(r.last_at),
          updatedAt: Number(r.updated_at),
        })),
      advance: async (key, to, now) =>
        this.#run(sql.advanceSchedule, key.kind, key.name, key.cron, to, now) > 0,
    };
  }
}

/** Opens (and migrates) a SQLite store. */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const store = new SqliteStore(options);
  await store.migrate();
  return store;
}
