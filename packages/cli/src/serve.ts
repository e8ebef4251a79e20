import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Command } from "commander";
import { type CliContext, splitHosts } from "./context.ts";

/** What `dev` and `start` hold on to while serving. */
export interface RunningServer {
  url: string;
  /** Stops serving (gracefully where the server can). */
  stop(): Promise<void>;
}

/**
 * Announces a started server (a line, or `{"url": …}` with `--json`), waits for SIGINT/SIGTERM,
 * then stops it. `dev` and `start` load `@cairn/compat` and `@cairn/server` on demand, so other
 * commands start quickly.
 */
export async function serveUntilStopped(
  ctx: CliContext,
  command: Command,
  server: RunningServer,
  what: string,
) {
  ctx.print(command, `${what} listening on ${server.url} (Ctrl-C to stop)`, { url: server.url });
  try {
    await ctx.io.untilStopped();
  } finally {
    await server.stop();
  }
}

/** `--host-allow` entries after those of `CAIRN_HOST_ALLOW`; none: the option is left out. */
export function hostAllow(ctx: CliContext, options: { hostAllow?: string[] }): { hostAllow?: string[] } {
  const hosts = [...splitHosts(ctx.io.env.CAIRN_HOST_ALLOW), ...(options.hostAllow ?? [])];
  return hosts.length > 0 ? { hostAllow: hosts } : {};
}

/**
 * `cairn start --metrics-port N`: Prometheus metrics (the API's own, `prometheusFor`) as `/metrics`
 * on a port of their own, without a token, for a scraper that should not hold the API's token.
 * Every other path answers 404.
 */
export async function serveMetrics(
  runtime: Parameters<typeof import("@cairn/server")["prometheusFor"]>[0],
  host: string,
  port: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const { prometheusFor } = await import("@cairn/server");
  const prometheus = prometheusFor(runtime);
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res
        .writeHead(404, { "content-type": "text/plain" })
        .end("Not found: Prometheus metrics are at /metrics\n");
      return;
    }
    prometheus.text().then(
      (text) => res.writeHead(200, { "content-type": prometheus.contentType }).end(text),
      (e) => res.writeHead(500, { "content-type": "text/plain" }).end(`${(e as Error)?.message ?? e}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
