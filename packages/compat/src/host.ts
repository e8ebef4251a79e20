import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  inboundEmail,
  type MailTransport,
  mailTransportFor,
  routeAgentRequest,
  sendEmailBinding,
} from "@cairn/agents";
import { parseStoreLocation } from "@cairn/core";
import { type Cairn, type CairnOptions, createCairn } from "@cairn/engine";
import {
  checkForwardOptions,
  installWorkersGlobals,
  type UpgradeListener,
  upgradeListener,
} from "@cairn/objects";
import type { RemoteWorkers, Runtime, RuntimeHooks } from "@cairn/runtime";
import { sandboxConfig, stopAllJails } from "@cairn/sandbox";
import type { WebSocket as WsSocket } from "ws";
import { ENV_SLOT, EXPORTS_SLOT } from "./cloudflare-workers.ts";
import { attributeConsole, observeAttempt, reportErroredInstances, withRunContext } from "./dev-log.ts";
import { projectGraphs } from "./graphs.ts";
import type { Logger } from "./logger.ts";
import {
  type FetchContext,
  type FetchHandler,
  type LoadedProject,
  loadProject,
  projectTriggers,
} from "./project.ts";
import { projectInfo } from "./project-info.ts";
import { trackedContext, workerExports } from "./worker-exports.ts";

/**
 * `createApi` of `@cairn/server`: the HTTP API (under /api/v1) for a runtime, requiring `token` if
 * given; `graph` answers `GET /api/v1/workflows/:name/graph` (the diagram).
 */
export type CreateApi = (options: {
  runtime: Cairn["runtime"];
  token?: string;
  graph?: (workflow: string) => unknown | Promise<unknown>;
  /** What was loaded, for `GET /api/v1/project`. */
  project?: () => unknown;
  /** The Durable Objects host, for the `/objects` routes. */
  objects?: Cairn["objects"];
  /** Inbound mail for the project's `email()` handler (`POST /api/v1/email`). */
  deliverEmail?: (
    raw: Uint8Array,
    envelope: { from: string | undefined; to: string | undefined },
  ) => Promise<{ rejected: string | undefined }>;
  /** Remote (Python) workers, for the `/workers` routes of worker protocol v1. */
  workers?: RemoteWorkers;
}) => unknown;

/** `startServer` of `@cairn/server`: serves the API app, and `fetch` for every other path. */
export type StartServer = (options: {
  app: any;
  host?: string;
  port?: number;
  token?: string;
  hostAllow?: string[];
  fetch?: (request: Request) => Response | Promise<Response>;
  onRequest?: (info: { method: string; path: string; status: number; ms: number }) => void;
  /** WebSocket upgrades (Node's `'upgrade'` listener); a server that does not know it ignores it. */
  upgrade?: UpgradeListener;
}) => unknown;

export interface HostOptions {
  /** Default 8787 (like `wrangler dev`); 0 picks a free port. */
  port?: number;
  /** Default "127.0.0.1". */
  host?: string;
  /** A bearer token the API requires. */
  token?: string;
  /**
   * Host names requests may be addressed to besides loopback names (see `startServer`'s
   * `hostAllow`); every other `Host` is refused.
   */
  hostAllow?: string[];
  /** Store path (or ":memory:"); default the project's `storePath` (`<dir>/.cairn/cairn.db`). */
  store?: string;
  /** A configuration file to use instead of looking in `dir`. */
  config?: string;
  /** The wrangler environment to use (`env.<name>`). */
  env?: string;
  /** Read `.dev.vars` / `.env` secrets into `env` (development). */
  secrets?: boolean;
  startServer: StartServer;
  createApi: CreateApi;
  /** More `createCairn` options (e.g. `defaultRetryDelay`); the project's own come first. */
  cairn?: Partial<Omit<CairnOptions, "workflows" | "store" | "objects" | "migrations">>;
  /** Where errors of the fetch handler and the engine are reported. Default: console.error. */
  log?: (message: string, error?: unknown) => void;
  /**
   * `cairn dev`: log each failed step attempt and errored instance here, and prefix the workflows'
   * console output with the instance it came from.
   */
  devLogger?: Logger;
  /** Called after every HTTP request (`cairn start` logs them at debug level). */
  onRequest?: (info: { method: string; path: string; status: number; ms: number }) => void;
}

