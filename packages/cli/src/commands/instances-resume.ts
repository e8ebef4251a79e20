import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { statusCommand } from "../status-change.ts";

/** Statuses an instance never leaves by itself (resume has nothing to do). */
const FINAL = new Set(["complete", "errored", "terminated"]);

/** `cairn workflows instances resume <workflow> <id|latest>` */
export function registerInstancesResume(parent: Command, ctx: CliContext): void {
  statusCommand(parent, ctx, {
    name: "resume",
    description: "Resume a paused instance",
    message: (id, workflow) => `🔄 The instance "${id}" from ${workflow} was resumed successfully`,
    change: async (client, workflow, id) => {
      const result = await client.resume(workflow, id);
      if (FINAL.has(result.status))
        throw new Error(
          `Cannot resume instance "${id}" of ${workflow}: it is ${result.status}, and a finished instance cannot be resumed (restart it instead)`,
        );
      return result;
    },
  });
}
