import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { formatDate, table } from "../format.ts";

/** `cairn workflows list`: every workflow with its instance count. */
export function registerWorkflowsList(parent: Command, ctx: CliContext): void {
  parent
    .command("list")
    .description("List the workflows the server runs")
    .action(async (_options, command: Command) => {
      const workflows = await ctx.client(command).listWorkflows();
      if (ctx.globals(command).json) return ctx.print(command, "", workflows);
      if (workflows.length === 0) return ctx.io.stdout("No workflows.\n");
      const rows = workflows.map((w) => [
        w.name,
        w.class_name,
        String(Object.values(w.instances ?? {}).reduce((a, b) => a + b, 0)),
        formatDate(w.triggered_on, { utc: ctx.io.utc }),
      ]);
      ctx.io.stdout(`${table(["Name", "Class name", "Instances", "Last triggered"], rows)}\n`);
    });
}