export interface CloseOptions {
  /**
   * How long to let step callbacks already running finish (and their results be stored) before
   * closing, in ms. New attempts are held meanwhile. Default 0: close at once (they run again at
   * the next start).
   */
  timeoutMs?: number;
}

/** A project being served: the Worker's fetch handler, and the API under /api/v1, on one port. */
export interface HostedProject {
  /** e.g. "http://127.0.0.1:8787". */
  url: string;
  cairn: Cairn;
  project: LoadedProject;
  /**
   * Stops serving, then the engine; unfinished instances continue at the next start. Safe to call
   * twice.
   */
  close(options?: CloseOptions): Promise<void>;
}

export const DEFAULT_PORT = 8787;
export const DEFAULT_HOST = "127.0.0.1";

/**
 * Runs a project (see `loadProject`) with Cairn: opens its store, serves its fetch handler with `env`
 * (workflow bindings + vars) and a `ctx`, and the HTTP API under /api/v1, on one port.
 *
 * ```ts
 * import { createApi, startServer } from "@cairn/server";
 * const hosted = await hostProject("./my-worker", { port: 8787, createApi, startServer });
 * await fetch(`${hosted.url}/`, { method: "POST" });
 * await hosted.close();
 * ```
 */
export async function hostProject(dir: string, options: HostOptions): Promise<HostedProject> {
  if (typeof options?.startServer !== "function" || typeof options.createApi !== "function")
    throw new TypeError("hostProject needs startServer and createApi (from @cairn/server)");
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error ?? ""));
  // WebSocketPair and the 101-capable Response, as a Worker sees them.
  installWorkersGlobals();
  const project = await loadProject(dir, {
    ...(options.config ? { config: options.config } : {}),
    ...(options.env ? { env: options.env } : {}),
    ...(options.secrets ? { secrets: true } : {}),
  });
  const store = options.store ?? project.storePath;
  const location = parseStoreLocation(store);
  if (location.kind === "sqlite") mkdirSync(dirname(location.path), { recursive: true });

  // Sandboxes (`@cloudflare/sandbox`) keep their directories beside the store.
  process.env.CAIRN_SANDBOX_DIR ??= join(dirname(project.storePath), "sandboxes");
  const drain = new Drain();
  const userHooks = { ...options.cairn?.hooks, ...project.options.hooks };
  const devLogger = options.devLogger;
  const hooks: RuntimeHooks = {
    ...userHooks,
    wrapStep: (info, next) => {
      const attempt = () => (userHooks.wrapStep ? userHooks.wrapStep(info, next) : next());
      return drain.wrap(devLogger ? () => observeAttempt(devLogger, info, attempt) : attempt);
    },
  };
  if (devLogger) attributeConsole();
  const mail = mailOf(project, devLogger ? "dev" : "start");
  const cairn = await createCairn({
    log: (message, error) => log(message, error),
    ...objectForwardFromEnv(process.env),
    ...options.cairn,
    ...project.options,
    hooks,
    store,
    workflows: devLogger
      ? project.workflows.map((w) => ({ ...w, class: withRunContext(w.class, w.name) }))
      : project.workflows,
    objects: project.objects,
    ...(project.migrations ? { migrations: project.migrations } : {}),
    env: { ...options.cairn?.env, ...project.vars, ...mail?.bindings },
    ...triggersOf(project, log),
  });
  if (devLogger) reportErroredInstances(cairn.runtime, devLogger);
  const env = cairn.env as Record<string, unknown>;
  (globalThis as Record<symbol, unknown>)[ENV_SLOT] = env;
  const entrypoints = workerExports(
    project.module,
    () => env,
    () => trackedContext(log),
  );
  (globalThis as Record<symbol, unknown>)[EXPORTS_SLOT] = entrypoints;

  const pending = new Set<Promise<unknown>>();
  // Without a fetch handler of its own, a project with Durable Objects gets `/agents/*` routed to its agents.
  const handler = project.fetch ?? (project.objects.length > 0 ? agentsFetch : undefined);
  const served = handler ? serveFetch(handler, env, pending, log) : undefined;
  // `cairn dev`: `GET /__scheduled?cron=` calls the scheduled() handler now (wrangler's --test-scheduled).
  const fetch = devLogger && project.crons?.length ? withTestScheduled(cairn.runtime, served) : served;

  // WebSocket upgrades go through the same fetch handler; a 101 response with a webSocket is bridged.
  const sockets = new Set<WsSocket>();
  const upgrade = fetch ? upgradeListener(fetch, { connections: sockets, log }) : undefined;
  let server: ServerHandle;
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  // Diagrams: the entry is bundled and analysed once, at the first request for a graph.
  let graphs: ReturnType<typeof projectGraphs> | undefined;
  const graph = async (workflow: string) => (await (graphs ??= projectGraphs(project, log))).get(workflow);
  const deliverEmail = mail?.deliverEmail(env, pending);
  try {
    const app = options.createApi({
      runtime: cairn.runtime,
      graph,
      project: () => projectInfo(project, store),
      ...(project.objects.length ? { objects: cairn.objects } : {}),
      ...(deliverEmail ? { deliverEmail } : {}),
      ...(options.token ? { token: options.token } : {}),
    });
    server = serverHandle(
      await options.startServer({
        app,
        host,
        port,
        ...(options.token ? { token: options.token } : {}),
        ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
        ...(fetch ? { fetch } : {}),
        ...(options.onRequest ? { onRequest: options.onRequest } : {}),
        ...(upgrade ? { upgrade } : {}),
      }),
      host,
      port,
    );
  } catch (e) {
    await cairn.close();
    throw e;
  }

  let closing: Promise<void> | undefined;
  const close = (closeOptions: CloseOptions = {}) =>
    (closing ??= (async () => {
      const deadline = Date.now() + Math.max(0, closeOptions.timeoutMs ?? 0);
      // Stop taking requests, but do not wait for open connections (an SSE stream) past the deadline.
      for (const ws of sockets) ws.close(1001, "server closing");
      await Promise.race([server.close().catch((e) => log("closing the server failed", e)), until(deadline)]);
      if (closeOptions.timeoutMs) {
        drain.hold();
        await Promise.race([drain.idle().then(() => cairn.runtime.whenIdle()), until(deadline)]);
        await Promise.race([Promise.allSettled([...pending]), until(deadline)]);
      }
      // The project's sandboxes stop with it, their last process records stored (SPEC §14.6),
      // while their objects can still be reached.
      if (project.objects.length > 0)
        await (async () => stopAllJails(sandboxConfig().dir))().catch((e) =>
          log("stopping the sandboxes failed", e),
        );
      await cairn.close();
      if ((globalThis as Record<symbol, unknown>)[ENV_SLOT] === env)
        delete (globalThis as Record<symbol, unknown>)[ENV_SLOT];
      if ((globalThis as Record<symbol, unknown>)[EXPORTS_SLOT] === entrypoints)
        delete (globalThis as Record<symbol, unknown>)[EXPORTS_SLOT];
    })());
  return { url: server.url, cairn, project, close };
}

