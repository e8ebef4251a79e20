import { INSTANCE_STATUSES, type InstanceStatus } from "@cairn/core";
import { type Command, Option } from "commander";
import { type CliContext, positiveInt } from "../context.ts";
import { formatDate, statusLabel, table } from "../format.ts";

interface ListOptions {
  status?: InstanceStatus;
  reverse?: boolean;
  perPage: number;
  cursor?: string;
}

/** `cairn workflows instances list <workflow>`: one page of instances, newest first. */
export function registerInstancesList(parent: Command, ctx: CliContext): void {
  parent
    .command("list")
    .description("List the instances of a workflow, newest first")
    .argument("<workflow>", "workflow name")
    .addOption(new Option("--status <status>", "only instances in this status").choices(INSTANCE_STATUSES))
    .option("--reverse", "oldest first")
    .option("--per-page <n>", "instances per page", positiveInt("--per-page"), 50)
    .option("--cursor <cursor>", "the page after this cursor (printed under a full page)")
    .action(async (workflow: string, options: ListOptions, command: Command) => {
      const page = await ctx.client(command).listInstances(workflow, {
        status: options.status,
        per_page: options.perPage,
        direction: options.reverse ? "asc" : "desc",
        cursor: options.cursor,
      });
      if (ctx.globals(command).json)
        return ctx.print(command, "", { instances: page.instances, cursor: page.cursor ?? null });
      if (page.instances.length === 0) {
        ctx.io.stdout(
          `No instances of "${workflow}"${options.status ? ` with status ${options.status}` : ""}.\n`,
        );
        return;
      }
      const time = { utc: ctx.io.utc };
      const rows = page.instances.map((i) => [
        i.id,
        formatDate(i.created_on, time),
        formatDate(i.modified_on, time),
        statusLabel(i.status),
      ]);
      let text = table(["Instance ID", "Created", "Modified", "Status"], rows);
      if (page.cursor) text += `\n\nMore instances: add --cursor ${page.cursor}`;
      ctx.io.stdout(`${text}\n`);
    });
}
