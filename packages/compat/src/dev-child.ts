/**
 * The child process of `runDev`: hosts the project and reports to the supervisor over IPC. Options
 * come as JSON in `CAIRN_DEV_CHILD` (see `ChildOptions` in dev.ts).
 */
import { hostProjectInWorker } from "./worker-host.ts";

interface ChildOptions {
  dir: string;
  config?: string;
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
  const hosted = await hostProjectInWorker(options.dir, {
    ...(options.config ? { config: options.config } : {}),
    ...(options.store ? { store: options.store } : {}),
    ...(options.host ? { host: options.host } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.token ? { token: options.token } : {}),
    ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
    startServer: server.startServer as never,
    createApi: server.createApi as never,
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await hosted.close({ timeoutMs: options.shutdownTimeoutMs ?? 0 });
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("disconnect", stop);
  await send({
    type: "ready",
    url: hosted.url,
    name: hosted.project.name,
    workflows: hosted.project.workflows.map((w) => w.name),
  });
}

main().catch(async (e) => {
  await send({ type: "error", message: (e as Error)?.message ?? String(e) });
  console.error(e);
  process.exit(1);
});
