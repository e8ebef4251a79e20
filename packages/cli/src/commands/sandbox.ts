import { join, resolve } from "node:path";
import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { formatDate, table } from "../format.ts";

/** The sandboxes directory of a project directory (`<dir>/.cairn/sandboxes`). */
const sandboxesOf = (ctx: CliContext, dir: string) => join(resolve(ctx.io.cwd, dir), ".cairn", "sandboxes");

/**
 * `cairn sandbox check|list|destroy`: whether this machine can run sandboxes (driver, cgroup mode,
 * seccomp), the sandboxes of a project, and destroying one (its jail and its directory).
 */
export function registerSandbox(parent: Command, ctx: CliContext): void {
  parent
    .command("check")
    .description("Check that this machine can run sandboxes (bubblewrap, cgroups, seccomp)")
    .action(async (_o: unknown, command: Command) => {
      const { probeIsolation } = await import("@cairn/sandbox");
      const probe = await probeIsolation();
      ctx.print(
        command,
        [
          `isolation: ${probe.ok ? "available" : "UNAVAILABLE"} (${probe.driver}: ${probe.reason})`,
          `limits:    ${probe.cgroup} (${probe.cgroupReason})`,
          `seccomp:   ${probe.seccomp ? "yes" : "no"}`,
        ].join("\n"),
        probe,
      );
      if (!probe.ok) process.exitCode = 1;
    });
  parent
    .command("list [dir]")
    .description("List the sandboxes of a project (default: the current directory)")
    .action(async (dir: string | undefined, _o: unknown, command: Command) => {
      const { listSandboxDirectories } = await import("@cairn/sandbox");
      const list = listSandboxDirectories(sandboxesOf(ctx, dir ?? "."));
      if (ctx.globals(command).json) return ctx.print(command, "", list);
      if (list.length === 0) return ctx.io.stdout("No sandboxes.\n");
      const rows = list.map((s) => [
        s.id,
        s.running ? `running (pid ${s.pid})` : "stopped",
        formatDate(s.modifiedAt, { utc: ctx.io.utc }),
      ]);
      ctx.io.stdout(`${table(["Id", "State", "Changed"], rows)}\n`);
    });
  parent
    .command("destroy <id> [dir]")
    .description("Stop a sandbox's jail and remove its directory")
    .action(async (id: string, dir: string | undefined, _o: unknown, command: Command) => {
      const { destroySandboxDirectory } = await import("@cairn/sandbox");
      const done = destroySandboxDirectory(sandboxesOf(ctx, dir ?? "."), id);
      ctx.print(command, `Destroyed sandbox ${id}${done.running ? " (its jail was stopped)" : ""}.`, done);
    });
}
