import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabaseSync, Session, StatementSync } from "node:sqlite";
import { deserialize, serialize } from "node:v8";
import { MAX_KEY_BYTES, MAX_OBJECT_BYTES, MAX_SQL_STATEMENT_BYTES, MAX_VALUE_BYTES } from "./limits.ts";
import { sqlite } from "./node-sqlite.ts";
import { splitStatements } from "./sql-split.ts";

/** A value `sql.exec` returns in a row: Cloudflare's `SqlStorageValue`. */
export type SqlStorageValue = ArrayBuffer | string | number | null;

/** `storage.list()` options, as Cloudflare's `DurableObjectListOptions`. */
export interface ListOptions {
  /** First key to include (inclusive). */
  start?: string;
  /** First key to include is the one after this (exclusive). Not with `start`. */
  startAfter?: string;
  /** Keys before this one (exclusive). */
  end?: string;
  prefix?: string;
  /** Descending key order. */
  reverse?: boolean;
  /** At most this many entries. */
  limit?: number;
  allowConcurrency?: boolean;
  noCache?: boolean;
}

/** Where an object's alarm lives: the host's registry (so alarms are found without opening the object). */
export interface AlarmAccess {
  get(): number | null;
  set(time: number): void;
  delete(): void;
}

/** Put, delete and get of many keys take at most this many at once (Cloudflare's limit). */
export const MAX_KEYS_PER_CALL = 128;

const KV_TABLE = "_cf_KV";
/** `PRAGMA`s user SQL may run (those that only read, or change nothing durable). */
const ALLOWED_PRAGMAS = new Set([
  "table_info",
  "table_xinfo",
  "table_list",
  "index_list",
  "index_info",
  "index_xinfo",
  "foreign_key_list",
  "foreign_key_check",
  "foreign_keys",
  "defer_foreign_keys",
  "legacy_alter_table",
  "case_sensitive_like",
  "recursive_triggers",
  "reverse_unordered_selects",
  "quick_check",
  "integrity_check",
  "optimize",
  "page_count",
  "page_size",
  "freelist_count",
  "data_version",
]);

const TRANSACTION_REFUSED =
  "To execute a transaction, please use the state.storage.transaction() or " +
  "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT " +
  "statements. The JavaScript API is safer because it will automatically roll back on " +
  "exceptions, and because it interacts correctly with Durable Objects' automatic atomic " +
  "write coalescing.";

/** An error of `sql.exec`: SQLite's message, its code, and the query that failed. */
export class SqlError extends Error {
  override name = "Error";
  readonly query: string;
  constructor(message: string, query: string) {
    super(`${message} (query: ${query.length > 500 ? `${query.slice(0, 500)}…` : query})`);
    this.query = query;
  }
}

/**
 * The cursor `sql.exec` returns (Cloudflare's `SqlStorageCursor`). The statement has run to the end
 * when `exec` returns (so writes are done and counted); the rows are then read from the cursor.
 * `rowsRead` counts the rows the query returned plus the rows it wrote (SQLite does not report
 * the rows a scan visited).
 */
export class SqlStorageCursor<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>
  implements IterableIterator<T>
{
  readonly columnNames: string[];
  readonly #rows: SqlStorageValue[][];
  #next = 0;
  readonly #written: number;

  /** @internal */
  constructor(columnNames: string[], rows: SqlStorageValue[][], written: number) {
    this.columnNames = columnNames;
    this.#rows = rows;
    this.#written = written;
  }

  get rowsRead(): number {
    return this.#rows.length + this.#written;
  }

  get rowsWritten(): number {
    return this.#written;
  }

  next(): IteratorResult<T> {
    const row = this.#rows[this.#next];
    if (!row) return { done: true, value: undefined };
    this.#next++;
    return { done: false, value: this.#object(row) };
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this;
  }

  /** The remaining rows as objects (a later column wins when two share a name). */
  toArray(): T[] {
    const out: T[] = [];
    for (let r = this.next(); !r.done; r = this.next()) out.push(r.value);
    return out;
  }

  /** The only row; throws when there is none or more than one. */
  one(): T {
    const r = this.next();
    if (r.done) throw new Error("Expected exactly one result from SQL query, but got no results.");
    if (this.#next < this.#rows.length) {
      this.#next = this.#rows.length;
      throw new Error("Expected exactly one result from SQL query, but got multiple results.");
    }
    return r.value;
  }

  /** The remaining rows as arrays of values, in column order. */
  *raw<U extends SqlStorageValue[] = SqlStorageValue[]>(): IterableIterator<U> {
    while (this.#next < this.#rows.length) yield this.#rows[this.#next++] as U;
  }

  #object(row: SqlStorageValue[]): T {
    const o: Record<string, SqlStorageValue> = {};
    for (let i = 0; i < this.columnNames.length; i++) o[this.columnNames[i]!] = row[i]!;
    return o as T;
  }
}

/** Marker classes Cloudflare exposes as `sql.Cursor` and `sql.Statement`. */
export abstract class SqlStorageStatement {}

/** `ctx.storage.sql`: synchronous SQL on the object's own SQLite database. */
export interface SqlStorage {
  exec<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
    query: string,
    ...bindings: unknown[]
  ): SqlStorageCursor<T>;
  /** Bytes the database uses (pages in use × page size). */
  readonly databaseSize: number;
  readonly Cursor: typeof SqlStorageCursor;
  readonly Statement: typeof SqlStorageStatement;
}

