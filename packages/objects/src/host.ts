import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { deserialize, serialize } from "node:v8";
import { type Clock, systemClock, type TimerHandle, WorkflowError } from "@cairn/core";
import type { ObjectReplica, ReplicaObject } from "@cairn/store";
import { type DurableObjectClass, isDurableObjectClass } from "./durable-object.ts";
import { ForwardClient, type ForwardListenOptions, ForwardServer, OwnerUnreachable } from "./forward.ts";
import { type DurableObjectId, IdFactory } from "./ids.ts";
import {
  ALARM_MAX_RETRIES,
  alarmRetryDelayMs,
  DEFAULT_IDLE_TIMEOUT_MS,
  MAX_MESSAGE_BYTES,
} from "./limits.ts";
import { type Migration, planMigrations } from "./migrations.ts";
import { sqlite } from "./node-sqlite.ts";
import { type ObjectRecord, Registry } from "./registry.ts";
import { remoteError } from "./remote-error.ts";
import { DurableObjectState, type StateHost } from "./state.ts";
import { ObjectStorage, type ReplicatedEntry, restoreDatabase } from "./storage.ts";
import {
  installWorkersGlobals,
  responseWebSocket,
  type SocketOwner,
  type WebSocket,
  type WebSocketData,
  type WebSocketRequestResponsePair,
} from "./websocket.ts";

/** How many holders' addresses a class keeps for forwarding (each trusted for one lease at most). */
const REMOTE_ADDRESSES = 10_000;

/** One Durable Object binding: `env[binding]` is the namespace of `class`. */
export interface ObjectBinding {
  /** The `env` property, e.g. "COUNTER". */
  binding: string;
  class: DurableObjectClass;
  /** The name objects are stored under (wrangler's `class_name`). Default: `class.name`. */
  className?: string;
}

export interface ObjectHostOptions {
  /**
   * Where objects live: each object's SQLite file is `<dir>/<class>/<id>.sqlite`, and the host's
   * registry (migrations, names, alarms) is `<dir>/objects.db`. ":memory:" keeps everything in
   * memory (objects are never unloaded then).
   */
  dir: string;
  objects: ObjectBinding[];
  /** `this.env` of every object. The host adds the namespaces to it (by binding). */
  env?: Record<string, unknown>;
  /**
   * Wrangler's `migrations[]`. When given, they are applied once per `dir`, in order, and every
   * bound class must exist after them (`do.missing_migration`). Without them every bound class
   * simply exists (the library's `createCairn({ objects })`).
   */
  migrations?: Migration[];
  clock?: Clock;
  /** How long an object with nothing to do stays loaded. Default 10,000 ms. */
  idleTimeoutMs?: number;
  /** SQLite durability of each object's file: "FULL" (default) or "NORMAL". */
  synchronous?: "FULL" | "NORMAL";
  log?: (message: string, error?: unknown) => void;
  /**
   * Objects shared by workers (SPEC §13.7): each object is owned by one worker at a time under a
   * lease in `replica`; its commits are shipped there, and a worker taking it over restores it
   * first. Needs a directory (not ":memory:") and the same `namespaceKeys` on every worker.
   */
  replica?: ReplicaOptions;
}

export interface ReplicaOptions {
  objects: ObjectReplica;
  /** This worker, as leases name it. */
  owner: string;
  /** Each namespace's id key, shared by all workers (so a name gives the same id everywhere). */
  namespaceKeys: Record<string, Uint8Array>;
  /** How long a lease lasts without renewal (renewed every third of it). Default 10,000 ms. */
  leaseMs?: number;
  /** How often due alarms of objects nobody holds are looked for. Default 1,000 ms. */
  alarmPollMs?: number;
  /**
   * Forwarding (SPEC §13.7): requests (RPC, `fetch`, WebSocket upgrades) for an object another
   * worker holds go to that worker, which listens for them at an address of its own. Without it
   * they wait for the other worker to let the object go.
   */
  forward?: Omit<ForwardListenOptions, "log">;
}

/** The summary of a namespace for the dashboard and the CLI. */
export interface NamespaceInfo {
  binding: string;
  className: string;
  objects: number;
  loaded: number;
}

/** What the Objects page shows of one object (read without loading it). */
export interface ObjectDetail extends ObjectRecord {
  loaded: boolean;
  sizeBytes: number;
  webSockets: number;
  /** The key-value entries (values as V8-decoded, first `limit`). */
  kv: { key: string; value: unknown }[];
  /** User tables with their columns and first rows. */
  tables: { name: string; columns: string[]; rows: unknown[][]; count: number }[];
}

interface QueuedEvent {
  start(obj: LoadedObject): void;
  fail(error: unknown): void;
  /** Sends the event to the worker at `url`, which holds the object (RPC and fetch from stubs). */
  forward?(url: string): void;
}

/** One loaded object: its instance, storage and event queue. */
class LoadedObject implements StateHost {
  readonly ns: ClassHost;
  readonly id: DurableObjectId;
  storage!: ObjectStorage;
  instance!: Record<string, any>;
  ctx!: DurableObjectState;
  queue: QueuedEvent[] = [];
  /** blockConcurrencyWhile calls in progress: the input gate is closed while > 0. */
  blocks = 0;
  active = 0;
  waits = 0;
  /** Plain (non-hibernatable) WebSockets this object serves: it stays loaded while they are open. */
  pins = 0;
  pumpScheduled = false;
  /** Events started back to back in this turn. */
  chained = 0;
  idleTimer: TimerHandle | undefined;
  gone = false;
  /** With a replica: the lease's epoch (the fence of every ship) and the last entry shipped. */
  epoch = 0;
  seq = 0;

  constructor(ns: ClassHost, id: DurableObjectId) {
    this.ns = ns;
    this.id = id;
  }

  get hex(): string {
    return this.id.toString();
  }

  waitUntil(promise: Promise<unknown>): void {
    this.waits++;
    this.cancelIdle();
    promise
      .catch((e) => this.ns.host.log(`${this.ns.className} ${this.hex}: a waitUntil promise failed`, e))
      .finally(() => {
        this.waits--;
        this.ns.host.maybeIdle(this);
      });
  }

