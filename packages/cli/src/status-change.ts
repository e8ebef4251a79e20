import type { CairnClient } from "@cairn/client";
import type { Command } from "commander";
import type { CliContext } from "./context.ts";

/**
 * The shape shared by `pause`, `resume`, `terminate` and `restart`: resolve `<id|latest>`, change
 * the status, print wrangler's message (or the result with `--json`).
 */
export function statusCommand(
  parent: Command,
  ctx: CliContext,
  spec: {
    name: string;
    description: string;
    /** The message, e.g. `⏸️ The instance "<id>" from <workflow> was paused successfully`. */
    message: (id: string, workflow: string) => string;
    change: (client: CairnClient, workflow: string, id: string, options: any) => Promise<unknown>;
  },
): Command {
  return parent
    .command(spec.name)
    .description(spec.description)
    .argument("<workflow>", "workflow name")
    .argument("<id>", 'instance id, or "latest" (the most recently created instance)')
    .action(async (workflow: string, id: string, options: unknown, command: Command) => {
      const client = ctx.client(command);
      const target = await ctx.resolveId(client, workflow, id);
      const result = await spec.change(client, workflow, target.id, options);
      ctx.print(command, spec.message(target.id, workflow), {
        id: target.id,
        workflow,
        ...(result as object),
      });
    });
}
