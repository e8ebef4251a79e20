/**
 * The child process of `runDev`: hosts the project and reports to the supervisor over IPC. Options
 * come as JSON in `CAIRN_DEV_CHILD` (see `ChildOptions` in dev.ts).
 *
 * Messages: `{ type: "ready", url, info }` once serving the project; `{ type: "failed", url,
 * failure }` when the project did not load but the API and dashboard are served (the project's
 * routes answer 500 with the error); `{ type: "fatal", message }` when nothing could be served
 * (the port is taken), just before exiting 1.
 */
import { serveLoadFailure } from "./dev-fallback.ts";
import { describeLoadError, type LoadFailure } from "./load-error.ts";
import { createLogger } from "./logger.ts";
import { listenErrorMessage } from "./project-info.ts";
import { hostPythonProject, pythonMain } from "./python-host.ts";
import { hostProjectInWorker } from "./worker-host.ts";

interface ChildOptions {
  dir: string;
  config?: string;
  env?: string;
  store?: string;
  host?: string;
  port?: number;
  token?: string;
  hostAllow?: string[];
  server: string;
  shutdownTimeoutMs?: number;
}

const send = (message: unknown) =>
  new Promise<void>((resolve) => (process.send ? process.send(message, () => resolve()) : resolve()));

async function main(): Promise<void> {
  const options = JSON.parse(process.env.CAIRN_DEV_CHILD ?? "null") as ChildOptions | null;
  if (!options) throw new Error("dev-child: CAIRN_DEV_CHILD is not set");
  const server = (await import(options.server)) as Record<string, unknown>;
  if (typeof server.startServer !== "function" || typeof server.createApi !== "function")
    throw new Error(`${options.server} does not export startServer and createApi`);
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 8787;
  const logger = createLogger({ format: "text" });
  let close: () => Promise<void>;
  try {
    const hosted = pythonMain(options.dir, options)
      ? await hostPythonProject(options.dir, {
          ...options,
          host,
          port,
          startServer: server.startServer as never,
          createApi: server.createApi as never,
          secrets: true,
          printWarnings: false,
          log: (line) => process.stdout.write(`${line}\n`),
        })
      : await hostProjectInWorker(options.dir, {
          ...(options.config ? { config: options.config } : {}),
          ...(options.env ? { env: options.env } : {}),
          ...(options.store ? { store: options.store } : {}),
          host,
          port,
          ...(options.token ? { token: options.token } : {}),
          ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
          secrets: true,
          devLogger: logger,
          log: (message, error) => logger.error({ err: error }, message),
          startServer: server.startServer as never,
          createApi: server.createApi as never,
        });
    close = () => hosted.close({ timeoutMs: options.shutdownTimeoutMs ?? 0 });
    await send({
      type: "ready",
      url: hosted.url,
      info: hosted.info,
    });
  } catch (e) {
    const listen = listenErrorMessage(e, host, port);
    if (listen) return fatal(listen);
    const failure = (e as { loadFailure?: LoadFailure }).loadFailure ?? describeLoadError(e, options.dir);
    try {
      const fallback = await serveLoadFailure(
        {
          dir: options.dir,
          ...(options.store ? { store: options.store } : {}),
          host,
          port,
          ...(options.token ? { token: options.token } : {}),
          ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
          startServer: server.startServer as never,
          createApi: server.createApi as never,
        },
        failure,
      );
      close = fallback.close;
      await send({ type: "failed", url: fallback.url, failure });
    } catch (e2) {
      return fatal(listenErrorMessage(e2, host, port) ?? failure.message);
    }
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("disconnect", stop);
}

async function fatal(message: string): Promise<void> {
  await send({ type: "fatal", message });
  process.exit(1);
}

main().catch(async (e) => {
  await fatal((e as Error)?.message ?? String(e));
});
