import { join } from "node:path";
import { type Cairn, type CairnOptions, createCairn, type WorkflowConfig } from "cairnjs";
import type { Synchronous } from "./metrics.ts";

let databases = 0;

/** A Cairn on a new database file in `dir`, with a counter of the SQLite transactions it commits. */
export interface BenchCairn {
  cairn: Cairn;
  path: string;
  /** SQLite COMMITs so far (each one is one WAL sync with synchronous=FULL). */
  commits(): number;
  close(): Promise<void>;
}

export type BenchCairnOptions = Omit<CairnOptions, "store" | "synchronous" | "workflows">;

export async function openCairn(
  dir: string,
  synchronous: Synchronous,
  workflows: WorkflowConfig[],
  options: BenchCairnOptions = {},
): Promise<BenchCairn> {
  const path = join(dir, `bench-${process.pid}-${++databases}.db`);
  const cairn = await createCairn({ ...options, store: path, synchronous, workflows });
  const commits = countCommits(cairn);
  return { cairn, path, commits, close: () => cairn.close() };
}

/**
 * Counts COMMITs by wrapping `exec` of the store's connection (bench-only instrumentation: the
 * SQLite store runs BEGIN/SAVEPOINT/COMMIT through `db.exec`).
 */
function countCommits(cairn: Cairn): () => number {
  const db = (cairn.store as unknown as { db?: { exec(sql: string): void } }).db;
  if (!db) return () => Number.NaN;
  let n = 0;
  const exec = db.exec.bind(db);
  db.exec = (sql: string) => {
    if (sql === "COMMIT") n++;
    exec(sql);
  };
  return () => n;
}
