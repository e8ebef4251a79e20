import type { Command } from "commander";
import { type CliContext, UsageError } from "../context.ts";

interface MigrateFlags {
  store?: string;
}

/**
 * `cairn migrate --store postgres://…[?schema=name]`: brings a PostgreSQL store's schema up to this
 * version of Cairn. Safe to run from several machines at once (migrations take an advisory lock).
 * Fails (exit 1) with the store's message when the schema is newer than this Cairn understands.
 */
export function registerMigrate(parent: Command, ctx: CliContext): void {
  parent
    .command("migrate")
    .description("Create or upgrade the schema of a PostgreSQL store (SQLite files migrate when opened)")
    .option("--store <url>", "postgres://user@host/db, optionally ?schema=name (default: $CAIRN_STORE)")
    .action(async (options: MigrateFlags, command: Command) => {
      const store = options.store ?? ctx.io.env.CAIRN_STORE;
      if (!store) throw new UsageError("migrate needs --store postgres://…");
      if (!/^postgres(ql)?:\/\//.test(store))
        throw new UsageError("--store must be a postgres:// URL (SQLite files migrate when opened)");
      const url = new URL(store);
      const schema = url.searchParams.get("schema") ?? "cairn";
      url.searchParams.delete("schema");
      const { openPostgresStore, LATEST_VERSION } = await import("@cairn/store-postgres");
      const opened = await openPostgresStore({ url: url.toString(), schema, poolSize: 1 });
      await opened.close();
      ctx.print(command, `✓ Schema "${schema}" is at version ${LATEST_VERSION}`, {
        schema,
        version: LATEST_VERSION,
      });
    });
}
