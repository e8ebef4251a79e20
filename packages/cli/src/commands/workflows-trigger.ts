import type { Command } from "commander";
import { type CliContext, parseJsonArgument } from "../context.ts";

/** `cairn workflows trigger <workflow> [params] [--id <id>]`: create an instance. */
export function registerWorkflowsTrigger(parent: Command, ctx: CliContext): void {
  parent
    .command("trigger")
    .description("Create (trigger) an instance of a workflow")
    .argument("<workflow>", "workflow name")
    .argument("[params]", "the instance's params, as JSON", "")
    .option("--id <id>", "instance id (default: a random UUID)")
    .addHelpText("after", `\nExample:\n  cairn workflows trigger checkout '{"orderId":"42"}' --id order-42\n`)
    .action(async (workflow: string, params: string, options: { id?: string }, command: Command) => {
      const body: { instance_id?: string; params?: unknown } = {};
      if (params !== "") body.params = parseJsonArgument(params, "params");
      if (options.id !== undefined) body.instance_id = options.id;
      const instance = await ctx.client(command).createInstance(workflow, body);
      ctx.print(command, `🚀 Workflow instance "${instance.id}" has been queued successfully`, instance);
    });
}
