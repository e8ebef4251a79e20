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