/** `ctx.storage.kv`: the synchronous key-value API over the same table as `get`/`put`. */
export interface SyncKvStorage {
  get<T = unknown>(key: string): T | undefined;
  list<T = unknown>(options?: Omit<ListOptions, "allowConcurrency" | "noCache">): Iterable<[string, T]>;
  put<T>(key: string, value: T): void;
  delete(key: string): boolean;
}

/** The `txn` of `storage.transaction(async (txn) => …)`. */
export interface DurableObjectTransaction {
  get<T = unknown>(key: string): Promise<T | undefined>;
  get<T = unknown>(keys: string[]): Promise<Map<string, T>>;
  list<T = unknown>(options?: ListOptions): Promise<Map<string, T>>;
  put<T>(key: string, value: T): Promise<void>;
  put<T>(entries: Record<string, T>): Promise<void>;
  delete(key: string): Promise<boolean>;
  delete(keys: string[]): Promise<number>;
  /** Undo everything the transaction wrote, once the closure returns. */
  rollback(): void;
  getAlarm(): Promise<number | null>;
  setAlarm(time: number | Date): Promise<void>;
  deleteAlarm(): Promise<void>;
}

export interface ObjectStorageOptions {
  /** The object's database, or a function opening it at the first storage call (objects that never touch storage make no file). */
  db: DatabaseSync | (() => DatabaseSync);
  alarms: AlarmAccess;
  /**
   * Runs `fn` with the object's input gate closed (no other event is delivered meanwhile); the host
   * passes `blockConcurrencyWhile`. Used by `transaction()`.
   */
  gate?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Called when an automatic commit fails (the write is lost): the host resets the object. */
  onCommitError?: (error: unknown) => void;
  /** Limit on the database size; default `MAX_OBJECT_BYTES`. */
  maxBytes?: number;
  /**
   * Ships each committed transaction (objects shared by workers, SPEC §13.7): a session changeset,
   * or the whole database when a changeset cannot carry it (schema changes, writes to a table
   * without a primary key, the first commit, and every `SNAPSHOT_EVERY` changesets or
   * `SNAPSHOT_BYTES`). Entries are shipped one after another; the writes of a commit count as
   * committed (the output gate opens) once it is shipped. A failed ship is a failed commit.
   */
  replicate?: (entry: ReplicatedEntry) => Promise<void>;
}

/** A committed transaction as shipped (see `ObjectStorageOptions.replicate`). */
export interface ReplicatedEntry {
  kind: "changeset" | "snapshot";
  bytes: Uint8Array;
  /** The object's alarm when the commit set or deleted it (an empty changeset when only that). */
  alarm?: number | null;
}

/** A snapshot replaces the changesets after this many of them… */
export const SNAPSHOT_EVERY = 1000;
/** …or after this many bytes of them. */
export const SNAPSHOT_BYTES = 16 * 1024 * 1024;

/**
 * Rebuilds an object's database file at `path` from what was shipped: the last snapshot, if any,
 * then each changeset after it in order. What was there before is removed.
 */
export function restoreDatabase(path: string, entries: readonly ReplicatedEntry[]): void {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
  // A snapshot holds everything before it.
  const from = entries.findLastIndex((e) => e.kind === "snapshot");
  if (from >= 0) writeFileSync(path, entries[from]!.bytes);
  const rest = entries.slice(from + 1);
  if (rest.length === 0) return;
  const db = new (sqlite().DatabaseSync)(path);
  try {
    for (const [i, e] of rest.entries()) {
      if (e.kind !== "changeset")
        throw new Error(`restoring ${path}: a snapshot after the first entry (${i + 1})`);
      const applied = db.applyChangeset(e.bytes, {
        onConflict: () => sqlite().constants.SQLITE_CHANGESET_ABORT,
      });
      if (!applied) throw new Error(`restoring ${path}: changeset ${i + 1} of ${rest.length} does not apply`);
    }
  } finally {
    db.close();
  }
}

/**
 * An object's storage (Cloudflare's `DurableObjectStorage` for SQLite-backed objects): SQL, the
 * key-value API (hidden table `_cf_KV`, values encoded with V8's structured clone) and the alarm.
 *
 * Writes are coalesced as on Cloudflare: the first operation opens an implicit transaction, which is
 * committed before anything leaves the object (`flush()`, called by the host before it delivers an
 * RPC result, a response or a WebSocket message) and at the latest at the end of the current turn
 * of the event loop. With `synchronous=FULL` a committed write survives a crash of the process.
 */