/** `createCairn`'s `triggers` option for a project with `triggers.crons` (none without). */
export function triggersOf(
  project: LoadedProject,
  log: (message: string, error?: unknown) => void,
): { triggers?: NonNullable<CairnOptions["triggers"]> } {
  const triggers = projectTriggers(project, () => trackedContext(log));
  return triggers ? { triggers } : {};
}

/**
 * `cairn dev`'s `GET /__scheduled?cron=<expr>`: calls the Worker's `scheduled()` for `cron` now,
 * claiming no slot, as `wrangler dev --test-scheduled` does; other requests go to `next`.
 */
export function withTestScheduled(
  runtime: Runtime,
  next: ((request: Request) => Promise<Response>) | undefined,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/__scheduled")
      return next ? next(request) : new Response("Not found\n", { status: 404 });
    const cron = url.searchParams.get("cron") ?? "* * * * *";
    try {
      await runtime.fireScheduled(cron);
    } catch (e) {
      return new Response(`scheduled() failed: ${(e as Error)?.message ?? String(e)}\n`, { status: 500 });
    }
    return new Response(`Ran scheduled event for cron "${cron}"\n`);
  };
}

/**
 * The project's fetch handler as the server calls it: with `env` and a `ctx` whose `waitUntil`
 * promises are kept in `pending`; a throw or a non-Response answers 500.
 */
