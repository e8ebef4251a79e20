import type { Clock, Duration, Workflow, WorkflowClass } from "@cairn/core";
import { Runtime, type RuntimeHooks } from "@cairn/runtime";
import type { Store } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";

/** One entry of `workflows`, shaped like wrangler's `workflows[]`. */
export interface WorkflowConfig {
  /** The name of its binding in `env`, e.g. "CHECKOUT". */
  binding: string;
  /** The workflow's name (what the API and CLI call it). */
  name: string;
  class: WorkflowClass;
}

export interface CairnOptions {
  /**
   * Where state lives: a SQLite file path (default "./.cairn/cairn.db"), ":memory:", a PostgreSQL URL
   * (`postgres://user@host/db`, optionally `?schema=name`; default schema "cairn"), or a `Store`.
   */
  store?: string | Store;
  workflows: WorkflowConfig[];
  /** Other bindings, visible to workflows as `this.env` next to the workflow bindings. */
  env?: Record<string, unknown>;
  maxConcurrent?: number;
  defaultRetryDelay?: Duration;
  hotWaitThreshold?: Duration;
  stepLimit?: number;
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
  hooks?: RuntimeHooks;
  log?: (message: string, error: unknown) => void;
}

/** A running Cairn: the bindings, the runtime, and the store. */
export interface Cairn<Env = Record<string, unknown>> {
  /** The workflow bindings plus `options.env`. */
  readonly env: Env & Record<string, Workflow<any> | unknown>;
  readonly runtime: Runtime;
  readonly store: Store;
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
  if (!Array.isArray(options.workflows))
    throw new TypeError("createCairn: workflows must be an array of { binding, name, class }");
  const bindings = new Set<string>();
  for (const w of options.workflows) {
    if (typeof w?.binding !== "string" || w.binding === "")
      throw new TypeError(`createCairn: workflow "${w?.name}" needs a binding name`);
    if (bindings.has(w.binding)) throw new TypeError(`createCairn: binding "${w.binding}" is used twice`);
    bindings.add(w.binding);
  }
  const store = await openStore(
    options.store ?? DEFAULT_STORE_PATH,
    options.synchronous,
    options.poolSize,
    options.log,
  );
  let runtime: Runtime;
  try {
    runtime = new Runtime({
      store,
      workflows: options.workflows.map((w) => ({ name: w.name, binding: w.binding, class: w.class })),
      env: options.env,
      clock: options.clock,
      maxConcurrent: options.maxConcurrent,
      defaultRetryDelay: options.defaultRetryDelay,
      hotWaitThreshold: options.hotWaitThreshold,
      stepLimit: options.stepLimit,
      worker: options.worker,
      leaseMs: options.leaseMs,
      pollMs: options.pollMs,
      workerId: options.workerId,
      hooks: options.hooks,
      log: options.log,
    });
    await runtime.start();
  } catch (e) {
    if (typeof options.store !== "object") await store.close();
    throw e;
  }
  const ownsStore = typeof options.store !== "object";
  const close = async () => {
    await runtime.close();
    if (ownsStore) await store.close();
  };
  return {
    env: runtime.env as Cairn<Env>["env"],
    runtime,
    store,
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function openStore(
  store: string | Store,
  synchronous?: "FULL" | "NORMAL",
  poolSize?: number,
  log?: (message: string, error: unknown) => void,
): Promise<Store> {
  if (typeof store === "object") return store;
  if (typeof store !== "string")
    throw new TypeError('createCairn: store must be a SQLite path, ":memory:" or a Store');
  if (/^postgres(ql)?:\/\//.test(store)) {
    const { openPostgresStore } = await import("@cairn/store-postgres");
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
  return openSqliteStore({ path: store, synchronous });
}
