import { existsSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { sqlite } from "./node-sqlite.ts";

export interface BackupResult {
  /** The backup file written (absolute). */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** Instances it holds. */
  instances: number;
}

/**
 * Copies a live SQLite store to `destination` safely while a server keeps writing to it: SQLite's
 * online backup (`node:sqlite`'s `backup`, in one step, so the copy is one consistent moment;
 * `VACUUM INTO` on a Node.js without it), never a file copy of a WAL database. The copy is written
 * beside the destination and renamed into place once it passed `PRAGMA quick_check`, so a
 * destination file is either the old one or a whole new backup. Refuses to overwrite unless
 * `overwrite` is set.
 *
 * ```ts
 * await backupSqliteStore("/var/lib/cairn/cairn.db", `/backups/cairn-${Date.now()}.db`);
 * ```
 */
export async function backupSqliteStore(
  source: string,
  destination: string,
  options: { overwrite?: boolean } = {},
): Promise<BackupResult> {
  const from = resolve(source);
  const to = resolve(destination);
  if (!existsSync(from) || !statSync(from).isFile()) throw new Error(`No SQLite store at ${from}`);
  if (from === to) throw new Error("The backup must go to another file than the store");
  if (existsSync(to) && !options.overwrite)
    throw new Error(`${to} already exists (pass --force to overwrite it)`);
  if (!existsSync(dirname(to))) throw new Error(`The directory ${dirname(to)} does not exist`);
  const { DatabaseSync, backup } = sqlite();
  const partial = `${to}.partial-${process.pid}`;
  const db = new DatabaseSync(from);
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'instances'")
      .all();
    if (tables.length === 0) throw new Error(`${from} is not a Cairn store (it has no instances table)`);
    if (typeof backup === "function") await backup(db, partial, { rate: 2 ** 30 });
    else db.prepare("VACUUM INTO ?").run(partial);
  } catch (e) {
    rmSync(partial, { force: true });
    throw e;
  } finally {
    db.close();
  }
  let instances = 0;
  const copy = new DatabaseSync(partial);
  try {
    const check = copy.prepare("PRAGMA quick_check").get() as { quick_check?: string } | undefined;
    if (check?.quick_check !== "ok")
      throw new Error(`The backup failed its integrity check: ${check?.quick_check}`);
    instances = Number((copy.prepare("SELECT count(*) AS n FROM instances").get() as { n: number }).n);
    // One file: fold the copy's WAL (if any) back in, so the backup is just `destination`.
    copy.exec("PRAGMA journal_mode = DELETE");
  } catch (e) {
    copy.close();
    rmSync(partial, { force: true });
    throw e;
  }
  copy.close();
  renameSync(partial, to);
  return { path: to, bytes: statSync(to).size, instances };
}
