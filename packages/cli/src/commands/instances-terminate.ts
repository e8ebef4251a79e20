import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { statusCommand } from "../status-change.ts";

/** `cairn workflows instances terminate <workflow> <id|latest> [--rollback]` */
export function registerInstancesTerminate(parent: Command, ctx: CliContext): void {
  statusCommand(parent, ctx, {
    name: "terminate",
    description: "Terminate an instance (final: it cannot be resumed, only restarted)",
    message: (id, workflow) => `🥷 The instance "${id}" from ${workflow} was terminated successfully`,
    change: (client, workflow, id, options: { rollback?: boolean }) =>
      client.terminate(workflow, id, options.rollback ? { rollback: true } : undefined),
  }).option("--rollback", "run the instance's registered rollbacks (newest first) before it ends");
}
