import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import type { InstanceStatus, NewHistoryEntry } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import type { Store } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";
import { projectGraphs } from "./graphs.ts";
import {
  type CloseOptions,
  type CreateApi,
  DEFAULT_HOST,
  DEFAULT_PORT,
  hostProject,
  type ServerHandle,
  type StartServer,
  serverHandle,
  until,
} from "./host.ts";
import type { LoadFailure } from "./load-error.ts";
import type { Logger } from "./logger.ts";
import { startOpenTelemetry } from "./otel.ts";
import { type LoadedProject, ProjectError } from "./project.ts";
import { type ProjectInfo, projectInfo } from "./project-info.ts";

/**
 * The project's thread caps its young generation at 48 MiB. V8 grows it to 128 MiB under a steady
 * stream of runs and keeps it committed for good: with 100,000 instances parked, the process stayed
 * at 394 MiB RSS against 252 MiB with the cap, for the same throughput (docs/benchmarks.md).
 */
const PROJECT_THREAD_LIMITS = { maxYoungGenerationSizeMb: 48 };

/** What the main thread knows of a project whose code runs in the worker thread. */
export interface ProjectSummary
  extends Pick<LoadedProject, "name" | "kind" | "dir" | "configPath" | "entry" | "storePath"> {
  workflows: {
    binding: string;
    name: string;
    className?: string;
    classOwnName?: string;
    schedules?: string | string[];
  }[];
}

/** A project served with its code in a worker thread and the API in this one. */
export interface ServedProject {
  /** e.g. "http://127.0.0.1:8787". */
  url: string;
  /** The API's Cairn: controls and reads instances; runs none (the project's thread does). */
  cairn: Cairn;
  project: ProjectSummary;
  /** What was loaded, for people (the `cairn dev` banner, `GET /api/v1/project`). */
  info: ProjectInfo;
  /** Stops serving, then the project's thread; unfinished instances continue at the next start. */
  close(options?: CloseOptions): Promise<void>;
}

export interface WorkerHostOptions {
  /** Start `@opentelemetry/sdk-node` in the project's thread, where runs make their spans (SPEC §12.4). */
  otel?: boolean;
  /** Default 8787; 0 picks a free port. */
  port?: number;
  /** Default "127.0.0.1". */
  host?: string;
  token?: string;
  /**
   * Host names requests may be addressed to besides loopback names (see `startServer`'s
   * `hostAllow`); every other `Host` is refused.
   */
  hostAllow?: string[];
  /**
   * A PostgreSQL URL or a SQLite file; default the project's `storePath`. With ":memory:" (which a
   * second thread cannot open) the project runs in this thread, as `hostProject` runs it.
   */
  store?: string;
  config?: string;
  /** The wrangler environment (`env.<name>` section) to use. */
  env?: string;
  /** Read `.dev.vars` / `.env` secrets into `env` (development). */
  secrets?: boolean;
  /**
   * `cairn dev`: failed attempts, errored instances and the user's console output as readable
   * lines (the project's thread makes its own text logger; this one serves the one-thread case).
   */
  devLogger?: Logger;
  /** `false`: run no instances (other processes sharing the store do). */
  worker?: boolean;
  startServer: StartServer;
  createApi: CreateApi;
  /**
   * Errors of the API's side (its engine, the server). Default: console.error. The project's
   * thread reports its own (the engine running the project, the fetch handler) to its console.error.
   */
  log?: (message: string, error?: unknown) => void;
  /** Called after every response with its method, path, status and duration (request logs). */
  onRequest?: (info: { method: string; path: string; status: number; ms: number }) => void;
  /**
   * Called when the project's thread dies on its own (an uncaught error in the project's code).
   * Default: log it and exit the process with code 1, as such an error would in one thread.
   */
  onCrash?: (error: unknown) => void;
}

/** Sent to the project's thread. */
export type ToThread =
  | { type: "call"; id: number; method: "beforeCreate" | "graph" | "email"; args: unknown[] }
  | {
      type: "fetch";
      request: { method: string; url: string; headers: [string, string][]; body?: ArrayBuffer };
      port: MessagePort;
    }
  | { type: "close"; timeoutMs: number };

