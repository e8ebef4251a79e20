/**
 * The `cairn` command line. `run(argv)` parses, runs one command and returns the exit code:
 * 0 ok, 1 error (an API error's message goes to stderr), 2 usage (unknown command or flag, missing
 * argument, bad JSON).
 */
import { createRequire } from "node:module";
import { CairnApiError } from "@cairn/client";
import { Command, CommanderError } from "commander";
import { registerAgentsList } from "./commands/agents-list.ts";
import { registerBackup } from "./commands/backup.ts";
import { registerDev } from "./commands/dev.ts";
import { registerDiagram } from "./commands/diagram.ts";
import { registerInstancesDelete } from "./commands/instances-delete.ts";
import { registerInstancesDescribe } from "./commands/instances-describe.ts";
import { registerInstancesList } from "./commands/instances-list.ts";
import { registerInstancesPause } from "./commands/instances-pause.ts";
import { registerInstancesRestart } from "./commands/instances-restart.ts";
import { registerInstancesResume } from "./commands/instances-resume.ts";
import { registerInstancesSendEvent } from "./commands/instances-send-event.ts";
import { registerInstancesTerminate } from "./commands/instances-terminate.ts";
import { registerMigrate } from "./commands/migrate.ts";
import { registerObjectsList } from "./commands/objects-list.ts";
import { registerObjectsSql } from "./commands/objects-sql.ts";
import { registerSandbox } from "./commands/sandbox.ts";
import { registerSandboxExec } from "./commands/sandbox-exec.ts";
import { registerSandboxLogs } from "./commands/sandbox-logs.ts";
import { registerStart } from "./commands/start.ts";
import { registerWorkflowsDescribe } from "./commands/workflows-describe.ts";
import { registerWorkflowsList } from "./commands/workflows-list.ts";
import { registerWorkflowsTrigger } from "./commands/workflows-trigger.ts";
import { CliContext, type CliIo, DEFAULT_URL, UsageError } from "./context.ts";

/** The CLI package's version (from dist/ or src/, package.json is one level up). */
const VERSION: string = createRequire(import.meta.url)("../package.json").version;

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

/** Builds the command tree. Exposed for tests that inspect it. */
export function createProgram(ctx: CliContext): Command {
  const program = new Command("cairn")
    .description("Cairn: durable workflows with the Cloudflare Workflows API, on your own machines")
    .option("--url <url>", `Cairn server to talk to (default: $CAIRN_URL or ${DEFAULT_URL})`)
    .option("--token <token>", "API token, sent as a bearer token (default: $CAIRN_TOKEN)")
    .option("--json", "print machine-readable JSON instead of text")
    .version(VERSION, "-v, --version", "print the version")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout(s),
      writeErr: (s) => ctx.io.stderr(s),
      outputError: (s, write) => write(s),
    })
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false, helpWidth: 80, minWidthToWrap: 20 })
    .showHelpAfterError("(run with --help for usage)")
    .helpCommand(false);

  registerDev(program, ctx);
  registerStart(program, ctx);
  registerMigrate(program, ctx);
  registerBackup(program, ctx);

  const workflows = program
    .command("workflows")
    .description("List, describe and trigger workflows")
    .helpCommand(false);
  registerWorkflowsList(workflows, ctx);
  registerWorkflowsDescribe(workflows, ctx);
  registerWorkflowsTrigger(workflows, ctx);

  const instances = workflows
    .command("instances")
    .description("Manage the instances of a workflow")
    .helpCommand(false);
  registerInstancesList(instances, ctx);
  registerInstancesDescribe(instances, ctx);
  registerInstancesPause(instances, ctx);
  registerInstancesResume(instances, ctx);
  registerInstancesTerminate(instances, ctx);
  registerInstancesRestart(instances, ctx);
  registerInstancesSendEvent(instances, ctx);
  registerInstancesDelete(instances, ctx);

  const objects = program
    .command("objects")
    .description("Inspect Durable Objects: namespaces, objects, SQL")
    .helpCommand(false);
  registerObjectsList(objects, ctx);
  registerObjectsSql(objects, ctx);
  const agents = program
    .command("agents")
    .description("Inspect agents: state, connections, schedules, workflows")
    .helpCommand(false);
  registerAgentsList(agents, ctx);

  const sandbox = program
    .command("sandbox")
    .description("Sandboxes: check this machine, list, destroy, exec, logs")
    .helpCommand(false);
  registerSandbox(sandbox, ctx);
  registerSandboxExec(sandbox, ctx);
  registerSandboxLogs(sandbox, ctx);

  registerDiagram(program, ctx);
  return program;
}

/** The real process: stdout/stderr, `process.env`, SIGINT/SIGTERM. */
export function processIo(): CliIo {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    now: () => Date.now(),
    columns: process.stdout.isTTY ? Math.max(60, process.stdout.columns || 80) : 80,
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString("utf8");
    },
    untilStopped: () =>
      new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      }),
  };
}

/**
 * Runs `cairn <argv…>` and returns the exit code.
 *
 * ```ts
 * process.exitCode = await run(process.argv.slice(2));
 * ```
 */
export async function run(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const full: CliIo = { ...processIo(), ...io };
  const ctx = new CliContext(full);
  const program = createProgram(ctx);
  const json = argv.includes("--json");
  try {
    if (argv.length === 0) {
      full.stdout(program.helpInformation());
      return EXIT_OK;
    }
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode ?? EXIT_OK;
  } catch (e) {
    return reportError(e, full, json);
  }
}

function reportError(e: unknown, io: CliIo, json: boolean): number {
  if (e instanceof CommanderError) {
    // commander printed its own message already
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return EXIT_OK;
    return EXIT_USAGE;
  }
  if (e instanceof UsageError) {
    io.stderr(
      json
        ? `${JSON.stringify({ error: { code: "usage", message: e.message } })}\n`
        : `error: ${e.message}\n(run with --help for usage)\n`,
    );
    return EXIT_USAGE;
  }
  if (CairnApiError.is(e)) {
    io.stderr(
      json
        ? `${JSON.stringify({ error: { code: e.code, status: e.status, message: e.message } })}\n`
        : `✘ ${e.message}\n`,
    );
    return EXIT_ERROR;
  }
  const message = e instanceof Error ? e.message : String(e);
  io.stderr(json ? `${JSON.stringify({ error: { code: "error", message } })}\n` : `✘ ${message}\n`);
  return EXIT_ERROR;
}
