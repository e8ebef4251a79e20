/**
 * The worker thread of `hostProjectInWorker`: everything that runs the project's own code lives
 * here (its modules, workflow runs, the fetch handler, hooks), with its own connection to the
 * store. The main thread serves HTTP and the API from its connection; this thread answers its
 * messages (see `ToThread` / `FromThread` in worker-host.ts).
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { type Cairn, createCairn } from "@cairn/engine";
import type { RuntimeHooks, Telemetry } from "@cairn/runtime";
import type { Store } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";
import { ENV_SLOT, EXPORTS_SLOT } from "./cloudflare-workers.ts";
import { attributeConsole, observeAttempt, reportErroredInstances, withRunContext } from "./dev-log.ts";
import { projectGraphs } from "./graphs.ts";
import { Drain, mailOf, serveFetch, triggersOf, until, withTestScheduled } from "./host.ts";
import { describeLoadError } from "./load-error.ts";
import { createLogger } from "./logger.ts";
import { startOpenTelemetry } from "./otel.ts";
import { loadProject } from "./project.ts";
import { projectInfo } from "./project-info.ts";
import { trackedContext, workerExports } from "./worker-exports.ts";
import type { FromThread, RemoteError, TelemetryItem, ThreadData, ToThread } from "./worker-host.ts";

const port = parentPort!;
const data = workerData as ThreadData;
const post = (message: FromThread) => port.postMessage(message);
/** `cairn dev`: readable lines for failed attempts, errored instances and the user's console output. */
const devLogger = data.devLog ? createLogger({ format: "text" }) : undefined;
const log = devLogger
  ? (message: string, error?: unknown) => devLogger.error({ err: error }, message)
  : (message: string, error?: unknown) => console.error(message, error ?? "");

const remoteError = (e: unknown): RemoteError => ({
  name: (e as Error)?.name ?? "Error",
  message: (e as Error)?.message ?? String(e),
  ...(typeof (e as { code?: unknown })?.code === "string" ? { code: (e as { code: string }).code } : {}),
  ...((e as { refused?: unknown })?.refused === true ? { refused: true } : {}),
});