/** Sent by the project's thread. */
export type FromThread =
  | {
      type: "ready";
      info: ProjectInfo;
      project: ProjectSummary;
      store: string;
      synchronous?: "FULL" | "NORMAL";
      /** The project's `createRatePerSecond`: creates go through the API's runtime. */
      createRatePerSecond?: number;
      fetch: boolean;
      /** The project has an `email()` handler: `POST /api/v1/email` is delivered to it here. */
      email: boolean;
      beforeCreate: boolean;
      /** The project's `limits.cpu_ms`, reported by the API. */
      cpuLimitMs?: number;
    }
  | { type: "error"; error: RemoteError }
  | { type: "in-memory" }
  | { type: "one-thread"; reason: string }
  | { type: "changed"; workflow: string; id: string; status?: InstanceStatus }
  /** What the thread's runs stored and cost (SPEC §12.3), for the metrics served from this thread. */
  | { type: "telemetry"; items: TelemetryItem[] }
  | { type: "reply"; id: number; ok: true; value: unknown }
  | { type: "reply"; id: number; ok: false; error: RemoteError }
  | { type: "closed" };

/** One telemetry call of the project's thread, replayed on the API's runtime (`Runtime.relay`). */
export type TelemetryItem =
  | { kind: "stored"; entries: NewHistoryEntry[]; createdAt?: number }
  | { kind: "ran"; workflow: string; cpuTimeMs: number; wallTimeMs: number }
  | { kind: "leaseLost"; workflow: string }
  | { kind: "storeError" }
  | { kind: "storeTransaction"; store: string; durationMs: number };

export interface RemoteError {
  name: string;
  message: string;
  code?: string;
  /** An inbound message the host refused (answered 400 by the email route). */
  refused?: boolean;
  /** When the project did not load: what failed, where (see `describeLoadError`). */
  loadFailure?: LoadFailure;
}

/** The `workerData` of the project's thread. */
export interface ThreadData {
  dir: string;
  config?: string;
  env?: string;
  secrets?: boolean;
  devLog?: boolean;
  store?: string;
  worker?: boolean;
  /** Start `@opentelemetry/sdk-node` in the thread (`cairn start --otel`). */
  otel?: boolean;
}

/** How long the project's thread may take past the close deadline before it is stopped. */
const CLOSE_GRACE_MS = 1000;

