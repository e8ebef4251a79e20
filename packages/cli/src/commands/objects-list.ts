import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { formatDate, table } from "../format.ts";
import { objectsApi } from "./objects-api.ts";

/** `cairn objects list [binding]`: the namespaces, or the objects of one, most recently used first. */
export function registerObjectsList(parent: Command, ctx: CliContext): void {
  parent
    .command("list [binding]")
    .description("List the Durable Object namespaces, or the objects of one")
    .option("--limit <n>", "at most this many objects", "100")
    .action(async (binding: string | undefined, options: { limit: string }, command: Command) => {
      if (binding === undefined) {
        const namespaces = await objectsApi(ctx, command, "");
        if (ctx.globals(command).json) return ctx.print(command, "", namespaces);
        if (namespaces.length === 0) return ctx.io.stdout("No Durable Object namespaces.\n");
        const rows = namespaces.map((n: any) => [
          n.binding,
          n.className,
          String(n.objects),
          String(n.loaded),
        ]);
        return ctx.io.stdout(`${table(["Binding", "Class", "Objects", "Loaded"], rows)}\n`);
      }
      const result = await objectsApi(
        ctx,
        command,
        `/${encodeURIComponent(binding)}?limit=${encodeURIComponent(options.limit)}`,
      );
      if (ctx.globals(command).json) return ctx.print(command, "", result.objects);
      if (result.objects.length === 0) return ctx.io.stdout(`No objects in ${binding}.\n`);
      const rows = result.objects.map((o: any) => [
        o.id,
        o.name ?? "-",
        formatDate(o.lastAccess, { utc: ctx.io.utc }),
        o.alarm === null ? "-" : formatDate(o.alarm, { utc: ctx.io.utc }),
        o.loaded ? "yes" : "no",
      ]);
      ctx.io.stdout(`${table(["Id", "Name", "Last access", "Alarm", "Loaded"], rows)}\n`);
    });
}
