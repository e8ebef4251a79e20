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
    change: async (client, workflow, id, options: RestartFlags) => {
      const from = restartFrom(options);
      if (from && from.type === undefined) {
        // Like wrangler, the type defaults to a step.do; Cairn looks the name up among every kind.
        const detail = await client.getInstance(workflow, id);
        from.type = stepTypeOf(
          detail.steps.filter((s) => s.type !== "rollback"),
          from.name,
          from.count ?? 1,
        );
      }
      return client.restart(workflow, id, from);
    },
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

const KIND_OF = { step: "do", sleep: "sleep", waitForEvent: "waitForEvent" } as const;

/**
 * The kind of the step named `name` (occurrence `count`) in an instance's steps, when the name is
 * unique across kinds; a usage error naming the `--from-step-type` choices when it is not; "do"
 * (the server then says it is not found) when there is none.
 */
export function stepTypeOf(
  steps: { type: "step" | "sleep" | "waitForEvent"; name: string; count?: number }[],
  name: string,
  count: number,
): "do" | "sleep" | "waitForEvent" {
  const kinds = [
    ...new Set(steps.filter((s) => s.name === name && (s.count ?? 1) === count).map((s) => KIND_OF[s.type])),
  ];
  if (kinds.length === 1) return kinds[0]!;
  if (kinds.length === 0) return "do";
  throw new UsageError(
    `step name "${name}" is used by ${kinds.length} kinds of step (${kinds.join(", ")}): add ${kinds
      .map((k) => `--from-step-type ${k}`)
      .join(" or ")}`,
  );
}
