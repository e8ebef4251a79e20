import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { table } from "../format.ts";
import { objectsApi } from "./objects-api.ts";

/** `cairn agents list [binding]`: the agents with their connections, schedules and tracked workflows. */
export function registerAgentsList(parent: Command, ctx: CliContext): void {
  parent
    .command("list [binding]")
    .description("List the agents (of every namespace, or of one binding)")
    .option("--limit <n>", "at most this many agents per namespace", "100")
    .action(async (binding: string | undefined, options: { limit: string }, command: Command) => {
      const query = new URLSearchParams({ limit: options.limit });
      if (binding !== undefined) query.set("namespace", binding);
      const agents = await objectsApi(ctx, command, `?${query}`, { root: "/agents" });
      if (ctx.globals(command).json) return ctx.print(command, "", agents);
      if (agents.length === 0) return ctx.io.stdout("No agents.\n");
      const rows = agents.map((a: any) => [
        a.className,
        a.name ?? a.id,
        String(a.connections),
        String(a.schedules.length),
        a.workflows.length === 0
          ? "-"
          : a.workflows.map((w: any) => `${w.workflowId} (${w.status})`).join(", "),
      ]);
      ctx.io.stdout(`${table(["Class", "Name", "Connections", "Schedules", "Workflows"], rows)}\n`);
    });
}
