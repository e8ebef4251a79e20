import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Synchronous } from "./metrics.ts";

/**
 * The ceiling for one writer: single-row transactions (BEGIN; INSERT; COMMIT) committed one after
 * another for `seconds`, on a WAL database in `dir` with the given `synchronous` setting.
 */
export function rawCommitRate(dir: string, synchronous: Synchronous, seconds: number): number {
  const db = new DatabaseSync(join(dir, "raw-commit.db"));
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${synchronous}`);
    db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    const begin = db.prepare("BEGIN IMMEDIATE");
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    const commit = db.prepare("COMMIT");
    const value = new Uint8Array(64);
    const start = performance.now();
    const end = start + seconds * 1000;
    let n = 0;
    let now = start;
    while (now < end) {
      begin.run();
      insert.run(value);
      commit.run();
      n++;
      now = performance.now();
    }
    return n / ((now - start) / 1000);
  } finally {
    db.close();
  }
}