const THREAD = new URL(`./project-thread${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

function localError(e: RemoteError): Error {
  const err = e.name === "ProjectError" ? new ProjectError(e.message) : new Error(e.message);
  if (e.name !== "ProjectError") err.name = e.name;
  if (e.code) (err as Error & { code?: string }).code = e.code;
  if (e.refused) (err as Error & { refused?: boolean }).refused = true;
  if (e.loadFailure) (err as Error & { loadFailure?: LoadFailure }).loadFailure = e.loadFailure;
  return err;
}

/**
 * Serves a project like `hostProject`, with the project's code (its modules, workflow runs, fetch
 * handler and hooks) in a worker thread, so code that keeps that thread busy does not hold up the
 * HTTP API and dashboard served from this one. Each thread has its own connection to the store:
 * the API reads directly, and its creates and control commands are written directly too, the
 * worker thread being told through the store's messages (LISTEN/NOTIFY on PostgreSQL, a
 * `BroadcastChannel` for a SQLite file), as workers sharing a store are. Requests outside the API
 * and the dashboard go to the project's fetch handler in the worker thread.
 *
 * ```ts
 * import { createApi, startServer } from "@cairn/server";
 * const served = await hostProjectInWorker("./my-worker", { port: 8787, createApi, startServer });
 * await served.close({ timeoutMs: 10_000 });
 * ```
 */
export async function hostProjectInWorker(dir: string, options: WorkerHostOptions): Promise<ServedProject> {
  if (typeof options?.startServer !== "function" || typeof options.createApi !== "function")
    throw new TypeError("hostProjectInWorker needs startServer and createApi (from @cairn/server)");
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error ?? ""));
  // An in-memory database cannot be opened by a second thread: such a project runs in this one.
  const inOneThread = async () => {
    if (options.otel) await startOpenTelemetry(log);
    return oneThread();
  };
  const oneThread = () =>
    hostProject(dir, {
      ...(options.config ? { config: options.config } : {}),
      ...(options.store ? { store: options.store } : {}),
      ...(options.host ? { host: options.host } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.token ? { token: options.token } : {}),
      ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.secrets ? { secrets: true } : {}),
      ...(options.devLogger ? { devLogger: options.devLogger } : {}),
      ...(options.onRequest ? { onRequest: options.onRequest } : {}),
      ...(options.worker === false ? { cairn: { worker: false } } : {}),
      startServer: options.startServer,
      createApi: options.createApi,
      log,
    }).then((hosted) => ({
      ...hosted,
      info: projectInfo(hosted.project, options.store ?? hosted.project.storePath),
    }));
  if (options.store === ":memory:") return inOneThread();
  const data: ThreadData = {
    dir,
    ...(options.config ? { config: options.config } : {}),
    ...(options.store ? { store: options.store } : {}),
    ...(options.env ? { env: options.env } : {}),
    ...(options.secrets ? { secrets: true } : {}),
    ...(options.devLogger ? { devLog: true } : {}),
    ...(options.worker === false ? { worker: false } : {}),
    ...(options.otel ? { otel: true } : {}),
  };
  const worker = new Worker(THREAD, { workerData: data, resourceLimits: PROJECT_THREAD_LIMITS });
  let stopping = false;
  let exited = false;
  const replies = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  const streams = new Set<(error: Error) => void>();
  let nextCall = 0;
  let cairn: Cairn | undefined;
  let onClosed: (() => void) | undefined;

  const ready = new Promise<Extract<FromThread, { type: "ready" | "in-memory" | "one-thread" }>>(
    (resolve, reject) => {
      const gone = (error: Error) => {
        if (exited) return;
        exited = true;
        for (const r of replies.values()) r.reject(error);
        replies.clear();
        for (const fail of streams) fail(error);
        streams.clear();
        onClosed?.();
        reject(error);
        if (!stopping && cairn) (options.onCrash ?? defaultCrash(log))(error);
      };
      worker.on("message", (m: FromThread) => {
        if (m.type === "ready" || m.type === "in-memory" || m.type === "one-thread") resolve(m);
        else if (m.type === "error") reject(localError(m.error));
        else if (m.type === "changed") cairn?.runtime.announce(m.workflow, m.id, m.status);
        else if (m.type === "telemetry") {
          const t = cairn?.runtime.telemetry;
          if (t)
            for (const item of m.items)
              if (item.kind === "stored")
                t.stored?.(
                  item.entries,
                  item.createdAt === undefined ? undefined : { createdAt: item.createdAt },
                );
              else if (item.kind === "ran") t.ran?.(item.workflow, item.cpuTimeMs, item.wallTimeMs);
              else if (item.kind === "leaseLost") t.leaseLost?.(item.workflow);
              else if (item.kind === "storeTransaction") t.storeTransaction?.(item.store, item.durationMs);
              else t.storeError?.();
        } else if (m.type === "reply") {
          const r = replies.get(m.id);
          replies.delete(m.id);
          if (r) m.ok ? r.resolve(m.value) : r.reject(localError(m.error));
        } else if (m.type === "closed") onClosed?.();
      });
      worker.on("error", (e) => gone(e));
      worker.on("exit", (code) => gone(new Error(`the project's thread exited (code ${code})`)));
    },
  );
  const call = (method: "beforeCreate" | "graph" | "email", args: unknown[]) =>
    new Promise<unknown>((resolve, reject) => {
      if (exited) return reject(new Error("the project's thread has stopped"));
      const id = nextCall++;
      replies.set(id, { resolve, reject });
      worker.postMessage({ type: "call", id, method, args } satisfies ToThread);
    });

  let started: Extract<FromThread, { type: "ready" | "in-memory" | "one-thread" }>;
  try {
    started = await ready;
  } catch (e) {
    stopping = true;
    await worker.terminate();
    throw e;
  }
  ready.catch(() => {});
  if (started.type === "in-memory" || started.type === "one-thread") {
    // The project's own config keeps its state in memory, or it has Durable Objects.
    stopping = true;
    await worker.terminate();
    return inOneThread();
  }

  // The API's own connection, opened once the project's thread has prepared the store.
  const postgres = /^postgres(ql)?:\/\//.test(started.store);
  let store: Store | undefined;
  let server: ServerHandle;
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  try {
    if (!postgres)
      store = await openSqliteStore({
        path: started.store,
        ...(started.synchronous ? { synchronous: started.synchronous } : {}),
        channel: true,
      });
    cairn = await createCairn({
      store: store ?? started.store,
      ...(postgres ? { poolSize: 4 } : {}),
      ...(started.createRatePerSecond !== undefined
        ? { createRatePerSecond: started.createRatePerSecond }
        : {}),
      worker: false,
      ...(started.cpuLimitMs !== undefined ? { cpuLimitMs: started.cpuLimitMs } : {}),
      workflows: started.project.workflows.map((w) => ({
        binding: w.binding,
        name: w.name,
        class: standIn(w.classOwnName ?? w.className ?? w.name),
        // Known here for `GET /workflows/:name`; only the project's thread fires them.
        ...(w.schedules !== undefined ? { schedules: w.schedules } : {}),
      })),
      ...(started.beforeCreate
        ? { hooks: { beforeCreate: async (info) => void (await call("beforeCreate", [info])) } }
        : {}),
      log: (message, error) => log(message, error),
    });
    // Diagrams: the entry is bundled and analysed here (code is read, never run), once, at the first
    // request for a graph; a workflow the bundle does not show is asked of the project's thread,
    // which falls back to the class's own source.
    let graphs: ReturnType<typeof projectGraphs> | undefined;
    const summary = started.project;
    const info = started.info;
    const graph = async (workflow: string) =>
      (await (graphs ??= projectGraphs(summary, log))).get(workflow) ?? call("graph", [workflow]);
    const app = options.createApi({
      runtime: cairn.runtime,
      graph,
      project: () => info,
      ...(started.email
        ? {
            deliverEmail: async (raw: Uint8Array, envelope: { from?: string; to?: string }) =>
              (await call("email", [raw, envelope])) as { rejected: string | undefined },
          }
        : {}),
      ...(options.token ? { token: options.token } : {}),
    });
    server = serverHandle(
      await options.startServer({
        app,
        host,
        port,
        ...(options.token ? { token: options.token } : {}),
        ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
        ...(options.onRequest ? { onRequest: options.onRequest } : {}),
        ...(started.fetch ? { fetch: (request: Request) => forward(worker, request, streams) } : {}),
      }),
      host,
      port,
    );
  } catch (e) {
    stopping = true;
    await worker.terminate();
    await cairn?.close();
    await store?.close();
    throw e;
  }

  let closing: Promise<void> | undefined;
  const close = (closeOptions: CloseOptions = {}) =>
    (closing ??= (async () => {
      const timeoutMs = Math.max(0, closeOptions.timeoutMs ?? 0);
      const deadline = Date.now() + timeoutMs;
      await Promise.race([server.close().catch((e) => log("closing the server failed", e)), until(deadline)]);
      stopping = true;
      if (!exited) {
        const closed = new Promise<void>((r) => (onClosed = r));
        worker.postMessage({
          type: "close",
          timeoutMs: Math.max(0, deadline - Date.now()),
        } satisfies ToThread);
        // A thread still busy in the project's code past the deadline is stopped where it is.
        await Promise.race([closed, until(deadline + CLOSE_GRACE_MS)]);
        await worker.terminate();
      }
      await cairn!.close();
      await store?.close();
    })());
  return { url: server.url, cairn, project: started.project, info: started.info, close };
}

