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

/** Called with every Cairn `openCairn` opens (the cost benchmark attaches its metrics here). */
let onOpen: ((cairn: Cairn) => void) | undefined;

export function setOpenHook(hook: ((cairn: Cairn) => void) | undefined): void {
  onOpen = hook;
}

export async function openCairn(
  dir: string,
  synchronous: Synchronous,
  workflows: WorkflowConfig[],
  options: BenchCairnOptions = {},
): Promise<BenchCairn> {
  const path = join(dir, `bench-${process.pid}-${++databases}.db`);
  const cairn = await createCairn({ ...options, store: path, synchronous, workflows });
  const commits = countCommits(cairn);
  onOpen?.(cairn);
  return { cairn, path, commits, close: () => cairn.close() };
}

/** Counts the store's database transactions (with SQLite, each one is one COMMIT: a WAL sync with synchronous=FULL). */
function countCommits(cairn: Cairn): () => number {
  let n = 0;
  cairn.store.onTransaction(() => n++);
  return () => n;
}
