import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { statusCommand } from "../status-change.ts";

/** `cairn workflows instances pause <workflow> <id|latest>` */
export function registerInstancesPause(parent: Command, ctx: CliContext): void {
  statusCommand(parent, ctx, {
    name: "pause",
    description: "Pause an instance (it finishes running step callbacks first)",
    message: (id, workflow) => `⏸️ The instance "${id}" from ${workflow} was paused successfully`,
    change: (client, workflow, id) => client.pause(workflow, id),
  });
}
