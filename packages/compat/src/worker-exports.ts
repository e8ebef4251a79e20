/**
 * A Worker module's entrypoints as callers inside the Worker see them: `exports` of
 * `cloudflare:workers` (`exports.default.fetch(…)`), `SELF` of `cloudflare:test`, and the fetch
 * handler the host serves.
 */
import type { FetchContext, FetchHandler } from "./project.ts";

/** What a `Fetcher` (`exports.default`, `SELF`) offers: `fetch` like the global one. */
export interface WorkerFetcher {
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
}

/** An `ExecutionContext` whose `waitUntil` promises can be awaited (`settle`). */
export interface TrackedContext extends FetchContext {
  /** Resolves once every `waitUntil` promise (also ones added meanwhile) has settled. */
  settle(): Promise<void>;
}

/** A fresh `ExecutionContext` that keeps its `waitUntil` promises; failures go to `log`. */
export function trackedContext(
  log: (message: string, error: unknown) => void = (m, e) => console.error(m, e),
): TrackedContext {
  const pending = new Set<Promise<unknown>>();
  return {
    waitUntil(promise) {
      const p = Promise.resolve(promise).catch((e) => log("waitUntil: a promise failed", e));
      pending.add(p);
      void p.finally(() => pending.delete(p));
    },
    passThroughOnException() {},
    props: {},
    async settle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}

/** A `Request` from what `fetch` takes; a relative URL is read against `http://localhost/`. */
export function toRequest(input: Request | string | URL, init?: RequestInit): Request {
  if (input instanceof Request) return init ? new Request(input, init) : input;
  return new Request(new URL(String(input), "http://localhost/"), init);
}

/**
 * The fetch handler of a default export: an object with `fetch(request, env, ctx)`, or a class (e.g.
 * extending `WorkerEntrypoint`) whose instances, made per request with `(ctx, env)`, have `fetch(request)`.
 * `undefined` when it has neither; `shown` names the module in errors.
 */
export function fetchHandler(def: unknown, shown: string): FetchHandler | undefined {
  if (def === undefined || def === null) return undefined;
  if (typeof def === "function" && typeof def.prototype?.fetch === "function") {
    const Cls = def as new (
      ctx: FetchContext,
      env: Record<string, unknown>,
    ) => { fetch(r: Request): Response };
    return (request, env, ctx) => new Cls(ctx, env).fetch(request);
  }
  if (typeof def === "object" && "fetch" in def) {
    const f = (def as { fetch: unknown }).fetch;
    if (typeof f !== "function")
      throw new TypeError(`${shown}: the default export's fetch is not a function`);
    return f.bind(def) as FetchHandler;
  }
  return undefined;
}

/** A `Fetcher` that calls `handler` in-process with `env` and a fresh context per request. */
export function fetcherOf(
  handler: FetchHandler,
  env: () => Record<string, unknown>,
  context: () => TrackedContext = () => trackedContext(),
): WorkerFetcher {
  return {
    async fetch(input, init) {
      const ctx = context();
      const response = await handler(toRequest(input, init), env(), ctx);
      if (!(response instanceof Response)) throw new TypeError("the fetch handler did not return a Response");
      return response;
    },
  };
}

/**
 * `exports` of `cloudflare:workers` for a module: each export with a fetch handler (the default
 * object, `WorkerEntrypoint` classes) as a `Fetcher`; a `WorkerEntrypoint` class's other methods are
 * callable on it too (a new instance per call, like an RPC to it).
 */
export function workerExports(
  mod: Record<string, unknown>,
  env: () => Record<string, unknown>,
  context: () => TrackedContext = () => trackedContext(),
): Record<string, WorkerFetcher> {
  const out: Record<string, WorkerFetcher> = {};
  for (const [name, value] of Object.entries(mod)) {
    let handler: FetchHandler | undefined;
    try {
      handler = fetchHandler(value, name);
    } catch {
      handler = undefined;
    }
    const isClass = typeof value === "function" && typeof value.prototype === "object";
    if (!handler && !(isClass && name !== "default" && hasMethods(value))) continue;
    const fetcher: WorkerFetcher = handler
      ? fetcherOf(handler, env, context)
      : {
          fetch: async () => {
            throw new TypeError(`export "${name}" has no fetch handler`);
          },
        };
    out[name] = isClass
      ? withMethods(fetcher, value as new (...a: unknown[]) => object, env, context)
      : fetcher;
  }
  return out;
}

function hasMethods(cls: Function): boolean {
  return Object.getOwnPropertyNames(cls.prototype).some((k) => k !== "constructor");
}

/** Adds a class's methods to its fetcher: `exports.MyEntrypoint.greet("x")` runs `new MyEntrypoint(ctx, env).greet("x")`. */
function withMethods(
  fetcher: WorkerFetcher,
  Cls: new (...a: unknown[]) => object,
  env: () => Record<string, unknown>,
  context: () => TrackedContext,
): WorkerFetcher {
  return new Proxy(fetcher, {
    get(target, key, receiver) {
      if (key === "fetch" || typeof key === "symbol" || key === "then")
        return Reflect.get(target, key, receiver);
      const method = (Cls.prototype as Record<string, unknown>)[key];
      if (typeof method !== "function") return undefined;
      return async (...args: unknown[]) => {
        const instance = new Cls(context(), env()) as Record<string, (...a: unknown[]) => unknown>;
        return instance[key]!(...args);
      };
    },
  });
}
