import type { CreateApi, StartServer } from "./host.ts";
import type { Logger } from "./logger.ts";
import { hostPythonProject, pythonMain } from "./python-host.ts";
import { hostProjectInWorker, type ServedProject } from "./worker-host.ts";

export interface StartOptions {
  /** The project directory. Default: the current directory. */
  dir?: string;
  /** A configuration file (wrangler.* or cairn.config.*) to use instead of looking in `dir`. */
  config?: string;
  /** Store path; default `<dir>/.cairn/cairn.db`. */
  store?: string;
  /** The wrangler environment to use (`env.<name>`). */
  env?: string;
  /** `false`: serve the API only and run no instances (other processes sharing the store do). */
  worker?: boolean;
  /** Send OpenTelemetry traces (`@opentelemetry/sdk-node`, configured by `OTEL_*`), SPEC §12.4. */
  otel?: boolean;
  /** Default "127.0.0.1". */
  host?: string;
  /** Default 8787. */
  port?: number;
  token?: string;
  /**
   * Host names requests may be addressed to besides loopback names (see `startServer`'s
   * `hostAllow`); every other `Host` is refused.
   */
  hostAllow?: string[];
  startServer: StartServer;
  createApi: CreateApi;
  /** How long step callbacks in flight may take to finish at shutdown. Default 10,000 ms. */
  shutdownTimeoutMs?: number;
  /** Shut down on SIGTERM and SIGINT (a second signal exits at once). Default true. */
  handleSignals?: boolean;
  /** Notices (listening, shutting down). Default: console.log, or `logger` when given. */
  log?: (line: string) => void;
  /**
   * One logger for everything: notices at info, errors of the fetch handler and the engine at
   * error (with their stack), and every HTTP request at debug.
   */
  logger?: Logger;
}

export interface StartedProject extends ServedProject {
  /**
   * Graceful shutdown: stop serving, hold new step attempts, give the ones in flight up to
   * `shutdownTimeoutMs` to finish and be stored, then close. Unfinished instances resume at the next
   * start. Safe to call twice.
   */
  shutdown(): Promise<void>;
  /** Resolves once shut down. */
  readonly closed: Promise<void>;
}

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/**
 * `cairn start`: serves a project until SIGTERM/SIGINT, then shuts down gracefully. The project's
 * code runs in a worker thread and the HTTP API in this one (see `hostProjectInWorker`), so a
 * busy step does not hold up the API; with a ":memory:" store, which one thread alone can open,
 * everything runs in this thread (see `hostProject`).
 *
 * ```ts
 * import { createApi, startServer } from "@cairn/server";
 * const started = await runStart({ port: 8787, createApi, startServer });
 * await started.closed;
 * ```
 */
export async function runStart(options: StartOptions): Promise<StartedProject> {
  const logger = options.logger;
  const log =
    options.log ?? (logger ? (line: string) => logger.info(line) : (line: string) => console.log(line));
  const timeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const dir = options.dir ?? process.cwd();
  const hosted = pythonMain(dir, options)
    ? await hostPythonProject(dir, { ...options, log })
    : await hostProjectInWorker(dir, {
        ...(options.config ? { config: options.config } : {}),
        ...(options.env ? { env: options.env } : {}),
        ...(options.store ? { store: options.store } : {}),
        ...(options.host ? { host: options.host } : {}),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.token ? { token: options.token } : {}),
        ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
        ...(options.worker === false ? { worker: false } : {}),
        ...(options.otel ? { otel: true } : {}),
        startServer: options.startServer,
        createApi: options.createApi,
        ...(logger
          ? {
              log: (message: string, error?: unknown) => logger.error({ err: error }, message),
              onRequest: (r: { method: string; path: string; status: number; ms: number }) =>
                logger.debug({ ...r, ms: Math.round(r.ms * 10) / 10 }, `${r.method} ${r.path} ${r.status}`),
            }
          : {}),
      });
  log(`Cairn: ${hosted.project.name} listening on ${hosted.url}`);

  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let shuttingDown: Promise<void> | undefined;
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      log(`Cairn: shutting down (waiting up to ${timeoutMs} ms for running steps)`);
      await hosted.close({ timeoutMs });
      if (onSignal) {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
      log("Cairn: stopped");
      resolveClosed();
    })());

  if (options.handleSignals ?? true) {
    onSignal = (signal) => {
      if (shuttingDown) {
        log(`Cairn: ${signal} again, exiting now`);
        process.exit(130);
      }
      void shutdown();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }
  return {
    ...hosted,
    close: (o) => hosted.close(o),
    shutdown,
    closed,
  };
}