  /** Runs `fn` with the input gate closed; a throw resets the object (as on Cloudflare). */
  async blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await this.closeInputGate(fn);
    } catch (e) {
      this.ns.host.reset(this, e);
      throw e;
    }
  }

  /** Runs `fn` with the input gate closed: no other event starts until it settles. */
  async closeInputGate<T>(fn: () => Promise<T>): Promise<T> {
    this.blocks++;
    try {
      return await fn();
    } finally {
      this.blocks--;
      if (this.blocks === 0) this.ns.host.schedulePump(this);
    }
  }

  acceptWebSocket(ws: WebSocket, tags: string[]): void {
    this.ns.acceptWebSocket(this.hex, ws, tags);
  }

  webSockets(): WebSocket[] {
    return [...(this.ns.sockets.get(this.hex) ?? [])].filter((ws) => ws.readyState !== 3);
  }

  get autoResponse(): WebSocketRequestResponsePair | null {
    return this.ns.autoResponses.get(this.hex) ?? null;
  }

  set autoResponse(pair: WebSocketRequestResponsePair | null) {
    if (pair) this.ns.autoResponses.set(this.hex, pair);
    else this.ns.autoResponses.delete(this.hex);
  }

  abort(reason: string | undefined): void {
    this.ns.host.reset(this, new Error(reason ?? "the object called ctx.abort()"));
  }

  cancelIdle(): void {
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
  }
}

/** A namespace's state on the host: its class, id key, loaded objects and hibernated sockets. */
class ClassHost {
  readonly host: ObjectHost;
  readonly binding: string;
  readonly className: string;
  readonly cls: DurableObjectClass;
  readonly ids: IdFactory;
  readonly loaded = new Map<string, LoadedObject>();
  /** Hibernatable sockets per object id; they outlive the object's instance. */
  readonly sockets = new Map<string, Set<WebSocket>>();
  readonly autoResponses = new Map<string, WebSocketRequestResponsePair>();
  readonly owners = new Map<string, SocketOwner>();
  /** With a replica: events for objects being taken (lease and restore) before they load. */
  readonly acquiring = new Map<string, QueuedEvent[]>();
  /** With forwarding: objects another worker holds, its address, and until when to trust that. */
  readonly remote = new Map<string, { url: string; until: number }>();
  readonly namespace: DurableObjectNamespace;

  constructor(host: ObjectHost, binding: ObjectBinding, className: string, key: Uint8Array) {
    this.host = host;
    this.binding = binding.binding;
    this.className = className;
    this.cls = binding.class;
    this.ids = new IdFactory(key);
    this.namespace = new DurableObjectNamespace(this);
  }

  acceptWebSocket(hex: string, ws: WebSocket, tags: string[]): void {
    let owner = this.owners.get(hex);
    if (!owner) {
      owner = this.host.socketOwner(this, hex);
      this.owners.set(hex, owner);
    }
    ws.acceptHibernatable(owner, tags);
    let set = this.sockets.get(hex);
    if (!set) this.sockets.set(hex, (set = new Set()));
    set.add(ws);
  }

  dropSocket(hex: string, ws: WebSocket): void {
    const set = this.sockets.get(hex);
    if (!set) return;
    set.delete(ws);
    if (set.size === 0) {
      this.sockets.delete(hex);
      this.owners.delete(hex);
      this.autoResponses.delete(hex);
    }
  }
}

/**
 * Runs Durable Objects in this process (SPEC §13.7): one instance per object id at a time, one
 * SQLite file per object, events delivered in arrival order through input and output gates,
 * alarms from one timer over the registry, idle objects unloaded, accepted WebSockets kept open
 * across unloads (hibernation).
 *
 * ```ts
 * const host = createObjectHost({ dir: ".cairn/do", objects: [{ binding: "COUNTER", class: Counter }] });
 * const counter = host.namespaces.COUNTER.getByName("a");
 * await counter.increment();
 * await host.close();
 * ```
 */
export class ObjectHost {
  /** The namespaces by binding (also added to `env`). */
  readonly namespaces: Record<string, DurableObjectNamespace> = {};
  readonly env: Record<string, unknown>;
  readonly dir: string;
  readonly #classes = new Map<string, ClassHost>();
  readonly #registry: Registry;
  readonly #clock: Clock;
  readonly #idleMs: number;
  readonly #synchronous: "FULL" | "NORMAL";
  readonly #log: (message: string, error?: unknown) => void;
  readonly #memory: boolean;
  readonly #memoryDbs = new Map<string, DatabaseSync>();
  #alarmTimer: TimerHandle | undefined;
  #alarmArmedAt: number | undefined;
  readonly #alarmsRunning = new Set<string>();
  /** Alarms of classes not bound in this process: they wait (and must not keep the timer spinning). */
  readonly #alarmsUnbound = new Set<string>();
  #closed = false;
  readonly #replica: Required<ReplicaOptions> | undefined;
  #renewTimer: TimerHandle | undefined;
  #alarmPoll: TimerHandle | undefined;
  /** Releases of unloaded objects' leases still being written. */
  readonly #releases = new Set<Promise<void>>();
  readonly #forwardServer: ForwardServer | undefined;
  readonly #forwardClient: ForwardClient | undefined;
  /**
   * With a replica, what `refreshViews` read from the store for the read-only views: each class's
   * object count, a page of its objects, and objects restored from the store into `<dir>/.views`.
   */
  readonly #viewCounts = new Map<string, number>();
  readonly #viewPages = new Map<string, ReplicaObject[]>();
  readonly #viewRecords = new Map<string, ReplicaObject>();

