import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { statusCommand } from "../status-change.ts";

/** `cairn workflows instances resume <workflow> <id|latest>` */
export function registerInstancesResume(parent: Command, ctx: CliContext): void {
  statusCommand(parent, ctx, {
    name: "resume",
    description: "Resume a paused instance",
    message: (id, workflow) => `🔄 The instance "${id}" from ${workflow} was resumed successfully`,
    change: (client, workflow, id) => client.resume(workflow, id),
  });
}