async function main(): Promise<void> {
  const project = await loadProject(data.dir, {
    ...(data.config ? { config: data.config } : {}),
    ...(data.env ? { env: data.env } : {}),
    ...(data.secrets ? { secrets: true } : {}),
  });
  const storePath = data.store ?? project.storePath;
  // Another thread cannot open this thread's in-memory database: the host runs it in one thread.
  if (storePath === ":memory:") return post({ type: "in-memory" });
  // Durable Objects (their storage, alarms and WebSockets) are served from the HTTP server's
  // thread for now: such a project runs in one thread, as `hostProject` runs it.
  if (project.objects.length > 0) return post({ type: "one-thread", reason: "Durable Objects" });
  const postgres = /^postgres(ql)?:\/\//.test(storePath);
  if (storePath !== ":memory:" && !postgres) mkdirSync(dirname(storePath), { recursive: true });

  const drain = new Drain();
  const userHooks: RuntimeHooks = { ...project.options.hooks };
  const hooks: RuntimeHooks = {
    ...userHooks,
    wrapStep: (info, next) => {
      const attempt = () => (userHooks.wrapStep ? userHooks.wrapStep(info, next) : next());
      return drain.wrap(devLogger ? () => observeAttempt(devLogger, info, attempt) : attempt);
    },
  };
  if (devLogger) attributeConsole();
  // `email()` and wrangler's `send_email` bindings, as in one thread (host.ts).
  const mail = mailOf(project, data.devLog ? "dev" : "start");
  // A SQLite file is shared with the main thread's connection: the channel carries its messages.
  let store: Store | string = storePath;
  if (!postgres)
    store = await openSqliteStore({
      path: storePath,
      ...(project.options.synchronous ? { synchronous: project.options.synchronous } : {}),
      channel: true,
    });
  if (data.otel) await startOpenTelemetry(log);
  // What runs store and cost goes to the API's thread, which serves the metrics (SPEC §12.3).
  const items: TelemetryItem[] = [];
  const queue = (item: TelemetryItem) => {
    if (items.length === 0) setImmediate(() => post({ type: "telemetry", items: items.splice(0) }));
    items.push(item);
  };
  const telemetry: Telemetry = {
    stored: (entries, instance) =>
      queue({
        kind: "stored",
        entries: [...entries],
        ...(instance ? { createdAt: instance.createdAt } : {}),
      }),
    ran: (workflow, cpuTimeMs, wallTimeMs) => queue({ kind: "ran", workflow, cpuTimeMs, wallTimeMs }),
    leaseLost: (workflow) => queue({ kind: "leaseLost", workflow }),
    storeError: () => queue({ kind: "storeError" }),
    storeTransaction: (storeKind, durationMs) =>
      queue({ kind: "storeTransaction", store: storeKind, durationMs }),
  };
  let cairn: Cairn;
  try {
    cairn = await createCairn({
      telemetry: [telemetry],
      log: (message, error) => log(message, error),
      ...(data.worker === false ? { worker: false } : {}),
      ...project.options,
      hooks,
      store,
      workflows: devLogger
        ? project.workflows.map((w) => ({ ...w, class: withRunContext(w.class, w.name) }))
        : project.workflows,
      env: { ...project.vars, ...mail?.bindings },
      ...triggersOf(project, log),
    });
    if (devLogger) reportErroredInstances(cairn.runtime, devLogger);
  } catch (e) {
    if (typeof store === "object") await store.close();
    throw e;
  }
  const env = cairn.env as Record<string, unknown>;
  (globalThis as Record<symbol, unknown>)[ENV_SLOT] = env;
  (globalThis as Record<symbol, unknown>)[EXPORTS_SLOT] = workerExports(
    project.module,
    () => env,
    () => trackedContext(log),
  );
  cairn.runtime.onChange((workflow, id, status) =>
    post({ type: "changed", workflow, id, ...(status ? { status } : {}) }),
  );

  const pending = new Set<Promise<unknown>>();
  const served = project.fetch ? serveFetch(project.fetch, env, pending, log) : undefined;
  // `cairn dev`: `GET /__scheduled?cron=` calls the scheduled() handler now (wrangler's --test-scheduled).
  const fetch = devLogger && project.crons?.length ? withTestScheduled(cairn.runtime, served) : served;
  const deliverEmail = mail?.deliverEmail(env, pending);
  let graphs: ReturnType<typeof projectGraphs> | undefined;

  const call = async (method: string, args: unknown[]): Promise<unknown> => {
    if (method === "beforeCreate")
      return userHooks.beforeCreate?.(args[0] as Parameters<NonNullable<RuntimeHooks["beforeCreate"]>>[0]);
    if (method === "graph") return (await (graphs ??= projectGraphs(project, log))).get(args[0] as string);
    if (method === "email" && deliverEmail)
      return deliverEmail(
        args[0] as Uint8Array,
        args[1] as { from: string | undefined; to: string | undefined },
      );
    throw new Error(`unknown call ${method}`);
  };

  let closing: Promise<void> | undefined;
  const close = (timeoutMs: number) =>
    (closing ??= (async () => {
      const deadline = Date.now() + Math.max(0, timeoutMs);
      if (timeoutMs > 0) {
        drain.hold();
        await Promise.race([drain.idle().then(() => cairn.runtime.whenIdle()), until(deadline)]);
        await Promise.race([Promise.allSettled([...pending]), until(deadline)]);
      }
      await cairn.close();
      if (typeof store === "object") await store.close();
    })());

  port.on("message", (m: ToThread) => {
    if (m.type === "call")
      call(m.method, m.args).then(
        (value) => post({ type: "reply", id: m.id, ok: true, value }),
        (e) => post({ type: "reply", id: m.id, ok: false, error: remoteError(e) }),
      );
    else if (m.type === "fetch" && fetch) void answer(fetch, m.request, m.port);
    else if (m.type === "close")
      close(m.timeoutMs).then(
        () => post({ type: "closed" }),
        (e) => {
          log("Cairn: closing the project failed", e);
          post({ type: "closed" });
        },
      );
  });

  post({
    type: "ready",
    info: projectInfo(project, storePath),
    project: {
      name: project.name,
      kind: project.kind,
      dir: project.dir,
      configPath: project.configPath,
      entry: project.entry,
      storePath: project.storePath,
      workflows: project.workflows.map((w) => ({
        binding: w.binding,
        name: w.name,
        classOwnName: w.class.name,
        ...(w.className ? { className: w.className } : {}),
        ...(w.schedules !== undefined ? { schedules: w.schedules } : {}),
      })),
    },
    store: storePath,
    ...(project.options.synchronous ? { synchronous: project.options.synchronous } : {}),
    ...(project.options.createRatePerSecond !== undefined
      ? { createRatePerSecond: project.options.createRatePerSecond }
      : {}),
    fetch: fetch !== undefined,
    email: deliverEmail !== undefined,
    beforeCreate: typeof userHooks.beforeCreate === "function",
    ...(project.options.cpuLimitMs !== undefined ? { cpuLimitMs: project.options.cpuLimitMs } : {}),
  });
}

/** Runs one request through the fetch handler and streams the response back over `reply`. */
async function answer(
  fetch: (request: Request) => Promise<Response>,
  r: { method: string; url: string; headers: [string, string][]; body?: ArrayBuffer },
  reply: MessagePort,
): Promise<void> {
  let cancelled = false;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  reply.on("message", (m: { type: string }) => {
    if (m.type !== "cancel") return;
    cancelled = true;
    void reader?.cancel().catch(() => {});
  });
  try {
    const request = new Request(r.url, {
      method: r.method,
      headers: r.headers,
      ...(r.body && r.body.byteLength > 0 ? { body: r.body } : {}),
    });
    const response = await fetch(request);
    reply.postMessage({
      type: "head",
      status: response.status,
      statusText: response.statusText,
      headers: [...response.headers],
      body: response.body !== null,
    });
    if (response.body) {
      reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done || cancelled) break;
        const chunk = value.slice();
        reply.postMessage({ type: "chunk", chunk }, [chunk.buffer]);
      }
    }
    reply.postMessage({ type: "end" });
  } catch (e) {
    reply.postMessage({ type: "error", error: remoteError(e) });
  } finally {
    reply.close();
  }
}

main().catch((e) => {
  // A project that does not load: the failure is described here, where the error still has its
  // locations (esbuild's messages, the stack), for `cairn dev`'s terminal line and banner.
  post({ type: "error", error: { ...remoteError(e), loadFailure: describeLoadError(e, data.dir) } });
});
