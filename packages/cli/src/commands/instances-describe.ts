import type { Command } from "commander";
import { type CliContext, UsageError } from "../context.ts";
import { describeInstance } from "../describe-instance.ts";

interface DescribeFlags {
  stepOutput: boolean;
  truncateOutputLimit: number;
}

/** `cairn workflows instances describe <workflow> [id|latest]`: an instance and its steps. */
export function registerInstancesDescribe(parent: Command, ctx: CliContext): void {
  parent
    .command("describe")
    .description("Describe an instance: status, timings, error, and each step with its attempts")
    .argument("<workflow>", "workflow name")
    .argument("[id]", 'instance id, or "latest" (the most recently created instance)', "latest")
    .option("--step-output [bool]", "show step outputs", parseBool("--step-output"), true)
    .option("--no-step-output", "hide step outputs")
    .option(
      "--truncate-output-limit <n>",
      "characters of output to show before truncating (0: no limit)",
      nonNegativeInt("--truncate-output-limit"),
      5000,
    )
    .action(async (workflow: string, id: string, options: DescribeFlags, command: Command) => {
      const client = ctx.client(command);
      const target = await ctx.resolveId(client, workflow, id);
      const detail = await client.getInstance(workflow, target.id);
      if (ctx.globals(command).json) return ctx.print(command, "", detail);
      const text = describeInstance(detail, {
        now: ctx.io.now(),
        width: ctx.io.columns,
        stepOutput: options.stepOutput,
        truncateOutputLimit: options.truncateOutputLimit,
        latest: target.latest,
        utc: ctx.io.utc,
      });
      ctx.io.stdout(`${text}\n`);
    });
}

function parseBool(what: string): (value: string) => boolean {
  return (value) => {
    if (/^(true|1|yes)$/i.test(value)) return true;
    if (/^(false|0|no)$/i.test(value)) return false;
    throw new UsageError(`${what} must be true or false, got "${value}"`);
  };
}

function nonNegativeInt(what: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new UsageError(`${what} must be a whole number, got "${value}"`);
    return Number(value);
  };
}