export function serveFetch(
  handler: FetchHandler,
  env: Record<string, unknown>,
  pending: Set<Promise<unknown>>,
  log: (message: string, error?: unknown) => void,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const ctx: FetchContext = {
      waitUntil(promise) {
        const p = Promise.resolve(promise).catch((e) => log("waitUntil: a promise failed", e));
        pending.add(p);
        p.finally(() => pending.delete(p));
      },
      passThroughOnException() {},
      props: {},
    };
    try {
      const response = await handler(request, env, ctx);
      if (!(response instanceof Response)) throw new TypeError("the fetch handler did not return a Response");
      return response;
    } catch (e) {
      log(`${request.method} ${new URL(request.url).pathname}: the fetch handler threw`, e);
      return new Response(`Internal error: ${(e as Error)?.message ?? String(e)}\n`, { status: 500 });
    }
  };
}

/**
 * How `cairn start` workers on PostgreSQL forward Durable Object requests to each other (SPEC
 * §13.7), from the environment: `CAIRN_OBJECTS_FORWARD=off` turns it off;
 * `CAIRN_OBJECTS_FORWARD_LISTEN=<host>:<port>` is where to listen (default 127.0.0.1 and a free
 * port); `CAIRN_OBJECTS_FORWARD_URL` is the URL other workers reach this one at (default: the
 * address listened on).
 */
export function objectForwardFromEnv(env: Record<string, string | undefined>): {
  objectForward?: CairnOptions["objectForward"];
} {
  const mode = env.CAIRN_OBJECTS_FORWARD;
  if (mode !== undefined && mode !== "" && mode !== "on" && mode !== "off")
    throw new TypeError(`CAIRN_OBJECTS_FORWARD must be "on" or "off", not ${JSON.stringify(mode)}`);
  if (mode === "off") return { objectForward: false };
  const listen = env.CAIRN_OBJECTS_FORWARD_LISTEN;
  const advertise = env.CAIRN_OBJECTS_FORWARD_URL;
  if (!listen && !advertise) return {};
  const out: { host?: string; port?: number; advertise?: string } = {};
  if (listen) {
    const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d+)$/.exec(listen);
    if (!m || Number(m[2]) > 65535)
      throw new TypeError(
        `CAIRN_OBJECTS_FORWARD_LISTEN must be <host>:<port> (a port from 0 to 65535), e.g. 0.0.0.0:9100, not ${JSON.stringify(listen)}`,
      );
    out.host = m[1]!.replace(/^\[|\]$/g, "");
    out.port = Number(m[2]);
  }
  if (advertise) {
    const url = URL.canParse(advertise) ? new URL(advertise) : undefined;
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:"))
      throw new TypeError(
        `CAIRN_OBJECTS_FORWARD_URL must be the http:// URL other workers reach this one at, e.g. http://10.0.0.5:9100, not ${JSON.stringify(advertise)}`,
      );
    out.advertise = advertise;
  }
  checkForwardOptions(out, "CAIRN_OBJECTS_FORWARD_LISTEN or CAIRN_OBJECTS_FORWARD_URL");
  return { objectForward: out };
}

/**
 * Inbound mail for the default export's `email(message, env, ctx)` handler, when there is one: the
 * message is a `ForwardableEmailMessage` whose `reply`/`forward` go out as `.eml` files in
 * `.cairn/mail/` beside the store (`cairn dev`, or `cairn start` without `CAIRN_SMTP_URL`) or over
 * SMTP to `CAIRN_SMTP_URL` (`cairn start`). Also used by the project's thread (project-thread.ts).
 */
