import type { Command } from "commander";
import { type CliContext, parseJsonArgument, readJsonFile, UsageError } from "../context.ts";

/** `cairn workflows instances send-event <workflow> <id|latest> --type <type> [--payload <json>]` */
export function registerInstancesSendEvent(parent: Command, ctx: CliContext): void {
  parent
    .command("send-event")
    .description("Send an event to an instance (delivered to a waitForEvent of that type, or buffered)")
    .argument("<workflow>", "workflow name")
    .argument("<id>", 'instance id, or "latest" (the most recently created instance)')
    .requiredOption("--type <type>", "event type")
    .option("--payload <json>", "event payload, as JSON (default {})")
    .option("--payload-file <file>", 'read the payload (JSON) from a file, or "-" for standard input')
    .addHelpText(
      "after",
      `\nExample:\n  cairn workflows instances send-event checkout order-42 \\\n    --type approved --payload '{"by":"ana"}'\n`,
    )
    .action(
      async (
        workflow: string,
        id: string,
        options: { type: string; payload?: string; payloadFile?: string },
        command: Command,
      ) => {
        if (options.payload !== undefined && options.payloadFile !== undefined)
          throw new UsageError("give the payload either with --payload or with --payload-file, not both");
        const payload =
          options.payloadFile !== undefined
            ? await readJsonFile(ctx, options.payloadFile, "--payload-file")
            : parseJsonArgument(options.payload ?? "{}", "--payload");
        const client = ctx.client(command);
        const target = await ctx.resolveId(client, workflow, id);
        await client.sendEvent(workflow, target.id, options.type, payload);
        ctx.print(
          command,
          `📤 The event with type "${options.type}" and payload "${JSON.stringify(payload)}" was sent to the instance "${target.id}" from ${workflow}`,
          { id: target.id, workflow, type: options.type, payload },
        );
      },
    );
}
