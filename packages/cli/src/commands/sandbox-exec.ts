import type { Command } from "commander";
import { type CliContext, UsageError } from "../context.ts";
import { objectsApi } from "./objects-api.ts";

/** One argument as a POSIX shell word. */
const shellWord = (a: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/**
 * `cairn sandbox exec <id> -- <cmd…>`: runs a command in a running sandbox of the server named by
 * `--url` and exits with its exit code. One argument is a command line (`-- 'echo $HOME'`);
 * several are words, quoted for the shell.
 */
export function registerSandboxExec(parent: Command, ctx: CliContext): void {
  parent
    .command("exec <id> <command...>")
    .description("Run a command in a running sandbox (of the server at --url)")
    .option("--timeout <ms>", "stop the command after this many milliseconds")
    .action(async (id: string, words: string[], options: { timeout?: string }, command: Command) => {
      let timeout: number | undefined;
      if (options.timeout !== undefined) {
        timeout = Number(options.timeout);
        if (!Number.isInteger(timeout) || timeout < 1)
          throw new UsageError(
            `--timeout must be a whole number of milliseconds ≥ 1, got ${options.timeout}`,
          );
      }
      const line = words.length === 1 ? (words[0] as string) : words.map(shellWord).join(" ");
      const result = await objectsApi(ctx, command, `/${encodeURIComponent(id)}/exec`, {
        root: "/sandboxes",
        method: "POST",
        body: { command: line, ...(timeout !== undefined ? { timeout } : {}) },
      });
      if (ctx.globals(command).json) ctx.print(command, "", result);
      else {
        ctx.io.stdout(result.stdout);
        ctx.io.stderr(result.stderr);
      }
      ctx.exitCode = result.exitCode;
    });
}
