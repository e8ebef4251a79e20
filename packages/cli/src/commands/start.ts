import { resolve } from "node:path";
import type { Command } from "commander";
import { type CliContext, HOST_ALLOW_HELP, hostList, portNumber } from "../context.ts";
import { hostAllow, serveUntilStopped } from "../serve.ts";

interface StartFlags {
  store?: string;
  host: string;
  hostAllow?: string[];
  port: number;
  config?: string;
  worker: boolean;
}

/** `cairn start [dir]`: run a project's workflows and serve the API, until SIGINT/SIGTERM. */
export function registerStart(parent: Command, ctx: CliContext): void {
  parent
    .command("start")
    .description("Start a Cairn server for a project: runs its workflows and serves the HTTP API")
    .argument("[dir]", "project directory", ".")
    .option(
      "--store <path>",
      "SQLite file, :memory: or postgres://user@host/db[?schema=name] (default: <dir>/.cairn/cairn.db)",
    )
    .option("--no-worker", "serve the API only; run no instances (workers sharing the store do)")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--host-allow <hosts>", HOST_ALLOW_HELP, hostList)
    .option("--port <port>", "port to listen on (0: any free port)", portNumber, 8787)
    .option("--config <file>", "wrangler.jsonc / wrangler.toml / cairn.config.ts to use")
    .action(async (dir: string, options: StartFlags, command: Command) => {
      const { token } = ctx.globals(command);
      const [{ runStart }, { createApi, startServer }] = await Promise.all([
        import("@cairn/compat"),
        import("@cairn/dashboard/server"),
      ]);
      const log = (line: string) => ctx.io.stderr(line.endsWith("\n") ? line : `${line}\n`);
      const store =
        options.store && options.store !== ":memory:" && !/^postgres(ql)?:\/\//.test(options.store)
          ? resolve(ctx.io.cwd, options.store)
          : options.store;
      const started = await runStart({
        dir: resolve(ctx.io.cwd, dir),
        ...(options.config ? { config: resolve(ctx.io.cwd, options.config) } : {}),
        ...(store ? { store } : {}),
        host: options.host,
        port: options.port,
        token,
        ...hostAllow(ctx, options),
        ...(options.worker ? {} : { worker: false }),
        createApi,
        startServer,
        handleSignals: false,
        log,
      });
      await serveUntilStopped(
        ctx,
        command,
        { url: started.url, stop: () => started.shutdown() },
        "⎔ Cairn server",
      );
    });
}
