import type { RestartFrom } from "@cairn/client";
import { type Command, Option } from "commander";
import { type CliContext, positiveInt, UsageError } from "../context.ts";
import { statusCommand } from "../status-change.ts";

interface RestartFlags {
  fromStepName?: string;
  fromStepCount?: number;
  fromStepType?: "do" | "sleep" | "waitForEvent";
}

/**
 * `cairn workflows instances restart <workflow> <id|latest> [--from-step-name <name>
 * [--from-step-count <n>] [--from-step-type do|sleep|waitForEvent]]`
 */
export function registerInstancesRestart(parent: Command, ctx: CliContext): void {
  statusCommand(parent, ctx, {
    name: "restart",
    description:
      "Restart an instance from the beginning, or from a step (keeping the results of steps before it)",
    message: (id, workflow) => `🥷 The instance "${id}" from ${workflow} was restarted successfully`,
    change: (client, workflow, id, options: RestartFlags) =>
      client.restart(workflow, id, restartFrom(options)),
  })
    .option("--from-step-name <name>", "restart from this step (steps started before it keep their results)")
    .option(
      "--from-step-count <n>",
      "which occurrence of the step name (1-based; needs --from-step-name)",
      positiveInt("--from-step-count"),
    )
    .addOption(
      new Option("--from-step-type <type>", "the step's kind (needs --from-step-name)").choices([
        "do",
        "sleep",
        "waitForEvent",
      ]),
    );
}

/** The `from` of a restart; count and type without a name are a usage error. */
export function restartFrom(options: RestartFlags): RestartFrom | undefined {
  if (options.fromStepName === undefined) {
    if (options.fromStepCount !== undefined) throw new UsageError("--from-step-count needs --from-step-name");
    if (options.fromStepType !== undefined) throw new UsageError("--from-step-type needs --from-step-name");
    return undefined;
  }
  const from: RestartFrom = { name: options.fromStepName };
  if (options.fromStepCount !== undefined) from.count = options.fromStepCount;
  if (options.fromStepType !== undefined) from.type = options.fromStepType;
  return from;
}
