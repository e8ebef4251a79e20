import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { formatDate, table } from "../format.ts";
import { objectsApi } from "./objects-api.ts";

/**
 * `cairn sandbox logs <id> [process id]`: a process's output, or (without a process id) the
 * sandbox's recent commands with their exit codes and its processes.
 */
export function registerSandboxLogs(parent: Command, ctx: CliContext): void {
  parent
    .command("logs <id> [processId]")
    .description("Show a sandbox process's logs, or the sandbox's recent commands and processes")
    .action(async (id: string, processId: string | undefined, _o: unknown, command: Command) => {
      const base = `/${encodeURIComponent(id)}`;
      if (processId !== undefined) {
        const logs = await objectsApi(
          ctx,
          command,
          `${base}/processes/${encodeURIComponent(processId)}/logs`,
          {
            root: "/sandboxes",
          },
        );
        if (ctx.globals(command).json) return ctx.print(command, "", logs);
        ctx.io.stdout(logs.stdout);
        ctx.io.stderr(logs.stderr);
        return;
      }
      const s = await objectsApi(ctx, command, base, { root: "/sandboxes" });
      if (ctx.globals(command).json) return ctx.print(command, "", s);
      const utc = { utc: ctx.io.utc };
      const commands = s.recentCommands.map((c: any) => [
        formatDate(c.at, utc),
        c.exitCode === null ? "-" : String(c.exitCode),
        `${c.durationMs} ms`,
        c.command,
      ]);
      const processes = s.processes.map((p: any) => [
        p.id,
        p.status,
        p.exitCode === undefined ? "-" : String(p.exitCode),
        p.command,
      ]);
      ctx.io.stdout(
        [
          `Sandbox ${s.id}: ${s.state}`,
          commands.length ? table(["At", "Exit", "Took", "Command"], commands) : "No recent commands.",
          processes.length ? table(["Process", "Status", "Exit", "Command"], processes) : "No processes.",
        ].join("\n\n") + "\n",
      );
    });
}