/** A class named like the project's, standing in for it on the API's side (it never runs there). */
function standIn(name: string) {
  const cls = class {
    run(): never {
      throw new Error("this workflow runs in the project's thread");
    }
  };
  Object.defineProperty(cls, "name", { value: name });
  return cls as never;
}

function defaultCrash(log: (message: string, error?: unknown) => void) {
  return (error: unknown) => {
    log("Cairn: the project's thread stopped on an uncaught error; exiting", error);
    process.exit(1);
  };
}

/** Sends a request to the project's fetch handler in its thread; the response body streams back. */
async function forward(
  worker: Worker,
  request: Request,
  streams: Set<(error: Error) => void>,
): Promise<Response> {
  const body =
    request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer();
  const { port1, port2 } = new MessageChannel();
  return new Promise<Response>((resolve, reject) => {
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    let answered = false;
    const done = () => {
      streams.delete(fail);
      port1.close();
    };
    const fail = (error: Error) => {
      done();
      if (!answered) reject(error);
      else controller?.error(error);
    };
    streams.add(fail);
    port1.on("message", (m: any) => {
      if (m.type === "head") {
        answered = true;
        const stream = m.body
          ? new ReadableStream<Uint8Array>({
              start: (c) => void (controller = c),
              cancel: () => {
                port1.postMessage({ type: "cancel" });
                done();
              },
            })
          : null;
        resolve(new Response(stream, { status: m.status, statusText: m.statusText, headers: m.headers }));
      } else if (m.type === "chunk") controller?.enqueue(m.chunk);
      else if (m.type === "end") {
        controller?.close();
        done();
      } else if (m.type === "error") fail(localError(m.error));
    });
    worker.postMessage(
      {
        type: "fetch",
        request: {
          method: request.method,
          url: request.url,
          headers: [...request.headers],
          ...(body ? { body } : {}),
        },
        port: port2,
      } satisfies ToThread,
      [port2, ...(body ? [body] : [])],
    );
  });
}