export class ObjectStorage {
  readonly sql: SqlStorage;
  readonly kv: SyncKvStorage;
  #opened: DatabaseSync | undefined;
  readonly #open: () => DatabaseSync;
  readonly #maxBytes: number;
  readonly #alarms: AlarmAccess;
  readonly #gate: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly #onCommitError: (error: unknown) => void;
  readonly #cache = new Map<string, StatementSync>();
  readonly #userCache = new Map<string, StatementSync>();
  #commitScheduled = false;
  #commitWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Open `transaction()` closures; commits wait for them. */
  #asyncTxns = 0;
  #savepoint = 0;
  #user = false;
  #denied: string | undefined;
  #closed = false;
  readonly #replicate: ((entry: ReplicatedEntry) => Promise<void>) | undefined;
  /** Records the changes of the transaction being written (with `replicate`). */
  #session: Session | undefined;
  /** The next entry must be a snapshot (a changeset would not carry what was written). */
  #needsSnapshot = false;
  /** Tables written in the current transaction (their primary keys are checked at commit). */
  readonly #written = new Set<string>();
  readonly #hasPrimaryKey = new Map<string, boolean>();
  #changesetsSinceSnapshot = 0;
  #bytesSinceSnapshot = 0;
  /** The last ship; the next one and every commit's waiters wait for it. */
  #shipped: Promise<void> = Promise.resolve();
  /** An alarm set or deleted since the last commit, shipped with the next one. */
  #pendingAlarm: number | null | undefined;

  constructor(options: ObjectStorageOptions) {
    this.#replicate = options.replicate;
    const db = options.db;
    this.#open = typeof db === "function" ? db : () => db;
    this.#maxBytes = options.maxBytes ?? MAX_OBJECT_BYTES;
    this.#alarms = options.alarms;
    this.#gate = options.gate ?? ((fn) => fn());
    this.#onCommitError = options.onCommitError ?? (() => {});
    const self = this;
    this.sql = {
      exec: (query, ...bindings) => self.#exec(query, bindings) as never,
      get databaseSize() {
        return self.#databaseSize();
      },
      Cursor: SqlStorageCursor,
      Statement: SqlStorageStatement,
    };
    this.kv = {
      get: (key) => this.#getOne(checkKey(key)) as never,
      put: (key, value) => this.#write(() => this.#putOne(checkKey(key), encode(value))),
      delete: (key) => this.#write(() => this.#deleteOne(checkKey(key))),
      list: (options) => this.#list(options ?? {}) as never,
    };
  }

