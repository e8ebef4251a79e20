import type { Command } from "commander";
import { type CliContext, parseJsonArgument } from "../context.ts";

/** `cairn workflows instances send-event <workflow> <id|latest> --type <type> [--payload <json>]` */
export function registerInstancesSendEvent(parent: Command, ctx: CliContext): void {
  parent
    .command("send-event")
    .description("Send an event to an instance (delivered to a waitForEvent of that type, or buffered)")
    .argument("<workflow>", "workflow name")
    .argument("<id>", 'instance id, or "latest" (the most recently created instance)')
    .requiredOption("--type <type>", "event type")
    .option("--payload <json>", "event payload, as JSON", "{}")
    .addHelpText(
      "after",
      `\nExample:\n  cairn workflows instances send-event checkout order-42 \\\n    --type approved --payload '{"by":"ana"}'\n`,
    )
    .action(
      async (workflow: string, id: string, options: { type: string; payload: string }, command: Command) => {
        const payload = parseJsonArgument(options.payload, "--payload");
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
