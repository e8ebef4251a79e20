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
  UsageError,
} from "../context.ts";
import { hostAllow, serveMetrics, serveUntilStopped } from "../serve.ts";

/** The levels `--log-level` accepts (as `@cairn/compat`'s logger; listed here so bad input fails before loading it). */
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

interface StartFlags extends SandboxFlags {
  store?: string;
  host: string;
  hostAllow?: string[];
  port: number;
  config?: string;
  env?: string;
  worker: boolean;
  logFormat: string;
  logLevel?: string;
  metricsPort?: number;
  otel?: boolean;
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
    .option("--env <name>", "wrangler environment to use (the config's env.<name> section)")
    .option("--sandbox-network <mode>", SANDBOX_NETWORK_HELP)
    .option("--sandbox-allow <destinations>", SANDBOX_ALLOW_HELP, hostList)
    .option(
      "--metrics-port <port>",
      "also serve Prometheus metrics as /metrics on this port (no token; same host)",
      portNumber,
    )
    .option(
      "--otel",
      "send OpenTelemetry traces with @opentelemetry/sdk-node (OTEL_* variables), if installed",
    )
    .option("--log-format <format>", "text (readable lines) or json (one JSON object per line)", "text")
    .option(
      "--log-level <level>",
      "trace, debug (adds a line per HTTP request), info, warn, error or silent (default: $CAIRN_LOG_LEVEL or info)",
    )
    .action(async (dir: string, options: StartFlags, command: Command) => {
      const { token } = ctx.globals(command);
      applySandboxFlags(options);
      const format = options.logFormat;
      if (format !== "text" && format !== "json")
        throw new UsageError(`--log-format must be text or json, got "${format}"`);
      const level = options.logLevel ?? ctx.io.env.CAIRN_LOG_LEVEL ?? "info";
      if (!(LOG_LEVELS as readonly string[]).includes(level))
        throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
      const [{ runStart, listenErrorMessage, createLogger }, { createApi, startServer }] = await Promise.all([
        import("@cairn/compat"),
        import("@cairn/dashboard/server"),
      ]);
      const store = options.store === undefined ? undefined : storeArgument(options.store, ctx.io.cwd);
      const logger = createLogger({
        format,
        level: level as LogLevel,
        write: (line) => ctx.io.stderr(line),
      });
      const started = await runStart({
        dir: resolve(ctx.io.cwd, dir),
        ...(options.config ? { config: resolve(ctx.io.cwd, options.config) } : {}),
        ...(options.env ? { env: options.env } : {}),
        ...(store ? { store } : {}),
        host: options.host,
        port: options.port,
        token,
        ...hostAllow(ctx, options),
        ...(options.worker ? {} : { worker: false }),
        ...(options.otel ? { otel: true } : {}),
        createApi,
        startServer,
        handleSignals: false,
        logger,
      }).catch((e) => {
        const line = listenErrorMessage(e, options.host, options.port);
        throw line ? new Error(line) : e;
      });
      let metrics: Awaited<ReturnType<typeof serveMetrics>> | undefined;
      if (options.metricsPort !== undefined)
        try {
          metrics = await serveMetrics(started.cairn.runtime, options.host, options.metricsPort);
          logger.info(`Cairn: Prometheus metrics on ${metrics.url}`);
        } catch (e) {
          await started.shutdown();
          const line = listenErrorMessage(e, options.host, options.metricsPort);
          throw line ? new Error(line) : e;
        }
      await serveUntilStopped(
        ctx,
        command,
        {
          url: started.url,
          stop: async () => {
            await metrics?.close();
            await started.shutdown();
          },
        },
        "⎔ Cairn server",
      );
    });
}
