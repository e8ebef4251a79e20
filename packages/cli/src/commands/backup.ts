import { resolve } from "node:path";
import { parseStoreLocation } from "@cairn/core";
import type { Command } from "commander";
import { type CliContext, UsageError } from "../context.ts";

interface BackupFlags {
  store: string;
  force?: boolean;
}

/**
 * `cairn backup <file> [--store <path>] [--force]`: an online backup of a SQLite store, safe while a
 * server is writing to it (never `cp` a live WAL database). PostgreSQL stores are backed up with
 * PostgreSQL's own tools.
 */
export function registerBackup(parent: Command, ctx: CliContext): void {
  parent
    .command("backup")
    .description("Back up a SQLite store to a file, safely while a server is using it")
    .argument("<file>", "where to write the backup (a new SQLite file)")
    .option("--store <path>", "the SQLite store to back up", "./.cairn/cairn.db")
    .option("--force", "overwrite the file if it exists")
    .addHelpText(
      "after",
      "\nExample:\n  cairn backup /backups/cairn-$(date +%F).db --store /var/lib/cairn/cairn.db\n",
    )
    .action(async (file: string, options: BackupFlags, command: Command) => {
      let location: ReturnType<typeof parseStoreLocation>;
      try {
        location = parseStoreLocation(options.store);
      } catch (e) {
        throw new UsageError(`--store: ${(e as Error).message}`);
      }
      if (location.kind === "postgres")
        throw new UsageError(
          "backup copies SQLite stores; back up a PostgreSQL store with pg_dump (e.g. pg_dump --schema=cairn)",
        );
      if (location.kind === "memory")
        throw new UsageError("an in-memory store (:memory:) has nothing to back up");
      const { backupSqliteStore } = await import("@cairn/store-sqlite");
      const result = await backupSqliteStore(resolve(ctx.io.cwd, location.path), resolve(ctx.io.cwd, file), {
        overwrite: options.force === true,
      });
      ctx.print(
        command,
        `✓ Backed up ${result.instances} instance${result.instances === 1 ? "" : "s"} to ${result.path} (${result.bytes} bytes)`,
        result,
      );
    });
}