  /** The database, opened (and set up) at first use. */
  get #db(): DatabaseSync {
    if (this.#opened) return this.#opened;
    if (this.#closed) throw new Error("This Durable Object's storage is closed (the object was unloaded)");
    const db = this.#open();
    if (this.#replicate) {
      // The first commit of an open is shipped whole: the replica then never depends on a file
      // another worker cannot see.
      this.#needsSnapshot = true;
      this.#session = db.createSession();
    }
    // The hidden table is made inside the first implicit transaction: a new object costs one commit.
    db.exec("BEGIN");
    db.exec(`CREATE TABLE IF NOT EXISTS ${KV_TABLE} (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID`);
    this.#scheduleCommit();
    const pageSize = Number((db.prepare("PRAGMA page_size").get() as { page_size: number }).page_size);
    db.exec(`PRAGMA max_page_count = ${Math.floor(this.#maxBytes / pageSize)}`);
    db.setAuthorizer((action, a, b) => this.#authorize(action, a, b));
    this.#opened = db;
    return db;
  }

  // ---- key-value API (async shape, synchronous underneath) ----

  get<T = unknown>(key: string, options?: ListOptions): Promise<T | undefined>;
  get<T = unknown>(keys: string[], options?: ListOptions): Promise<Map<string, T>>;
  async get(keyOrKeys: string | string[], _options?: unknown): Promise<unknown> {
    if (Array.isArray(keyOrKeys)) {
      checkKeyCount(keyOrKeys.length, "get");
      const keys = [...new Set(keyOrKeys.map(checkKey))].sort(compareKeys);
      const out = new Map<string, unknown>();
      for (const k of keys) {
        const v = this.#getRaw(k);
        if (v !== undefined) out.set(k, decode(v));
      }
      return out;
    }
    return this.#getOne(checkKey(keyOrKeys));
  }

  put<T>(key: string, value: T, options?: unknown): Promise<void>;
  put<T>(entries: Record<string, T>, options?: unknown): Promise<void>;
  async put(
    keyOrEntries: string | Record<string, unknown>,
    value?: unknown,
    _options?: unknown,
  ): Promise<void> {
    if (typeof keyOrEntries === "object" && keyOrEntries !== null) {
      const entries = Object.entries(keyOrEntries);
      checkKeyCount(entries.length, "put");
      const encoded = entries.map(([k, v]) => [checkKey(k), encode(v)] as const);
      this.#write(() =>
        this.#atomically(() => {
          for (const [k, v] of encoded) this.#putOne(k, v);
        }),
      );
      return;
    }
    const key = checkKey(keyOrEntries);
    if (value === undefined) throw new TypeError("put: a value is required (use delete to remove a key)");
    const v = encode(value);
    this.#write(() => this.#putOne(key, v));
  }

  delete(key: string, options?: unknown): Promise<boolean>;
  delete(keys: string[], options?: unknown): Promise<number>;
  async delete(keyOrKeys: string | string[], _options?: unknown): Promise<boolean | number> {
    if (Array.isArray(keyOrKeys)) {
      checkKeyCount(keyOrKeys.length, "delete");
      const keys = keyOrKeys.map(checkKey);
      return this.#write(() =>
        this.#atomically(() => keys.reduce((n, k) => n + (this.#deleteOne(k) ? 1 : 0), 0)),
      );
    }
    const key = checkKey(keyOrKeys);
    return this.#write(() => this.#deleteOne(key));
  }

  async list<T = unknown>(options: ListOptions = {}): Promise<Map<string, T>> {
    return new Map(this.#list(options) as Iterable<[string, T]>);
  }

  /** Deletes every key and every SQL table, index, view and trigger (the alarm stays). */
  async deleteAll(_options?: unknown): Promise<void> {
    this.#write(() =>
      this.#atomically(() => {
        const rows = this.#db
          .prepare(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' " +
              "AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND type IN ('table','view','trigger')",
          )
          .all() as { type: string; name: string }[];
        this.#db.exec("PRAGMA defer_foreign_keys = ON");
        for (const r of rows.filter((r) => r.type !== "table"))
          this.#db.exec(`DROP ${r.type.toUpperCase()} IF EXISTS ${quoteIdent(r.name)}`);
        for (const r of rows.filter((r) => r.type === "table"))
          this.#db.exec(`DROP TABLE IF EXISTS ${quoteIdent(r.name)}`);
        this.#stmt(`DELETE FROM ${KV_TABLE}`).run();
      }),
    );
    this.#userCache.clear();
  }

  // ---- transactions ----

  /**
   * Runs `fn` synchronously in a transaction: everything it wrote is undone if it throws. Nested
   * calls nest (savepoints).
   */
  transactionSync<T>(fn: () => T): T {
    if (typeof fn !== "function") throw new TypeError("transactionSync needs a function");
    return this.#write(() => this.#atomically(fn));
  }

  /**
   * Runs `fn(txn)` in a transaction with the object's input gate closed: no other event runs
   * until it settles. A throw, or `txn.rollback()`, undoes what it wrote.
   */
  async transaction<T>(fn: (txn: DurableObjectTransaction) => Promise<T>): Promise<T> {
    if (typeof fn !== "function") throw new TypeError("transaction needs a function");
    return this.#gate(async () => {
      this.#begin();
      const sp = `cairn_sp${++this.#savepoint}`;
      this.#db.exec(`SAVEPOINT ${sp}`);
      this.#asyncTxns++;
      let rollback = false;
      const txn: DurableObjectTransaction = {
        get: ((k: never) => this.get(k)) as DurableObjectTransaction["get"],
        list: (o) => this.list(o),
        put: ((k: never, v?: unknown) => this.put(k, v as never)) as DurableObjectTransaction["put"],
        delete: ((k: never) => this.delete(k)) as DurableObjectTransaction["delete"],
        rollback: () => {
          rollback = true;
        },
        getAlarm: () => this.getAlarm(),
        setAlarm: (t) => this.setAlarm(t),
        deleteAlarm: () => this.deleteAlarm(),
      };
      try {
        const result = await fn(txn);
        if (rollback) this.#db.exec(`ROLLBACK TO ${sp}`);
        this.#db.exec(`RELEASE ${sp}`);
        return result;
      } catch (e) {
        if (this.#db.isTransaction) {
          this.#db.exec(`ROLLBACK TO ${sp}`);
          this.#db.exec(`RELEASE ${sp}`);
        }
        throw e;
      } finally {
        this.#savepoint--;
        if (--this.#asyncTxns === 0) {
          this.#scheduleCommit();
        }
      }
    });
  }

  // ---- alarm ----

  async getAlarm(_options?: unknown): Promise<number | null> {
    return this.#alarms.get();
  }

  async setAlarm(time: number | Date, _options?: unknown): Promise<void> {
    const t = time instanceof Date ? time.getTime() : time;
    if (typeof t !== "number" || !Number.isFinite(t))
      throw new TypeError("setAlarm: the time must be a Date or a number of milliseconds since the epoch");
    this.#alarms.set(Math.floor(t));
    this.#alarmChanged(Math.floor(t));
  }

  async deleteAlarm(_options?: unknown): Promise<void> {
    this.#alarms.delete();
    this.#alarmChanged(null);
  }

  /**
   * After an alarm ran (host side): deletes it if it is still the one that ran (`alarm()` may have
   * set the next), so the replica no longer lists it as due.
   */
  alarmRan(time: number): void {
    if (this.#replicate && this.#alarms.get() === time) {
      this.#alarms.delete();
      this.#alarmChanged(null);
    }
  }

  #alarmChanged(time: number | null): void {
    if (!this.#replicate || this.#closed) return;
    this.#pendingAlarm = time;
    this.#scheduleCommit();
  }

  /** Resolves once every write made so far is committed. */
  sync(): Promise<void> {
    return this.flush();
  }

  /** Not supported: point-in-time recovery needs Cloudflare's storage. */
  async getCurrentBookmark(): Promise<string> {
    throw new Error("getCurrentBookmark is not supported by Cairn (no point-in-time recovery)");
  }

  async getBookmarkForTime(_t: number | Date): Promise<string> {
    throw new Error("getBookmarkForTime is not supported by Cairn (no point-in-time recovery)");
  }

  async onNextSessionRestoreBookmark(_b: string): Promise<string> {
    throw new Error("onNextSessionRestoreBookmark is not supported by Cairn (no point-in-time recovery)");
  }

  // ---- host side ----

  /**
   * Commits the implicit transaction now (the output gate): resolves when every write made before
   * the call is durable. Waits for open `transaction()` closures first.
   */
  flush(): Promise<void> {
    // Replicated, an answer also waits for the ships still in flight (of writes it may have read).
    if (this.#asyncTxns === 0 && !this.dirty && this.#pendingAlarm === undefined)
      return this.#replicate ? this.#shipped : Promise.resolve();
    // Wait for the end-of-turn commit: events that ran in the same turn share it (group commit),
    // while the input gate lets the next event start.
    return new Promise<void>((resolve, reject) => {
      this.#commitWaiters.push({ resolve, reject });
      this.#scheduleCommit();
    });
  }

  /** Commits synchronously; throws if the commit fails (the writes are then lost). */
  commitNow(): void {
    if (this.#closed || this.#asyncTxns > 0) return;
    let entry: ReplicatedEntry | undefined;
    if (this.#opened?.isTransaction) {
      try {
        this.#opened.exec("COMMIT");
        if (this.#replicate) entry = this.#capture(this.#opened);
      } catch (e) {
        if (this.#opened.isTransaction) this.#opened.exec("ROLLBACK");
        this.#settleWaiters(e);
        throw e;
      }
    }
    if (!this.#replicate) {
      this.#settleWaiters();
      return;
    }
    const replicate = this.#replicate;
    if (this.#pendingAlarm !== undefined) {
      entry ??= { kind: "changeset", bytes: new Uint8Array(0) };
      entry.alarm = this.#pendingAlarm;
      this.#pendingAlarm = undefined;
    }
    if (entry) {
      const shipping = entry;
      this.#shipped = this.#shipped.then(() => replicate(shipping));
    }
    const waiters = this.#commitWaiters.splice(0);
    this.#shipped.then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (e) => {
        for (const w of waiters) w.reject(e);
        if (entry) this.#onCommitError(e);
      },
    );
  }

  /** Resolves once every commit so far is shipped (rejects if one failed). */
  shipped(): Promise<void> {
    return this.#shipped;
  }

  /** What the transaction just committed ships as; undefined when it changed nothing. */
  #capture(db: DatabaseSync): ReplicatedEntry | undefined {
    const changeset = this.#session!.changeset();
    this.#session!.close();
    this.#session = db.createSession();
    for (const table of this.#written) if (!this.#primaryKeyed(db, table)) this.#needsSnapshot = true;
    this.#written.clear();
    this.#changesetsSinceSnapshot++;
    this.#bytesSinceSnapshot += changeset.byteLength;
    if (
      this.#needsSnapshot ||
      this.#changesetsSinceSnapshot >= SNAPSHOT_EVERY ||
      this.#bytesSinceSnapshot >= SNAPSHOT_BYTES
    ) {
      this.#needsSnapshot = false;
      this.#changesetsSinceSnapshot = 0;
      this.#bytesSinceSnapshot = 0;
      return { kind: "snapshot", bytes: this.#snapshot(db) };
    }
    return changeset.byteLength === 0 ? undefined : { kind: "changeset", bytes: changeset };
  }

  /** Whether a session records the table's rows: it needs a primary key (sqlite_sequence heals itself). */
  #primaryKeyed(db: DatabaseSync, table: string): boolean {
    if (table === "sqlite_sequence") return true;
    let known = this.#hasPrimaryKey.get(table);
    if (known === undefined) {
      const row = db.prepare("SELECT COUNT(*) AS n FROM pragma_table_info(?) WHERE pk > 0").get(table) as {
        n: number;
      };
      this.#hasPrimaryKey.set(table, (known = Number(row.n) > 0));
    }
    return known;
  }

  /** The whole database as a file's bytes (`VACUUM INTO`, outside any transaction). */
  #snapshot(db: DatabaseSync): Uint8Array {
    const path = join(tmpdir(), `cairn-snapshot-${randomBytes(8).toString("hex")}.sqlite`);
    db.setAuthorizer(null);
    try {
      db.prepare("VACUUM INTO ?").run(path);
      return readFileSync(path);
    } finally {
      db.setAuthorizer((action, a, b) => this.#authorize(action, a, b));
      if (existsSync(path)) rmSync(path, { force: true });
    }
  }

  /** Whether writes are waiting to be committed. */
  get dirty(): boolean {
    return !this.#closed && this.#opened?.isTransaction === true;
  }

  /** Commits what is pending and closes the database. */
  close(): void {
    if (this.#closed) return;
    try {
      this.commitNow();
    } finally {
      this.#closed = true;
      this.#cache.clear();
      this.#userCache.clear();
      this.#endSession();
      this.#opened?.close();
    }
  }

  #endSession(): void {
    try {
      this.#session?.close();
    } catch {
      // Already closed with its database.
    }
    this.#session = undefined;
  }

  /** Drops uncommitted writes (the database stays open). */
  rollback(): void {
    if (!this.#closed && this.#opened?.isTransaction && this.#asyncTxns === 0) this.#opened.exec("ROLLBACK");
  }

  /** Drops uncommitted writes and closes the database (the object is being reset). */
  discard(): void {
    if (this.#closed) return;
    this.#settleWaiters(new Error("The Durable Object was reset before its writes were committed"));
    this.#closed = true;
    this.#cache.clear();
    this.#userCache.clear();
    try {
      if (this.#opened?.isTransaction) this.#opened.exec("ROLLBACK");
    } finally {
      this.#endSession();
      this.#opened?.close();
    }
  }

  // ---- internals ----

  #begin(): void {
    if (this.#closed) throw new Error("This Durable Object's storage is closed (the object was unloaded)");
    if (!this.#db.isTransaction) this.#db.exec("BEGIN");
    this.#scheduleCommit();
  }

  #scheduleCommit(): void {
    if (this.#commitScheduled) return;
    this.#commitScheduled = true;
    setImmediate(() => {
      this.#commitScheduled = false;
      if (this.#asyncTxns > 0) return; // the transaction's end schedules the commit again
      try {
        this.commitNow();
      } catch (e) {
        this.#onCommitError(e);
      }
    });
  }

  #settleWaiters(error?: unknown): void {
    for (const w of this.#commitWaiters.splice(0)) {
      if (error === undefined) w.resolve();
      else w.reject(error);
    }
  }

  #write<T>(fn: () => T): T {
    this.#begin();
    return fn();
  }

  #atomically<T>(fn: () => T): T {
    const sp = `cairn_sp${++this.#savepoint}`;
    this.#db.exec(`SAVEPOINT ${sp}`);
    try {
      const result = fn();
      if (result && typeof (result as { then?: unknown }).then === "function") {
        this.#db.exec(`ROLLBACK TO ${sp}`);
        this.#db.exec(`RELEASE ${sp}`);
        throw new TypeError(
          "transactionSync: the callback returned a promise; it must be synchronous (use transaction() for async work)",
        );
      }
      this.#db.exec(`RELEASE ${sp}`);
      return result;
    } catch (e) {
      if (this.#db.isTransaction) {
        try {
          this.#db.exec(`ROLLBACK TO ${sp}`);
          this.#db.exec(`RELEASE ${sp}`);
        } catch {
          // The savepoint is already gone (released above before the promise check).
        }
      }
      throw e;
    } finally {
      this.#savepoint--;
    }
  }

  #stmt(sql: string): StatementSync {
    let s = this.#cache.get(sql);
    if (!s) {
      if (this.#closed) throw new Error("This Durable Object's storage is closed (the object was unloaded)");
      s = this.#db.prepare(sql);
      this.#cache.set(sql, s);
    }
    return s;
  }

  #getRaw(key: string): Uint8Array | undefined {
    const row = this.#stmt(`SELECT value FROM ${KV_TABLE} WHERE key = ?`).get(key) as
      | { value: Uint8Array }
      | undefined;
    return row?.value;
  }

  #getOne(key: string): unknown {
    const v = this.#getRaw(key);
    return v === undefined ? undefined : decode(v);
  }

  #putOne(key: string, value: Uint8Array): void {
    this.#stmt(`INSERT OR REPLACE INTO ${KV_TABLE} (key, value) VALUES (?, ?)`).run(key, value);
  }

  #deleteOne(key: string): boolean {
    return Number(this.#stmt(`DELETE FROM ${KV_TABLE} WHERE key = ?`).run(key).changes) > 0;
  }

  #list(options: ListOptions): [string, unknown][] {
    if (typeof options !== "object" || options === null)
      throw new TypeError("list: options must be an object");
    const { start, startAfter, end, prefix, reverse, limit } = options;
    for (const [name, v] of Object.entries({ start, startAfter, end, prefix }))
      if (v !== undefined && typeof v !== "string") throw new TypeError(`list: ${name} must be a string`);
    if (start !== undefined && startAfter !== undefined)
      throw new TypeError("list: start and startAfter cannot be used together");
    if (limit !== undefined && (!Number.isInteger(limit) || limit <= 0))
      throw new TypeError("list: limit must be a positive whole number");
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (start !== undefined) where.push("key >= ?") && args.push(start);
    if (startAfter !== undefined) where.push("key > ?") && args.push(startAfter);
    if (end !== undefined) where.push("key < ?") && args.push(end);
    if (prefix) {
      where.push("key >= ? AND substr(key, 1, ?) = ?");
      args.push(prefix, prefix.length, prefix);
    }
    const sql =
      `SELECT key, value FROM ${KV_TABLE}${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ` +
      `ORDER BY key ${reverse ? "DESC" : "ASC"}${limit !== undefined ? " LIMIT ?" : ""}`;
    if (limit !== undefined) args.push(limit);
    const rows = this.#stmt(sql).all(...args) as { key: string; value: Uint8Array }[];
    return rows.map((r) => [r.key, decode(r.value)]);
  }

  #exec(query: string, bindings: unknown[]): SqlStorageCursor {
    if (typeof query !== "string") throw new TypeError("sql.exec: the query must be a string");
    if (Buffer.byteLength(query) > MAX_SQL_STATEMENT_BYTES)
      throw new RangeError(
        `sql.exec: the SQL statement is ${Buffer.byteLength(query)} bytes; the limit is ${MAX_SQL_STATEMENT_BYTES}`,
      );
    const values = bindings.map(toSqlBinding);
    this.#begin();
    let statements: string[] | undefined;
    let stmt = this.#userCache.get(query);
    if (!stmt) {
      statements = splitStatements(query);
      if (statements.length === 0) throw new SqlError("the query contains no SQL statement", query);
      for (const s of statements.slice(0, -1)) this.#runUser(s, [], query);
      stmt = this.#prepareUser(statements.at(-1)!, query);
      if (statements.length === 1) this.#cacheUser(query, stmt);
    }
    return this.#runUser(stmt, values, query);
  }

  #cacheUser(query: string, stmt: StatementSync): void {
    if (this.#userCache.size >= 200) this.#userCache.delete(this.#userCache.keys().next().value!);
    this.#userCache.set(query, stmt);
  }

  #prepareUser(text: string, query: string): StatementSync {
    this.#user = true;
    this.#denied = undefined;
    try {
      const s = this.#db.prepare(text);
      s.setReturnArrays(true);
      return s;
    } catch (e) {
      throw this.#sqlError(e, query);
    } finally {
      this.#user = false;
    }
  }

  #runUser(stmtOrText: StatementSync | string, values: unknown[], query: string): SqlStorageCursor {
    const stmt = typeof stmtOrText === "string" ? this.#prepareUser(stmtOrText, query) : stmtOrText;
    const before = this.#totalChanges();
    this.#user = true;
    this.#denied = undefined;
    try {
      const columns = stmt.columns().map((c) => c.name);
      const rows = (stmt.all(...(values as never[])) as unknown as unknown[][]).map((r) =>
        r.map(fromSqlValue),
      );
      return new SqlStorageCursor(columns, rows, this.#totalChanges() - before);
    } catch (e) {
      throw this.#sqlError(e, query);
    } finally {
      this.#user = false;
    }
  }

  #totalChanges(): number {
    return Number((this.#stmt("SELECT total_changes() AS n").get() as { n: number }).n);
  }

  #sqlError(e: unknown, query: string): Error {
    if (this.#denied) return new Error(this.#denied);
    const err = e as { message?: string; errcode?: number; errstr?: string };
    const code = sqliteCodeName(err.errcode);
    return new SqlError(`${err.message ?? String(e)}${code ? `: ${code}` : ""}`, query);
  }

  #authorize(action: number, a: string | null, b: string | null): number {
    if (this.#replicate) this.#track(action, a);
    if (!this.#user) return sqlite().constants.SQLITE_OK;
    const deny = (reason: string) => {
      this.#denied ??= reason;
      return sqlite().constants.SQLITE_DENY;
    };
    if (action === sqlite().constants.SQLITE_TRANSACTION || action === sqlite().constants.SQLITE_SAVEPOINT)
      return deny(TRANSACTION_REFUSED);
    if (action === sqlite().constants.SQLITE_ATTACH || action === sqlite().constants.SQLITE_DETACH)
      return deny("ATTACH and DETACH are not allowed in a Durable Object's SQL");
    if (action === sqlite().constants.SQLITE_PRAGMA) {
      const name = (a ?? "").toLowerCase();
      if (!ALLOWED_PRAGMAS.has(name) || (b !== null && !READ_ONLY_WITH_ARG.has(name)))
        return deny(`PRAGMA ${a} is not allowed in a Durable Object's SQL`);
      return sqlite().constants.SQLITE_OK;
    }
    if (action === sqlite().constants.SQLITE_FUNCTION) return sqlite().constants.SQLITE_OK;
    for (const name of [a, b])
      if (name && /^_cf_/i.test(name))
        return deny(`access to ${a}${b ? `.${b}` : ""} is prohibited: SQLITE_AUTH`);
    return sqlite().constants.SQLITE_OK;
  }

  /** What a replicated commit must carry: writes by table, and schema changes (which need a snapshot). */
  #track(action: number, table: string | null): void {
    const c = sqlite().constants;
    if (action === c.SQLITE_INSERT || action === c.SQLITE_UPDATE || action === c.SQLITE_DELETE) {
      if (table) this.#written.add(table);
      return;
    }
    if (
      action === c.SQLITE_CREATE_TABLE ||
      action === c.SQLITE_CREATE_INDEX ||
      action === c.SQLITE_CREATE_TRIGGER ||
      action === c.SQLITE_CREATE_VIEW ||
      action === c.SQLITE_DROP_TABLE ||
      action === c.SQLITE_DROP_INDEX ||
      action === c.SQLITE_DROP_TRIGGER ||
      action === c.SQLITE_DROP_VIEW ||
      action === c.SQLITE_ALTER_TABLE ||
      action === c.SQLITE_CREATE_VTABLE ||
      action === c.SQLITE_DROP_VTABLE
    ) {
      this.#needsSnapshot = true;
      this.#hasPrimaryKey.clear();
    }
  }

  #databaseSize(): number {
    const row = this.#stmt(
      "SELECT (SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM pragma_freelist_count) AS pages, (SELECT page_size FROM pragma_page_size) AS size",
    ).get() as { pages: number; size: number };
    return Number(row.pages) * Number(row.size);
  }
}

