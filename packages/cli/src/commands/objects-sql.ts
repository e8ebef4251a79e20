import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { table } from "../format.ts";
import { objectsApi } from "./objects-api.ts";

/** `cairn objects sql <binding> <name> "<query>" [--write]`: SQL on one object's database. */
export function registerObjectsSql(parent: Command, ctx: CliContext): void {
  parent
    .command("sql <binding> <name> <query>")
    .description("Run SQL on one object's database (its name or 64-hex id); read-only unless --write")
    .option("--write", "allow writes (runs as an event of the object)")
    .action(
      async (
        binding: string,
        name: string,
        query: string,
        options: { write?: boolean },
        command: Command,
      ) => {
        const result = await objectsApi(
          ctx,
          command,
          `/${encodeURIComponent(binding)}/${encodeURIComponent(name)}/sql`,
          {
            method: "POST",
            body: { query, ...(options.write ? { write: true } : {}) },
          },
        );
        if (ctx.globals(command).json) return ctx.print(command, "", result);
        if (result.columns.length === 0) return ctx.io.stdout(`OK (${result.rowsWritten} rows written)\n`);
        const rows = result.rows.map((r: unknown[]) =>
          r.map((v) => (typeof v === "string" ? v : JSON.stringify(v))),
        );
        ctx.io.stdout(`${table(result.columns, rows)}\n(${result.rows.length} rows)\n`);
      },
    );
}