  constructor(options: ObjectHostOptions) {
    if (typeof options?.dir !== "string" || options.dir === "")
      throw new TypeError('createObjectHost: dir must be a directory path or ":memory:"');
    if (!Array.isArray(options.objects))
      throw new TypeError("createObjectHost: objects must be an array of { binding, class }");
    if (options.objects.length > 0) installWorkersGlobals();
    this.dir = options.dir;
    this.#memory = options.dir === ":memory:";
    this.#clock = options.clock ?? systemClock;
    this.#idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#synchronous = options.synchronous ?? "FULL";
    this.#log = options.log ?? ((m, e) => console.error(m, e ?? ""));
    this.env = options.env ?? {};
    if (options.replica) {
      if (this.#memory) throw new TypeError('createObjectHost: a replica needs a directory, not ":memory:"');
      const { forward, ...replica } = options.replica;
      this.#replica = { leaseMs: 10_000, alarmPollMs: 1000, ...replica } as Required<ReplicaOptions>;
      if (forward) {
        this.#forwardClient = new ForwardClient(forward.secret);
        this.#forwardServer = new ForwardServer(
          {
            fetch: (className, hex, request) => {
              const ch = this.#forwardedClass(className);
              return this.fetch(ch, ch.ids.fromString(hex), request, undefined, false);
            },
            rpc: (className, hex, method, args) => {
              const ch = this.#forwardedClass(className);
              return this.rpc(ch, ch.ids.fromString(hex), method, args, false);
            },
          },
          { ...forward, log: this.#log },
        );
      }
    }
    if (!this.#memory) mkdirSync(options.dir, { recursive: true });
    this.#registry = new Registry(this.#memory ? ":memory:" : join(options.dir, "objects.db"));
    try {
      const classNames = this.#migrate(options.migrations);
      const bindings = new Set<string>();
      for (const b of options.objects) {
        if (typeof b?.binding !== "string" || !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(b.binding))
          throw new TypeError(
            `createObjectHost: binding ${JSON.stringify(b?.binding)} must be a JavaScript identifier`,
          );
        if (bindings.has(b.binding))
          throw new TypeError(`createObjectHost: binding "${b.binding}" is used twice`);
        bindings.add(b.binding);
        const className = b.className ?? b.class?.name;
        if (typeof b.class !== "function" || typeof b.class.prototype !== "object")
          throw new WorkflowError(
            "do.class_not_found",
            `${className ?? b.binding} (binding ${b.binding}) is not a class`,
          );
        if (!className || !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(className))
          throw new TypeError(`createObjectHost: binding ${b.binding} needs a className`);
        if (classNames && !classNames.has(className)) throw missingMigration(className, b.binding);
        let ch = this.#classes.get(className);
        if (!ch) {
          const key =
            this.#replica?.namespaceKeys[className] ??
            this.#registry.namespaceKey(className, this.#clock.now());
          ch = new ClassHost(this, b, className, key);
          this.#classes.set(className, ch);
        }
        this.namespaces[b.binding] = ch.namespace;
        this.env[b.binding] = ch.namespace;
      }
    } catch (e) {
      this.#registry.close();
      throw e;
    }
    this.#armAlarms();
    if (this.#replica) {
      this.#renewLeases();
      this.#pollAlarms();
    }
  }

  /** Where other workers forward requests for the objects this one holds (with forwarding on). */
  get forwardUrl(): Promise<string> | undefined {
    return this.#forwardServer?.url;
  }

  /**
   * On a store shared by workers, brings what the read-only views show up to date from the store
   * (objects other workers created or hold): the counts of `listNamespaces`, the page of
   * `listObjects` (`page`), or, with `idOrName`, the object `describeObject` and read-only
   * `querySql` read (restored from the store unless this worker holds it). Callers await it
   * before those reads; without a replica it does nothing.
   */
  async refreshViews(
    namespace?: string,
    idOrName?: string,
    page: { limit?: number; offset?: number } = {},
  ): Promise<void> {
    const r = this.#replica;
    if (!r) return;
    if (namespace === undefined) {
      const counts = await r.objects.count([...this.#classes.keys()]);
      for (const [c, n] of Object.entries(counts)) this.#viewCounts.set(c, n);
      return;
    }
    const ch = this.#classFor(namespace);
    if (idOrName === undefined) {
      const rows = await r.objects.list(ch.className, {
        limit: page.limit ?? 100,
        offset: page.offset ?? 0,
      });
      this.#viewPages.set(ch.className, rows);
      return;
    }
    const hex = this.#hexOf(ch, idOrName);
    const key = `${ch.className}/${hex}`;
    const record = await r.objects.get(ch.className, hex);
    if (!record) {
      this.#viewRecords.delete(key);
      return;
    }
    this.#viewRecords.set(key, record);
    if (ch.loaded.has(hex)) return;
    const log = await r.objects.log(ch.className, hex);
    // Loaded meanwhile: the local file is the newest.
    if (ch.loaded.has(hex) || log.length === 0) return;
    const path = this.#viewPath(ch.className, hex);
    mkdirSync(join(this.dir, ".views", ch.className), { recursive: true });
    restoreDatabase(path, log);
  }

  #viewPath(className: string, hex: string): string {
    return join(this.dir, ".views", className, `${hex}.sqlite`);
  }

  #hexOf(ch: ClassHost, idOrName: string): string {
    return /^[0-9a-f]{64}$/i.test(idOrName) ? idOrName.toLowerCase() : ch.ids.fromName(idOrName).toString();
  }

  /** The record of an object for the views: the local registry's, or the store's (with a replica). */
  #recordOf(ch: ClassHost, hex: string): ObjectRecord | undefined {
    const stored = this.#replica ? this.#viewRecords.get(`${ch.className}/${hex}`) : undefined;
    return stored ? this.#merged(ch, stored) : this.#registry.get(ch.className, hex);
  }

  /** An object as the store has it, with what only this worker's registry knows (alarm retries). */
  #merged(ch: ClassHost, stored: ReplicaObject): ObjectRecord {
    const local = this.#registry.get(ch.className, stored.id);
    return {
      className: ch.className,
      id: stored.id,
      name: stored.name ?? local?.name ?? null,
      createdAt: stored.createdAt ?? local?.createdAt ?? 0,
      lastAccess: Math.max(stored.lastAccess ?? 0, local?.lastAccess ?? 0),
      alarm: stored.alarm,
      alarmRetries: local?.alarmRetries ?? 0,
    };
  }

