import { MAX_BATCH_SIZE } from "@cairn/core";
import type { Command } from "commander";
import { type CliContext, UsageError } from "../context.ts";

/** `cairn workflows instances delete <workflow> <ids…>`: delete up to 100 instances. */
export function registerInstancesDelete(parent: Command, ctx: CliContext): void {
  parent
    .command("delete")
    .description(`Delete instances and their history (at most ${MAX_BATCH_SIZE} per call)`)
    .argument("<workflow>", "workflow name")
    .argument("<ids...>", 'instance ids ("latest": the most recently created instance)')
    .action(async (workflow: string, ids: string[], _options, command: Command) => {
      if (ids.length > MAX_BATCH_SIZE)
        throw new UsageError(`at most ${MAX_BATCH_SIZE} instances per call, got ${ids.length}`);
      const client = ctx.client(command);
      const resolved = [] as string[];
      for (const id of ids) resolved.push((await ctx.resolveId(client, workflow, id)).id);
      const result = await client.deleteBatch(workflow, [...new Set(resolved)]);
      if (ctx.globals(command).json) ctx.print(command, "", result);
      else {
        const deleted = result.deleted.map((d) => d.id);
        if (deleted.length > 0)
          ctx.io.stdout(
            `🗑️ Deleted ${deleted.length} instance${deleted.length === 1 ? "" : "s"} from ${workflow}: ${deleted.join(", ")}\n`,
          );
        for (const e of result.errors) ctx.io.stderr(`✘ ${e.id}: ${e.message}\n`);
      }
      if (result.errors.length > 0) throw new DeleteFailed(result.errors.length);
    });
}

/** Some ids could not be deleted: already reported, exit 1. */
export class DeleteFailed extends Error {
  override name = "DeleteFailed";
  readonly count: number;
  constructor(count: number) {
    super(`${count} instance${count === 1 ? "" : "s"} could not be deleted`);
    this.count = count;
  }
}
