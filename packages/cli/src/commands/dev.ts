import { resolve } from "node:path";
import type { Command } from "commander";
import {
  applySandboxFlags,
  type CliContext,
  HOST_ALLOW_HELP,
  hostList,
  portNumber,
  SANDBOX_ALLOW_HELP,
  SANDBOX_NETWORK_HELP,
  type SandboxFlags,
  storeArgument,
} from "../context.ts";
import { hostAllow, serveUntilStopped } from "../serve.ts";

interface DevFlags extends SandboxFlags {
  port: number;
  host: string;
  hostAllow?: string[];
  store?: string;
  config?: string;
  env?: string;
}

/**
 * `cairn dev [dir]`: run a Worker project (wrangler config or cairn.config.ts) in a child process
 * that restarts when its files change, with secrets from `.dev.vars` (or `.env`).
 */
export function registerDev(parent: Command, ctx: CliContext): void {
  parent
    .command("dev")
    .description("Run a project locally (workflows, fetch handler and API), reloading on change")
    .argument("[dir]", "project directory", ".")
    .option("--port <port>", "port to listen on (0: any free port)", portNumber, 8787)
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--host-allow <hosts>", HOST_ALLOW_HELP, hostList)
    .option(
      "--store <path>",
      "SQLite file, :memory: or postgres://user@host/db[?schema=name] (default: <dir>/.cairn/cairn.db)",
    )
    .option("--config <file>", "wrangler.jsonc / wrangler.toml / cairn.config.ts to use")
    .option("--env <name>", "wrangler environment to use (the config's env.<name> section)")
    .option("--sandbox-network <mode>", SANDBOX_NETWORK_HELP)
    .option("--sandbox-allow <destinations>", SANDBOX_ALLOW_HELP, hostList)
    .action(async (dir: string, options: DevFlags, command: Command) => {
      const { token } = ctx.globals(command);
      applySandboxFlags(options);
      const store = options.store === undefined ? undefined : storeArgument(options.store, ctx.io.cwd);
      const { runDev } = await import("@cairn/compat");
      const log = (line: string) => ctx.io.stderr(line.endsWith("\n") ? line : `${line}\n`);
      const dev = await runDev(resolve(ctx.io.cwd, dir), {
        port: options.port,
        host: options.host,
        token,
        ...hostAllow(ctx, options),
        log,
        server: import.meta.resolve("@cairn/dashboard/server"),
        ...(store ? { store } : {}),
        ...(options.config ? { config: resolve(ctx.io.cwd, options.config) } : {}),
        ...(options.env ? { env: options.env } : {}),
      });
      await serveUntilStopped(ctx, command, { url: dev.url, stop: () => dev.close() }, "⎔ Cairn dev server");
    });
}
