import { randomBytes, randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import {
  type Clock,
  type Duration,
  parseStoreLocation,
  type StoreLocation,
  type Workflow,
  type WorkflowClass,
} from "@cairn/core";
import {
  checkForwardOptions,
  createObjectHost,
  type DurableObjectClass,
  FORWARD_SECRET_NAME,
  type Migration,
  type ObjectHost,
  planMigrations,
} from "@cairn/objects";
import {
  Runtime,
  type RuntimeHooks,
  type ScheduledHandler,
  type Telemetry,
  type WorkflowDefinition,
} from "@cairn/runtime";
import type { Store } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";

/** One entry of `workflows`, shaped like wrangler's `workflows[]`. */
export interface WorkflowConfig {
  /** The name of its binding in `env`, e.g. "CHECKOUT". */
  binding: string;
  /** The workflow's name (what the API and CLI call it). */
  name: string;
  class: WorkflowClass;
  /**
   * Cron expressions (wrangler's `workflows[].schedules`): each slot creates one instance with
   * `event.schedule = { cron, scheduledTime }` (docs/schedules). UTC, 5 fields.
   */
  schedules?: string | string[];
  /** `step.do` calls allowed per instance (wrangler's `workflows[].limits.steps`); default `stepLimit`. */
  stepLimit?: number;
  /** Told of each run (see `WorkflowDefinition.onRun`): remote workflows (`RemoteWorkers`) use it. */
  onRun?: WorkflowDefinition["onRun"];
}

/** One entry of `objects`: a Durable Object class and its binding (wrangler's `durable_objects.bindings[]`). */
export interface ObjectConfig {
  /** The name of its namespace in `env`, e.g. "COUNTER". */
  binding: string;
  class: DurableObjectClass;
  /** The name its objects are stored under (wrangler's `class_name`). Default: the class's name. */
  className?: string;
}

export interface CairnOptions {
  /**
   * Where state lives: a SQLite file path (default "./.cairn/cairn.db"), ":memory:", a PostgreSQL URL
   * (`postgres://user@host/db`, optionally `?schema=name`; default schema "cairn"), or a `Store`.
   */
  store?: string | Store;
  workflows?: WorkflowConfig[];
  /** Durable Object classes, each a namespace in `env` (see docs/objects.md). */
  objects?: ObjectConfig[];
  /**
   * Where Durable Objects keep their SQLite files: default `<store's directory>/do` for a SQLite
   * store, ":memory:" for an in-memory store, "./.cairn/do" for PostgreSQL.
   */
  objectsDir?: string;
  /** Wrangler's `migrations[]`: when given, every bound class must be created by one. */
  migrations?: Migration[];
  /** How long an idle Durable Object stays loaded (ms). Default 10,000. */
  objectIdleTimeoutMs?: number;
  /**
   * On PostgreSQL: how long this worker's hold on a Durable Object lasts without renewal (ms); when
   * it dies, another worker takes its objects over after this. Default 10,000.
   */
  objectLeaseMs?: number;
  /**
   * On PostgreSQL: where this worker takes requests other workers forward to the Durable Objects it
   * holds (SPEC §13.7). Default: a free port on 127.0.0.1, which reaches workers on the same
   * machine; workers on several machines need a `host` the others can reach (or an `advertise`
   * URL). The requests carry a secret all workers share, kept in the store. `false`: requests for
   * an object another worker holds wait for it to let the object go.
   */
  objectForward?: false | { host?: string; port?: number; advertise?: string };
  /** Other bindings, visible to workflows as `this.env` next to the workflow bindings. */
  env?: Record<string, unknown>;
  maxConcurrent?: number;
  /** Instances this process may create per second and workflow; more get 429 `instance.rate_limited`. */
  createRatePerSecond?: number;
  defaultRetryDelay?: Duration;
  hotWaitThreshold?: Duration;
  stepLimit?: number;
  /** Observers of what runs store and cost (SPEC §12.3), from the start on. */
  telemetry?: Telemetry[];
  /** A Worker's `limits.cpu_ms`: attempts over it are marked, not stopped (SPEC §12.2). Default 30,000. */
  cpuLimitMs?: number;
  clock?: Clock;
  /** `false`: only store and control instances; run none (another process does). */
  worker?: boolean;
  /**
   * Scale-out (PostgreSQL): how long a worker's claim on an instance holds without renewal; renewed
   * every third of it. A dead worker's instances are taken over after this long. Default 30,000 ms.
   */
  leaseMs?: number;
  /** How often to look for work other processes wrote, besides notifications. Default 1000 ms. */
  pollMs?: number;
  /** This worker's identity in leases. Default: random. */
  workerId?: string;
  /**
   * PostgreSQL: connections in the pool opened for a `postgres://` store. Default 10. A server that
   * cannot be reached at start is retried (backing off up to 5 s, each retry logged) until it can.
   */
  poolSize?: number;
  /** SQLite durability: "FULL" (default) or "NORMAL". */
  synchronous?: "FULL" | "NORMAL";
  /** SQLite: the store connection's page cache in MiB (1–4096). Default 16. */
  sqliteCacheMiB?: number;
  hooks?: RuntimeHooks;
  /**
   * Wrangler's `triggers.crons` with the Worker's `scheduled(controller)` handler: each slot calls it
   * once across every worker sharing the store (docs/schedules).
   */
  triggers?: { crons: string[]; scheduled?: ScheduledHandler };
  log?: (message: string, error: unknown) => void;
}

/** A running Cairn: the bindings, the runtime, and the store. */
export interface Cairn<Env = Record<string, unknown>> {
  /** The workflow bindings plus `options.env`. */
  readonly env: Env & Record<string, Workflow<any> | unknown>;
  readonly runtime: Runtime;
  readonly store: Store;
  /** The Durable Objects host (its namespaces are in `env`). */
  readonly objects: ObjectHost;
  /** Stops work and closes the store; unfinished instances continue at the next start. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export const DEFAULT_STORE_PATH = "./.cairn/cairn.db";

/**
 * Opens a store and starts running workflows.
 *
 * ```ts
 * const cairn = await createCairn({
 *   store: "./cairn.db",
 *   workflows: [{ binding: "CHECKOUT", name: "checkout", class: Checkout }],
 * });
 * const instance = await cairn.env.CHECKOUT.create({ params: { orderId: "42" } });
 * ```
 */
export async function createCairn<Env = Record<string, unknown>>(options: CairnOptions): Promise<Cairn<Env>> {
  if (typeof options !== "object" || options === null)
    throw new TypeError("createCairn needs an options object");
  const workflows = options.workflows ?? [];
  if (!Array.isArray(workflows))
    throw new TypeError("createCairn: workflows must be an array of { binding, name, class }");
  if (options.objects !== undefined && !Array.isArray(options.objects))
    throw new TypeError("createCairn: objects must be an array of { binding, class }");
  const bindings = new Set<string>();
  for (const w of workflows) {
    if (typeof w?.binding !== "string" || w.binding === "")
      throw new TypeError(`createCairn: workflow "${w?.name}" needs a binding name`);
    if (bindings.has(w.binding)) throw new TypeError(`createCairn: binding "${w.binding}" is used twice`);
    bindings.add(w.binding);
  }
  for (const o of options.objects ?? []) {
    if (bindings.has(o?.binding)) throw new TypeError(`createCairn: binding "${o.binding}" is used twice`);
    bindings.add(o?.binding);
  }
  const storeOption = options.store ?? DEFAULT_STORE_PATH;
  const store = await openStore(
    storeOption,
    options.synchronous,
    options.poolSize,
    options.log,
    options.sqliteCacheMiB,
  );
  const workerId = options.workerId ?? `worker-${randomUUID()}`;
  let objects: ObjectHost;
  try {
    // On a store shared by workers, objects are too: owned by one worker at a time, their commits
    // shipped to the store (SPEC §13.7).
    const replica = options.objects?.length ? store.objectReplica?.() : undefined;
    // Wrangler migrations run once per store, before the namespace keys are read (a renamed class
    // keeps its key, so its ids).
    const migrations = options.migrations;
    if (migrations !== undefined && !Array.isArray(migrations))
      throw new TypeError("createCairn: migrations must be an array (wrangler's migrations[])");
    if (replica && migrations)
      await replica.migrate((applied) => planMigrations(migrations, applied).pending, Date.now());
    const forward = options.objectForward === false ? undefined : (options.objectForward ?? {});
    if (forward) checkForwardOptions(forward, "createCairn: objectForward");
    const keys = replica
      ? await replica.namespaceKeys(
          Object.fromEntries([
            ...(options.objects ?? []).map((o) => [o.className ?? o.class?.name, randomBytes(32)] as const),
            ...(forward ? [[FORWARD_SECRET_NAME, randomBytes(32)] as const] : []),
          ]),
        )
      : undefined;
    const forwardSecret = keys?.[FORWARD_SECRET_NAME];
    const namespaceKeys = keys
      ? Object.fromEntries(Object.entries(keys).filter(([name]) => name !== FORWARD_SECRET_NAME))
      : undefined;
    objects = createObjectHost({
      // Without classes nothing is stored: no files are made.
      dir: options.objectsDir ?? (options.objects?.length ? objectsDirFor(storeOption) : ":memory:"),
      objects: options.objects ?? [],
      ...(options.migrations ? { migrations: options.migrations } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.objectIdleTimeoutMs !== undefined ? { idleTimeoutMs: options.objectIdleTimeoutMs } : {}),
      ...(options.synchronous ? { synchronous: options.synchronous } : {}),
      ...(options.log ? { log: (m: string, e?: unknown) => options.log!(m, e) } : {}),
      ...(replica && namespaceKeys
        ? {
            replica: {
              objects: replica,
              owner: workerId,
              namespaceKeys,
              ...(options.objectLeaseMs !== undefined ? { leaseMs: options.objectLeaseMs } : {}),
              ...(forward && forwardSecret ? { forward: { ...forward, secret: forwardSecret } } : {}),
            },
          }
        : {}),
    });
  } catch (e) {
    if (typeof options.store !== "object") await store.close();
    throw e;
  }
  let runtime: Runtime;
  try {
    runtime = new Runtime({
      store,
      workflows: workflows.map((w) => ({
        name: w.name,
        binding: w.binding,
        class: w.class,
        ...(w.onRun ? { onRun: w.onRun } : {}),
        ...(w.schedules !== undefined ? { schedules: w.schedules } : {}),
        ...(w.stepLimit !== undefined ? { stepLimit: w.stepLimit } : {}),
      })),
      ...(options.triggers ? { triggers: options.triggers } : {}),
      env: { ...options.env, ...objects.namespaces },
      clock: options.clock,
      maxConcurrent: options.maxConcurrent,
      ...(options.createRatePerSecond !== undefined
        ? { createRatePerSecond: options.createRatePerSecond }
        : {}),
      defaultRetryDelay: options.defaultRetryDelay,
      hotWaitThreshold: options.hotWaitThreshold,
      stepLimit: options.stepLimit,
      cpuLimitMs: options.cpuLimitMs,
      ...(options.telemetry ? { telemetry: options.telemetry } : {}),
      worker: options.worker,
      leaseMs: options.leaseMs,
      pollMs: options.pollMs,
      workerId,
      hooks: options.hooks,
      log: options.log,
    });
    await runtime.start();
  } catch (e) {
    await objects.close();
    if (typeof options.store !== "object") await store.close();
    throw e;
  }
  // Durable Objects see the same bindings as workflows.
  Object.assign(objects.env, runtime.env);
  const ownsStore = typeof options.store !== "object";
  const close = async () => {
    await runtime.close();
    await objects.close();
    if (ownsStore) await store.close();
  };
  return {
    env: runtime.env as Cairn<Env>["env"],
    runtime,
    store,
    objects,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Durable Objects live next to a SQLite store, in memory with an in-memory one. */
function objectsDirFor(store: string | Store): string {
  if (typeof store !== "string" || /^postgres(ql)?:\/\//.test(store)) return join(".cairn", "do");
  if (store === ":memory:") return ":memory:";
  return join(dirname(store), "do");
}

async function openStore(
  store: string | Store,
  synchronous?: "FULL" | "NORMAL",
  poolSize?: number,
  log?: (message: string, error: unknown) => void,
  cacheSizeMiB?: number,
): Promise<Store> {
  if (typeof store === "object") return store;
  if (typeof store !== "string")
    throw new TypeError('createCairn: store must be a SQLite path, ":memory:", a postgres:// URL or a Store');
  let location: StoreLocation;
  try {
    location = parseStoreLocation(store);
  } catch (e) {
    throw new TypeError(`createCairn: ${(e as Error).message}`);
  }
  if (location.kind === "postgres") {
    const { openPostgresStore } = await loadPostgresStore();
    const url = new URL(store);
    const schema = url.searchParams.get("schema") ?? undefined;
    url.searchParams.delete("schema");
    // A database that cannot be reached yet is waited for, each retry logged.
    return openPostgresStore({
      url: url.toString(),
      schema,
      ...(poolSize ? { poolSize } : {}),
      ...(log ? { log: (message: string, error?: unknown) => log(message, error) } : {}),
    });
  }
  return openSqliteStore({
    path: store,
    synchronous,
    ...(cacheSizeMiB !== undefined ? { cacheSizeMiB } : {}),
  });
}

/** The package that holds the PostgreSQL store: loaded only when a `postgres://` store is asked for. */
export const POSTGRES_STORE_PACKAGE = "@cairn/store-postgres";

/**
 * Loads `@cairn/store-postgres` (and with it `pg`), which library users install only when they use
 * PostgreSQL. When it (or `pg`) is missing the error names the package to install.
 */
async function loadPostgresStore(): Promise<typeof import("@cairn/store-postgres")> {
  try {
    return await import("@cairn/store-postgres");
  } catch (e) {
    const error = e as NodeJS.ErrnoException;
    const missing =
      error?.code === "ERR_MODULE_NOT_FOUND" &&
      (error.message.includes(`'${POSTGRES_STORE_PACKAGE}'`) || error.message.includes("'pg'"));
    if (!missing) throw e;
    throw new Error(
      `createCairn: a postgres:// store needs the package ${POSTGRES_STORE_PACKAGE}, which is not installed; ` +
        `install it next to cairnjs: npm install ${POSTGRES_STORE_PACKAGE}`,
      { cause: e },
    );
  }
}
