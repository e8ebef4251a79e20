import type { Command } from "commander";
import { type CliContext, parseJsonArgument, readJsonFile, UsageError } from "../context.ts";

/** `cairn workflows trigger <workflow> [params] [--id <id>]`: create an instance. */
export function registerWorkflowsTrigger(parent: Command, ctx: CliContext): void {
  parent
    .command("trigger")
    .description("Create (trigger) an instance of a workflow")
    .argument("<workflow>", "workflow name")
    .argument("[params]", "the instance's params, as JSON", "")
    .option("--id <id>", "instance id (default: a random UUID)")
    .option("--params-file <file>", 'read the params (JSON) from a file, or "-" for standard input')
    .addHelpText(
      "after",
      `\nExamples:\n  cairn workflows trigger checkout '{"orderId":"42"}' --id order-42\n  cairn workflows trigger import --params-file big.json\n`,
    )
    .action(
      async (
        workflow: string,
        params: string,
        options: { id?: string; paramsFile?: string },
        command: Command,
      ) => {
        const body: { instance_id?: string; params?: unknown } = {};
        if (params !== "" && options.paramsFile !== undefined)
          throw new UsageError("give the params either as an argument or with --params-file, not both");
        if (params !== "") body.params = parseJsonArgument(params, "params");
        if (options.paramsFile !== undefined)
          body.params = await readJsonFile(ctx, options.paramsFile, "--params-file");
        if (options.id !== undefined) body.instance_id = options.id;
        const instance = await ctx.client(command).createInstance(workflow, body);
        ctx.print(command, `🚀 Workflow instance "${instance.id}" has been queued successfully`, instance);
      },
    );
}