/** PRAGMAs that take an argument without changing anything durable. */
const READ_ONLY_WITH_ARG = new Set([
  "table_info",
  "table_xinfo",
  "index_list",
  "index_info",
  "index_xinfo",
  "foreign_key_list",
  "foreign_key_check",
  "foreign_keys",
  "defer_foreign_keys",
  "legacy_alter_table",
  "case_sensitive_like",
  "recursive_triggers",
  "reverse_unordered_selects",
  "quick_check",
  "integrity_check",
  "optimize",
  "table_list",
]);

function sqliteCodeName(code: number | undefined): string | undefined {
  if (code === undefined) return undefined;
  const names: Record<number, string> = {
    1: "SQLITE_ERROR",
    13: "SQLITE_FULL",
    18: "SQLITE_TOOBIG",
    19: "SQLITE_CONSTRAINT",
    20: "SQLITE_MISMATCH",
    23: "SQLITE_AUTH",
    25: "SQLITE_RANGE",
  };
  return names[code & 0xff];
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const encoder = new TextEncoder();

function checkKey(key: unknown): string {
  if (typeof key !== "string")
    throw new TypeError(`A storage key must be a string, got ${key === null ? "null" : typeof key}`);
  const size = encoder.encode(key).length;
  if (size > MAX_KEY_BYTES)
    throw new RangeError(
      `Keys cannot be larger than ${MAX_KEY_BYTES} bytes. A key of size ${size} was provided.`,
    );
  return key;
}

function checkKeyCount(n: number, op: string): void {
  if (n > MAX_KEYS_PER_CALL)
    throw new RangeError(`${op}: at most ${MAX_KEYS_PER_CALL} keys at once, got ${n}`);
}

function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Encodes a storage value with V8's structured clone (what Cloudflare stores). */
export function encode(value: unknown): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = serialize(value);
  } catch (e) {
    throw new TypeError(`This value cannot be stored: ${(e as Error).message}`);
  }
  if (bytes.length > MAX_VALUE_BYTES)
    throw new RangeError(
      `Values cannot be larger than ${MAX_VALUE_BYTES} bytes. A value of size ${bytes.length} was provided.`,
    );
  return bytes;
}

export function decode(bytes: Uint8Array): unknown {
  return deserialize(bytes);
}

function toSqlBinding(v: unknown, i: number): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") {
    if (Buffer.byteLength(v) > MAX_VALUE_BYTES)
      throw new RangeError(`sql.exec: binding ${i + 1} is larger than ${MAX_VALUE_BYTES} bytes`);
    return v;
  }
  if (typeof v === "number" || typeof v === "bigint") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const bytes =
      v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    if (bytes.length > MAX_VALUE_BYTES)
      throw new RangeError(`sql.exec: binding ${i + 1} is larger than ${MAX_VALUE_BYTES} bytes`);
    return bytes;
  }
  throw new TypeError(
    `sql.exec: binding ${i + 1} must be a string, number, ArrayBuffer or null, got ${typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v}`,
  );
}

function fromSqlValue(v: unknown): SqlStorageValue {
  if (v instanceof Uint8Array)
    return v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer;
  if (typeof v === "bigint") return Number(v);
  return v as SqlStorageValue;
}