  #forwardedClass(className: string): ClassHost {
    const ch = this.#classes.get(className);
    if (!ch)
      throw new WorkflowError(
        "do.class_not_found",
        `${className} is not a Durable Object class of this worker`,
      );
    return ch;
  }

  /** @internal */
  log(message: string, error?: unknown): void {
    this.#log(message, error);
  }

  /** Commits and unloads every object, closes hibernated sockets (1001) and the registry. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#alarmTimer?.cancel();
    this.#renewTimer?.cancel();
    this.#alarmPoll?.cancel();
    for (const ch of this.#classes.values()) {
      for (const events of ch.acquiring.values())
        for (const e of events) e.fail(new Error("The Durable Object host is closed"));
      ch.acquiring.clear();
      for (const obj of [...ch.loaded.values()]) this.#unload(obj);
      for (const set of ch.sockets.values())
        for (const ws of set) ws.closeInternal(1001, "server closing", true);
      ch.sockets.clear();
    }
    for (const db of this.#memoryDbs.values()) db.close();
    await Promise.allSettled([...this.#releases]);
    await this.#forwardServer?.close();
    if (this.#replica) rmSync(join(this.dir, ".views"), { recursive: true, force: true });
    this.#registry.close();
  }

  // ---- operations (dashboard, CLI) ----

  /** Every bound namespace with its object counts. */
  listNamespaces(): NamespaceInfo[] {
    return [...this.#classes.values()].map((ch) => ({
      binding: ch.binding,
      className: ch.className,
      objects: this.#viewCounts.get(ch.className) ?? this.#registry.count(ch.className),
      loaded: ch.loaded.size,
    }));
  }

  /** The objects of a namespace (by binding or class name), most recently used first. */
  listObjects(
    namespace: string,
    options: { limit?: number; offset?: number } = {},
  ): (ObjectRecord & { loaded: boolean })[] {
    const ch = this.#classFor(namespace);
    const stored = this.#viewPages.get(ch.className);
    if (stored) {
      // From the store (refreshViews): every worker's objects.
      return stored.map((o) => ({ ...this.#merged(ch, o), loaded: ch.loaded.has(o.id) }));
    }
    return this.#registry.list(ch.className, options).map((r) => ({ ...r, loaded: ch.loaded.has(r.id) }));
  }

  /**
   * One object's stored state, read-only (a separate read-only connection: only committed data),
   * `id` being 64 hex digits or a name.
   */
  describeObject(
    namespace: string,
    idOrName: string,
    options: { rows?: number } = {},
  ): ObjectDetail | undefined {
    const ch = this.#classFor(namespace);
    const hex = this.#hexOf(ch, idOrName);
    const record = this.#recordOf(ch, hex);
    if (!record) return undefined;
    const limit = options.rows ?? 50;
    return this.#readOnly(ch, hex, (db) => {
      const page = db
        .prepare(
          "SELECT (SELECT page_count FROM pragma_page_count) * (SELECT page_size FROM pragma_page_size) AS n",
        )
        .get() as { n: number };
      const kv = (
        db.prepare("SELECT key, value FROM _cf_KV ORDER BY key LIMIT ?").all(limit) as {
          key: string;
          value: Uint8Array;
        }[]
      ).map((r) => ({ key: r.key, value: safeDecode(r.value) }));
      const names = db
        .prepare(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY name",
        )
        .all() as { name: string }[];
      const tables = names.map(({ name }) => {
        const stmt = db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}" LIMIT ?`);
        stmt.setReturnArrays(true);
        const rows = stmt.all(limit) as unknown as unknown[][];
        const count = Number(
          (db.prepare(`SELECT count(*) AS n FROM "${name.replace(/"/g, '""')}"`).get() as { n: number }).n,
        );
        return { name, columns: stmt.columns().map((c) => c.name), rows, count };
      });
      return {
        ...record,
        loaded: ch.loaded.has(hex),
        sizeBytes: Number(page.n),
        webSockets: ch.sockets.get(hex)?.size ?? 0,
        kv,
        tables,
      };
    });
  }

  /**
   * Runs SQL on one object's database. Read-only unless `write` (then it runs as an event of the
   * object, through its storage, so it is serialised with the object's own events).
   */
  async querySql(
    namespace: string,
    idOrName: string,
    query: string,
    options: { write?: boolean } = {},
  ): Promise<{ columns: string[]; rows: unknown[][]; rowsWritten: number }> {
    const ch = this.#classFor(namespace);
    const id = /^[0-9a-f]{64}$/i.test(idOrName) ? ch.ids.fromString(idOrName) : ch.ids.fromName(idOrName);
    if (options.write) {
      return this.deliver(ch, id, async (obj) => {
        const cursor = obj.storage.sql.exec(query);
        const rows = [...cursor.raw()];
        return { columns: cursor.columnNames, rows, rowsWritten: cursor.rowsWritten };
      });
    }
    const hex = id.toString();
    if (!this.#recordOf(ch, hex)) throw new Error(`${ch.className}: no object ${idOrName}`);
    return this.#readOnly(ch, hex, (db) => {
      let stmt: ReturnType<DatabaseSync["prepare"]>;
      try {
        stmt = db.prepare(query);
      } catch (e) {
        throw new Error(`${(e as Error).message} (query: ${query})`);
      }
      stmt.setReturnArrays(true);
      try {
        const rows = stmt.all() as unknown as unknown[][];
        return { columns: stmt.columns().map((c) => c.name), rows, rowsWritten: 0 };
      } catch (e) {
        throw new Error(`${(e as Error).message} (query: ${query})`);
      }
    });
  }

  // ---- events ----

  /**
   * Delivers an event to an object (loading it if needed) and resolves with its outcome. Events
   * of one object start in arrival order, each when the input gate is open (no
   * `blockConcurrencyWhile` or `transaction()` running, and any running event waiting on
   * something other than storage).
   * @internal
   */
  deliver<T>(
    ch: ClassHost,
    id: DurableObjectId,
    run: (obj: LoadedObject) => Promise<T>,
    forward?: (client: ForwardClient, url: string) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("The Durable Object host is closed"));
    return new Promise<T>((resolve, reject) => {
      const client = this.#forwardClient;
      const event: QueuedEvent = {
        start: (obj) => {
          obj.active++;
          obj.cancelIdle();
          let p: Promise<T>;
          try {
            p = run(obj);
          } catch (e) {
            p = Promise.reject(e);
          }
          const done = () => {
            obj.active--;
            // The next event starts at once: its writes join the same implicit transaction.
            this.#startNext(obj);
            this.maybeIdle(obj);
          };
          // The output gate: the outcome leaves once the writes made before it are committed.
          p.then(
            (value) => {
              done();
              obj.storage.flush().then(() => resolve(value), reject);
            },
            (error) => {
              done();
              obj.storage.flush().then(() => reject(error), reject);
            },
          );
        },
        fail: reject,
      };
      if (forward && client)
        event.forward = (url) => {
          forward(client, url).then(resolve, (e) => {
            if (!(e instanceof OwnerUnreachable)) return reject(e);
            // Nothing was delivered: wait here for the other worker's lease to run out.
            ch.remote.delete(id.toString());
            this.#log(`${ch.className} ${id}: ${e.message}; waiting for its lease to run out`);
            delete event.forward;
            this.#enqueue(ch, id, event);
          });
        };
      this.#enqueue(ch, id, event);
    });
  }

  /** Starts the next queued event right after one finished (at most 64 in a row per turn). */
  #startNext(obj: LoadedObject): void {
    if (obj.gone || obj.blocks > 0 || obj.queue.length === 0) return;
    if (obj.chained >= 64) {
      this.schedulePump(obj);
      return;
    }
    if (obj.chained++ === 0) setImmediate(() => (obj.chained = 0));
    obj.queue.shift()!.start(obj);
    if (obj.queue.length > 0) this.schedulePump(obj);
  }

  #enqueue(ch: ClassHost, id: DurableObjectId, event: QueuedEvent): void {
    if (this.#replica && !ch.loaded.has(id.toString())) {
      const hex = id.toString();
      const remote = event.forward ? ch.remote.get(hex) : undefined;
      if (remote) {
        if (remote.until > this.#clock.now()) {
          event.forward!(remote.url);
          return;
        }
        ch.remote.delete(hex);
      }
      const waiting = ch.acquiring.get(hex);
      if (waiting) waiting.push(event);
      else {
        ch.acquiring.set(hex, [event]);
        void this.#acquire(ch, id);
      }
      return;
    }
    let obj: LoadedObject;
    try {
      obj = this.#load(ch, id);
    } catch (e) {
      event.fail(e);
      return;
    }
    obj.queue.push(event);
    obj.cancelIdle();
    this.schedulePump(obj);
  }

  /** @internal */
  schedulePump(obj: LoadedObject): void {
    if (obj.pumpScheduled || obj.gone) return;
    obj.pumpScheduled = true;
    // A macrotask: any event still running now is waiting on something other than storage
    // (storage calls settle within the same turn), so the input gate is open.
    setImmediate(() => {
      obj.pumpScheduled = false;
      if (obj.gone || obj.blocks > 0) return;
      const next = obj.queue.shift();
      if (!next) return;
      next.start(obj);
      if (obj.queue.length > 0) this.schedulePump(obj);
    });
  }

  /**
   * Takes an object (replica): its lease, then its database restored from what was shipped, then
   * loads it with the events that came meanwhile. While another worker's lease runs, waits for it
   * to run out (that worker may be gone); a worker that keeps renewing it holds it, and the events
   * fail with `do.owned_elsewhere` after twice the lease.
   */
  async #acquire(ch: ClassHost, id: DurableObjectId): Promise<void> {
    const r = this.#replica!;
    const hex = id.toString();
    const deadline = this.#clock.now() + 2 * r.leaseMs;
    let obj: LoadedObject | undefined;
    let error: unknown;
    try {
      const url = await this.#forwardServer?.url.catch((e) => {
        this.#log("listening for forwarded Durable Object requests failed; they wait for leases instead", e);
        return undefined;
      });
      for (;;) {
        const now = this.#clock.now();
        const got = await r.objects.acquire({
          className: ch.className,
          id: hex,
          owner: r.owner,
          now,
          leaseMs: r.leaseMs,
          ...(url ? { url } : {}),
          ...(id.name !== undefined ? { name: id.name } : {}),
        });
        if (this.#closed) throw new Error("The Durable Object host is closed");
        if (got.acquired) {
          ch.remote.delete(hex);
          mkdirSync(join(this.dir, ch.className), { recursive: true });
          restoreDatabase(join(this.dir, ch.className, `${hex}.sqlite`), got.log);
          if (got.alarm === null) this.#registry.clearAlarm(ch.className, hex);
          else this.#registry.setAlarm(ch.className, hex, got.alarm, now);
          obj = this.#load(ch, id);
          obj.epoch = got.epoch;
          obj.seq = got.log.at(-1)?.seq ?? 0;
          if (got.alarm !== null) this.#alarmSet(got.alarm);
          break;
        }
        if (got.ownerUrl && this.#forwardClient && got.owner !== r.owner) {
          // Forwarded: RPC and fetch go to the holder; other events (none from stubs) keep waiting.
          ch.remote.delete(hex);
          ch.remote.set(hex, { url: got.ownerUrl, until: Math.min(got.leaseUntil, now + r.leaseMs) });
          // The oldest addresses go first: at most REMOTE_ADDRESSES kept per class.
          if (ch.remote.size > REMOTE_ADDRESSES) ch.remote.delete(ch.remote.keys().next().value!);
          const waiting = ch.acquiring.get(hex) ?? [];
          const forwarded = waiting.filter((e) => e.forward);
          if (forwarded.length > 0) {
            ch.acquiring.set(
              hex,
              waiting.filter((e) => !e.forward),
            );
            for (const e of forwarded) e.forward!(got.ownerUrl);
          }
          if ((ch.acquiring.get(hex)?.length ?? 0) === 0) break;
        }
        if (now >= deadline)
          throw new WorkflowError(
            "do.owned_elsewhere",
            `${ch.className} ${hex} is held by worker ${got.owner} (its lease runs until ${new Date(got.leaseUntil).toISOString()}) and this request could not be forwarded to it`,
          );
        const wait = Math.min(Math.max(got.leaseUntil - now + 1, 10), deadline - now + 1, 500);
        await new Promise<void>((resolve) => this.#clock.setTimer(resolve, wait));
      }
    } catch (e) {
      error = e;
    }
    const events = ch.acquiring.get(hex) ?? [];
    ch.acquiring.delete(hex);
    if (!obj) {
      for (const e of events) e.fail(error);
      return;
    }
    obj.queue.push(...events);
    obj.cancelIdle();
    this.schedulePump(obj);
  }

  /** Ships one commit of `obj`, fenced by its lease. */
  async #ship(obj: LoadedObject, entry: ReplicatedEntry): Promise<void> {
    const r = this.#replica!;
    const seq = ++obj.seq;
    const written = await r.objects.append({
      className: obj.ns.className,
      id: obj.hex,
      owner: r.owner,
      epoch: obj.epoch,
      entry: { seq, kind: entry.kind, bytes: entry.bytes },
      ...(entry.alarm !== undefined ? { alarm: entry.alarm } : {}),
    });
    if (!written)
      throw new WorkflowError(
        "lease.lost",
        `${obj.ns.className} ${obj.hex}: another worker took this object over; writes made here since are not kept`,
      );
  }

  /** Keeps this worker's leases (every third of a lease). */
  #renewLeases(): void {
    const r = this.#replica!;
    this.#renewTimer = this.#clock.setTimer(
      () => {
        if (this.#closed) return;
        r.objects
          .renew(r.owner, this.#clock.now() + r.leaseMs)
          .catch((e) => this.#log("renewing the leases of Durable Objects failed", e))
          .finally(() => {
            if (!this.#closed) this.#renewLeases();
          });
      },
      Math.max(1, Math.floor(r.leaseMs / 3)),
    );
  }

  /** Takes due alarms of objects no live worker holds into the registry, where they fire. */
  #pollAlarms(): void {
    const r = this.#replica!;
    this.#alarmPoll = this.#clock.setTimer(() => {
      if (this.#closed) return;
      r.objects
        .dueAlarms(r.owner, this.#clock.now(), 100)
        .then((due) => {
          if (this.#closed) return;
          for (const a of due) {
            if (!this.#classes.has(a.className)) continue;
            if (this.#registry.getAlarm(a.className, a.id)?.time === a.time) continue;
            this.#registry.setAlarm(a.className, a.id, a.time, this.#clock.now());
            this.#alarmSet(a.time);
          }
        })
        .catch((e) => this.#log("looking for due alarms of Durable Objects failed", e))
        .finally(() => {
          if (!this.#closed) this.#pollAlarms();
        });
    }, r.alarmPollMs);
  }

  #load(ch: ClassHost, id: DurableObjectId): LoadedObject {
    const hex = id.toString();
    const existing = ch.loaded.get(hex);
    if (existing) return existing;
    const obj = new LoadedObject(ch, id);
    obj.storage = new ObjectStorage({
      ...(this.#replica ? { replicate: (entry: ReplicatedEntry) => this.#ship(obj, entry) } : {}),
      db: () => this.#openDb(ch.className, hex),
      alarms: {
        get: () => this.#registry.getAlarm(ch.className, hex)?.time ?? null,
        set: (time) => {
          this.#registry.setAlarm(ch.className, hex, time, this.#clock.now());
          this.#alarmSet(time);
        },
        delete: () => this.#registry.clearAlarm(ch.className, hex),
      },
      gate: (fn) => obj.closeInputGate(fn),
      onCommitError: (e) => this.reset(obj, e),
    });
    obj.ctx = new DurableObjectState(id, obj.storage, obj);
    this.#registry.touch(ch.className, hex, id.name, this.#clock.now());
    ch.loaded.set(hex, obj);
    try {
      obj.instance = new ch.cls(obj.ctx, this.env) as Record<string, any>;
    } catch (e) {
      ch.loaded.delete(hex);
      obj.gone = true;
      this.#closeStorage(obj);
      throw e;
    }
    return obj;
  }

  #openDb(className: string, hex: string): DatabaseSync {
    if (this.#memory) {
      const key = `${className}/${hex}`;
      let db = this.#memoryDbs.get(key);
      if (!db) this.#memoryDbs.set(key, (db = new (sqlite().DatabaseSync)(":memory:")));
      return db;
    }
    const dir = join(this.dir, className);
    mkdirSync(dir, { recursive: true });
    const db = new (sqlite().DatabaseSync)(join(dir, `${hex}.sqlite`));
    db.exec(
      `PRAGMA journal_mode = WAL; PRAGMA synchronous = ${this.#synchronous}; PRAGMA foreign_keys = ON;`,
    );
    return db;
  }

  #readOnly<T>(ch: ClassHost, hex: string, fn: (db: DatabaseSync) => T): T {
    if (this.#memory) {
      const db = this.#memoryDbs.get(`${ch.className}/${hex}`);
      if (!db) throw new Error(`${ch.className}: object ${hex} has no storage yet`);
      return fn(db);
    }
    // On a shared store, an object this worker does not hold is read from its copy restored from
    // the store (refreshViews), when there is one.
    const view = this.#replica && !ch.loaded.has(hex) ? this.#viewPath(ch.className, hex) : undefined;
    const path = view && existsSync(view) ? view : join(this.dir, ch.className, `${hex}.sqlite`);
    const db = new (sqlite().DatabaseSync)(path, { readOnly: true });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  /** @internal Arms the idle timer when the object has nothing to do. */
  maybeIdle(obj: LoadedObject): void {
    if (obj.gone || this.#closed || this.#memory) return;
    if (obj.active > 0 || obj.queue.length > 0 || obj.waits > 0 || obj.pins > 0 || obj.blocks > 0) return;
    if (obj.idleTimer) return;
    obj.idleTimer = this.#clock.setTimer(() => {
      obj.idleTimer = undefined;
      if (obj.active === 0 && obj.queue.length === 0 && obj.waits === 0 && obj.pins === 0 && obj.blocks === 0)
        this.#unload(obj);
    }, this.#idleMs);
  }

  #unload(obj: LoadedObject): void {
    if (obj.gone) return;
    obj.gone = true;
    obj.cancelIdle();
    obj.ns.loaded.delete(obj.hex);
    try {
      obj.storage.commitNow();
    } catch (e) {
      this.#log(`${obj.ns.className} ${obj.hex}: committing at unload failed`, e);
    }
    const shipped = this.#replica ? obj.storage.shipped() : undefined;
    this.#closeStorage(obj);
    if (!this.#closed) this.#registry.touch(obj.ns.className, obj.hex, obj.id.name, this.#clock.now());
    for (const e of obj.queue.splice(0)) e.fail(new Error("The Durable Object host is closed"));
    // Hibernated WebSockets keep the object here (their next message loads it again), so it stays
    // this worker's until they close or the host does.
    if (shipped && (this.#closed || !obj.ns.sockets.get(obj.hex)?.size)) {
      // Once its last commit is shipped, any worker may take it.
      const r = this.#replica!;
      const release: Promise<void> = shipped
        .then(() => r.objects.release(obj.ns.className, obj.hex, r.owner, obj.epoch))
        .catch((e) => this.#log(`${obj.ns.className} ${obj.hex}: releasing its lease failed`, e))
        .finally(() => this.#releases.delete(release));
      this.#releases.add(release);
    }
  }

  #closeStorage(obj: LoadedObject): void {
    if (this.#memory) return;
    try {
      obj.storage.close();
    } catch (e) {
      this.#log(`${obj.ns.className} ${obj.hex}: closing storage failed`, e);
    }
  }

  /**
   * Resets an object after a failure it cannot go on from (a failed commit, a throwing
   * `blockConcurrencyWhile`, `ctx.abort()`): uncommitted writes are dropped, the instance is
   * discarded, and events still queued go to a fresh instance.
   * @internal
   */
  reset(obj: LoadedObject, reason: unknown): void {
    if (obj.gone) return;
    this.#log(`${obj.ns.className} ${obj.hex}: the object was reset`, reason);
    obj.gone = true;
    obj.cancelIdle();
    obj.ns.loaded.delete(obj.hex);
    const queued = obj.queue.splice(0);
    try {
      if (this.#memory) obj.storage.rollback();
      else obj.storage.discard();
    } catch {
      // The database may be unusable; dropping it is the point.
    }
    for (const e of queued) this.#enqueue(obj.ns, obj.id, e);
  }

  // ---- RPC and fetch ----

  /** @internal */
  rpc(
    ch: ClassHost,
    id: DurableObjectId,
    method: string,
    args: unknown[],
    forwardable = true,
  ): Promise<unknown> {
    let copy: unknown[];
    try {
      copy = cloneMessage(args, `the arguments of ${method}()`) as unknown[];
    } catch (e) {
      return Promise.reject(e);
    }
    const forward = forwardable
      ? (client: ForwardClient, url: string) => client.rpc(url, ch.className, id.toString(), method, copy)
      : undefined;
    return this.deliver(
      ch,
      id,
      async (obj) => {
        const fn = findMethod(obj.instance, method);
        if (!fn) throw new TypeError(`The RPC receiver does not implement the method "${method}".`);
        let result: unknown;
        try {
          result = await fn.apply(obj.instance, copy);
        } catch (e) {
          throw remoteError(e);
        }
        return cloneMessage(result, `the result of ${method}()`);
      },
      forward,
    );
  }

  /** @internal */
  fetch(
    ch: ClassHost,
    id: DurableObjectId,
    input: Request | string | URL,
    init?: RequestInit,
    forwardable = true,
  ): Promise<Response> {
    let request: Request;
    try {
      request = input instanceof Request && init === undefined ? input : new Request(input, init);
    } catch (e) {
      return Promise.reject(e);
    }
    // The forwarded copy reads the body; the request stays whole for a local delivery after all.
    const forward = forwardable
      ? (client: ForwardClient, url: string) =>
          client.fetch(url, ch.className, id.toString(), request.clone())
      : undefined;
    return this.deliver(
      ch,
      id,
      async (obj) => {
        if (typeof obj.instance.fetch !== "function")
          throw new TypeError("Handler does not export a fetch() function.");
        let response: unknown;
        try {
          response = await obj.instance.fetch(request);
        } catch (e) {
          throw remoteError(e);
        }
        if (!(response instanceof Response))
          throw new TypeError(`${ch.className}.fetch() did not return a Response`);
        const client = responseWebSocket(response);
        if (client) this.#adoptSocket(obj, client.peer);
        return response;
      },
      forward,
    );
  }

  /** The server end of a socket an object returned: gate its sends; keep the object while a plain one is open. */
  #adoptSocket(obj: LoadedObject, server: WebSocket): void {
    if (server.owner) return;
    server.gate = () => (obj.storage.dirty && !obj.gone ? obj.storage.flush() : undefined);
    if (!server.accepted || server.readyState === 3) return;
    obj.pins++;
    obj.cancelIdle();
    server.addEventListener("close", () => {
      obj.pins--;
      this.maybeIdle(obj);
    });
  }

  /** @internal The owner of an object's hibernatable sockets: turns their traffic into events. */
  socketOwner(ch: ClassHost, hex: string): SocketOwner {
    const id = ch.ids.fromString(hex);
    const event = (what: string, run: (obj: LoadedObject) => unknown) => {
      if (this.#closed) return;
      this.deliver(ch, id, async (obj) => {
        await run(obj);
      }).catch((e) => this.#log(`${ch.className} ${hex}: ${what} threw`, e));
    };
    return {
      message: (ws: WebSocket, data: WebSocketData) => {
        const auto = ch.autoResponses.get(hex);
        if (auto && data === auto.request) {
          ws.autoResponseAt = new Date(this.#clock.now());
          ws.send(auto.response);
          return;
        }
        event("webSocketMessage", (obj) => obj.instance.webSocketMessage?.(ws, data));
      },
      close: (ws, code, reason, wasClean) => {
        event("webSocketClose", async (obj) => {
          try {
            await obj.instance.webSocketClose?.(ws, code, reason, wasClean);
          } finally {
            ch.dropSocket(hex, ws);
          }
        });
      },
      error: (ws, error) => event("webSocketError", (obj) => obj.instance.webSocketError?.(ws, error)),
      outputGate: () => {
        const obj = ch.loaded.get(hex);
        return obj?.storage.dirty ? obj.storage.flush() : undefined;
      },
    };
  }

  // ---- alarms ----

  #alarmSet(time: number): void {
    if (this.#closed) return;
    if (this.#alarmArmedAt === undefined || time < this.#alarmArmedAt) this.#armAlarms();
  }

  #armAlarms(): void {
    if (this.#closed) return;
    this.#alarmTimer?.cancel();
    this.#alarmTimer = undefined;
    this.#alarmArmedAt = undefined;
    const now = this.#clock.now();
    let next: number | null;
    if (this.#alarmsRunning.size === 0 && this.#alarmsUnbound.size === 0) next = this.#registry.nextAlarm();
    else {
      // Skip alarms already running (they stay stored until they finish) and those of unbound classes.
      const due = this.#registry.dueAlarms(Number.MAX_SAFE_INTEGER);
      next =
        due.find((a) => {
          const key = `${a.className}/${a.id}`;
          return !this.#alarmsRunning.has(key) && !this.#alarmsUnbound.has(key);
        })?.time ?? null;
    }
    if (next === null) return;
    this.#alarmArmedAt = next;
    this.#alarmTimer = this.#clock.setTimer(() => this.#fireAlarms(), Math.max(0, next - now));
  }

  #fireAlarms(): void {
    this.#alarmTimer = undefined;
    this.#alarmArmedAt = undefined;
    if (this.#closed) return;
    for (const due of this.#registry.dueAlarms(this.#clock.now())) {
      const key = `${due.className}/${due.id}`;
      if (this.#alarmsRunning.has(key) || this.#alarmsUnbound.has(key)) continue;
      const ch = this.#classes.get(due.className);
      if (!ch) {
        // A class not bound here: its alarm waits until a host that binds it starts.
        this.#alarmsUnbound.add(key);
        continue;
      }
      this.#alarmsRunning.add(key);
      const id = ch.ids.fromString(due.id);
      this.deliver(ch, id, async (obj) => {
        if (typeof obj.instance.alarm !== "function") {
          this.#log(
            `${ch.className} ${due.id}: an alarm is due but the class has no alarm() method; deleting it`,
          );
          obj.storage.alarmRan(due.time);
          return;
        }
        await obj.instance.alarm({ retryCount: due.retries, isRetry: due.retries > 0 });
        obj.storage.alarmRan(due.time);
      })
        .then(
          () => this.#registry.clearAlarm(ch.className, due.id, due.time),
          (e) => {
            const current = this.#registry.getAlarm(ch.className, due.id);
            if (!current || current.time !== due.time || current.retries !== due.retries) return; // re-set meanwhile
            const retries = due.retries + 1;
            if (retries > ALARM_MAX_RETRIES) {
              this.#log(`${ch.className} ${due.id}: alarm() failed ${retries} times; giving up`, e);
              this.#registry.clearAlarm(ch.className, due.id, due.time);
            } else {
              const delay = alarmRetryDelayMs(retries);
              this.#log(`${ch.className} ${due.id}: alarm() threw; retry ${retries} in ${delay} ms`, e);
              this.#registry.retryAlarm(ch.className, due.id, this.#clock.now() + delay, retries);
            }
          },
        )
        .catch((e) => this.#log(`${ch.className} ${due.id}: recording the alarm's outcome failed`, e))
        .finally(() => {
          this.#alarmsRunning.delete(key);
          this.#armAlarms();
        });
    }
    this.#armAlarms();
  }

  // ---- migrations ----

  #migrate(migrations: Migration[] | undefined): Set<string> | undefined {
    if (migrations === undefined) return undefined;
    if (!Array.isArray(migrations)) throw new TypeError("createObjectHost: migrations must be an array");
    const plan = planMigrations(migrations, this.#registry.appliedMigrations());
    for (const m of plan.pending) {
      this.#registry.applyMigration(m.tag, this.#clock.now(), () => {
        for (const a of m.actions) {
          if (a.kind === "rename") {
            this.#registry.renameClass(a.from, a.to);
            if (!this.#memory) {
              try {
                renameSync(join(this.dir, a.from), join(this.dir, a.to));
              } catch (e) {
                if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
              }
            }
          } else if (a.kind === "delete") {
            this.#registry.deleteClass(a.className);
            if (!this.#memory) rmSync(join(this.dir, a.className), { recursive: true, force: true });
          }
        }
      });
    }
    return plan.classes;
  }

  #classFor(namespace: string): ClassHost {
    const byClass = this.#classes.get(namespace);
    if (byClass) return byClass;
    for (const ch of this.#classes.values()) if (ch.binding === namespace) return ch;
    throw new Error(
      `No Durable Object namespace "${namespace}" (bindings: ${[...this.#classes.values()].map((c) => c.binding).join(", ") || "none"})`,
    );
  }
}

/** The error for a bound class no migration creates: `(do.missing_migration) <class>: …`. */
export function missingMigration(className: string, binding: string): WorkflowError {
  return new WorkflowError(
    "do.missing_migration",
    `${className}: the class of Durable Object binding ${binding} has no migration (add it to new_sqlite_classes of a migrations[] entry)`,
  );
}

/** Opens a host (see `ObjectHost`). */
export function createObjectHost(options: ObjectHostOptions): ObjectHost {
  return new ObjectHost(options);
}

/**
 * `env.MY_DO` (Cloudflare's `DurableObjectNamespace`): makes ids and stubs.
 */
export class DurableObjectNamespace {
  readonly #ch: ClassHost;

  /** @internal */
  constructor(ch: ClassHost) {
    this.#ch = ch;
  }

  /** The same name always gives the same id (in this store). */
  idFromName(name: string): DurableObjectId {
    return this.#ch.ids.fromName(name);
  }

  /** Parses `id.toString()`; throws a TypeError for anything that is not an id of this namespace. */
  idFromString(hex: string): DurableObjectId {
    return this.#ch.ids.fromString(hex);
  }

  newUniqueId(_options?: { jurisdiction?: string }): DurableObjectId {
    return this.#ch.ids.unique();
  }

  /** A stub for `id` (nothing is loaded until it is used). */
  get(id: DurableObjectId, _options?: { locationHint?: string; routingMode?: string }): DurableObjectStub {
    if (!id || typeof (id as { toString?: unknown }).toString !== "function")
      throw new TypeError(
        "get: the argument must be a DurableObjectId (from idFromName, idFromString or newUniqueId)",
      );
    const checked = this.#ch.ids.fromString(id.toString(), id.name);
    return makeStub(this.#ch, checked);
  }

  /** `get(idFromName(name))`. */
  getByName(name: string, options?: { locationHint?: string; routingMode?: string }): DurableObjectStub {
    return this.get(this.idFromName(name), options);
  }

  /** Jurisdictions do not apply to a single store: returns this namespace. */
  jurisdiction(_jurisdiction: string): DurableObjectNamespace {
    return this;
  }
}

/**
 * A stub: `fetch(request)` and every public method of the object's class, called by RPC
 * (arguments and results structured-cloned, at most 32 MiB; errors rethrown with their name and
 * message). Promise pipelining and passing functions or stubs are not supported.
 */
export type DurableObjectStub<T = Record<string, (...args: any[]) => any>> = {
  readonly id: DurableObjectId;
  readonly name?: string;
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
} & {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

function makeStub(ch: ClassHost, id: DurableObjectId): DurableObjectStub {
  const host = ch.host;
  const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const fetch = (input: Request | string | URL, init?: RequestInit) => host.fetch(ch, id, input, init);
  const target = { id, name: id.name, fetch };
  return new Proxy(target, {
    get(_t, prop) {
      if (prop === "id") return id;
      if (prop === "name") return id.name;
      if (prop === "fetch") return fetch;
      if (typeof prop !== "string" || prop === "then") return undefined;
      if (prop === "connect")
        return () => {
          throw new Error("connect() (TCP sockets to a Durable Object) is not supported by Cairn");
        };
      let m = methods.get(prop);
      if (!m) methods.set(prop, (m = (...args: unknown[]) => host.rpc(ch, id, prop, args)));
      return m;
    },
    has: (_t, prop) => prop === "id" || prop === "fetch" || prop === "name",
    set: () => false,
    ownKeys: () => Reflect.ownKeys(target),
    getOwnPropertyDescriptor: (t, p) => Reflect.getOwnPropertyDescriptor(t, p),
  }) as unknown as DurableObjectStub;
}

/** A method callable by RPC: defined on the class (not `Object.prototype`), not the constructor. */
function findMethod(instance: object, name: string): Function | undefined {
  if (name === "constructor") return undefined;
  for (let p = Object.getPrototypeOf(instance); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    const d = Object.getOwnPropertyDescriptor(p, name);
    if (d) return typeof d.value === "function" ? d.value : undefined;
  }
  return undefined;
}

/** Structured-clones an RPC message, with Cairn's size limit and a clear error. */
function cloneMessage(value: unknown, what: string): unknown {
  let bytes: Buffer;
  try {
    bytes = serialize(value);
  } catch (e) {
    throw new DOMException(`Could not serialize ${what}: ${(e as Error).message}`, "DataCloneError");
  }
  if (bytes.length > MAX_MESSAGE_BYTES)
    throw new RangeError(
      `${what} is ${bytes.length} bytes; an RPC message may be at most ${MAX_MESSAGE_BYTES} bytes`,
    );
  return deserialize(bytes);
}

function safeDecode(bytes: Uint8Array): unknown {
  try {
    return deserialize(bytes);
  } catch {
    return "<undecodable>";
  }
}

/** Type guard re-exported for hosts that load project classes. */
export { isDurableObjectClass };