export function mailOf(
  project: Pick<LoadedProject, "module" | "sendEmail" | "storePath">,
  mode: "dev" | "start",
) {
  const worker = project.module.default as { email?: unknown } | undefined;
  const hasHandler = !!worker && typeof worker.email === "function";
  if (!hasHandler && !project.sendEmail?.length) return undefined;
  const transport: MailTransport = mailTransportFor({
    mode,
    mailDir: join(dirname(project.storePath), "mail"),
    smtpUrl: process.env.CAIRN_SMTP_URL,
  });
  // wrangler's `send_email` bindings send through the same transport.
  const bindings: Record<string, unknown> = {};
  for (const b of project.sendEmail ?? [])
    bindings[b.name] = sendEmailBinding(transport, {
      name: b.name,
      ...(b.destination_address !== undefined ? { destinationAddress: b.destination_address } : {}),
      ...(b.allowed_destination_addresses
        ? { allowedDestinationAddresses: b.allowed_destination_addresses }
        : {}),
    });
  const handler = hasHandler
    ? (worker!.email as (m: unknown, e: unknown, c: unknown) => unknown).bind(worker)
    : undefined;
  const deliverEmail = (env: Record<string, unknown>, pending: Set<Promise<unknown>>) =>
    handler &&
    (async (raw: Uint8Array, envelope: { from: string | undefined; to: string | undefined }) => {
      const message = await inboundEmail(raw, envelope, transport);
      const ctx = {
        waitUntil(promise: Promise<unknown>) {
          const p = Promise.resolve(promise).catch(() => {});
          pending.add(p);
          p.finally(() => pending.delete(p));
        },
        passThroughOnException() {},
        props: {},
      };
      await handler(message, env, ctx);
      return { rejected: message.rejected };
    });
  return { bindings, deliverEmail };
}

/** `cairn dev`'s fetch handler for a project without one: `routeAgentRequest`, else 404. */
const agentsFetch: FetchHandler = async (request, env) =>
  (await routeAgentRequest(request, env)) ?? new Response("Not found\n", { status: 404 });

export const until = (deadline: number) =>
  new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref());

/** Counts step callbacks in flight; once held, new attempts wait forever (the close drops them). */
export class Drain {
  #inFlight = 0;
  #held = false;
  #idle: (() => void)[] = [];

  async wrap<T>(run: () => Promise<T>): Promise<T> {
    if (this.#held) return new Promise<never>(() => {});
    this.#inFlight++;
    try {
      return await run();
    } finally {
      if (--this.#inFlight === 0) for (const f of this.#idle.splice(0)) f();
    }
  }

  hold(): void {
    this.#held = true;
  }

  idle(): Promise<void> {
    return this.#inFlight === 0 ? Promise.resolve() : new Promise((r) => this.#idle.push(r));
  }
}

export interface ServerHandle {
  url: string;
  close(): Promise<void>;
}

/** Accepts what `startServer` returns: `{ url, close }`, `{ port, close }`, or a Node `http.Server`. */
export function serverHandle(result: any, host: string, port: number): ServerHandle {
  if (!result || typeof result !== "object") throw new TypeError("startServer returned no server");
  const shownHost =
    host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  let url: string;
  if (typeof result.url === "string") url = result.url.replace(/\/$/, "");
  else {
    const address = typeof result.address === "function" ? result.address() : undefined;
    const actual = typeof result.port === "number" ? result.port : (address?.port ?? port);
    url = `http://${shownHost}:${actual}`;
  }
  const close = async () => {
    if (typeof result.close !== "function") return;
    if (typeof result.closeAllConnections === "function" || typeof result.address === "function") {
      await new Promise<void>((resolve, reject) => {
        result.close((e?: Error) =>
          e && (e as any).code !== "ERR_SERVER_NOT_RUNNING" ? reject(e) : resolve(),
        );
        result.closeIdleConnections?.();
      });
    } else await result.close();
  };
  return { url, close };
}
