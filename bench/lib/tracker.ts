import { DatabaseSync } from "node:sqlite";
import type { BenchCairn } from "./cairn.ts";

/** What the store says about an instance, as far as a tracker needs it. */
export interface RowState {
  status: string;
  owner: string | null;
  error: string | null;
}

type Predicate = (row: RowState) => boolean;

interface Watch {
  until: Predicate;
  resolve(at: number): void;
  reject(error: Error): void;
}

const FAILED = new Set(["errored", "terminated"]);

export const isComplete: Predicate = (r) => r.status === "complete";
/** Waiting, in memory or not. */
export const isWaiting: Predicate = (r) => r.status === "waiting";
/** Waiting and unloaded from memory: its run was evicted to the store. */
export const isParked: Predicate = (r) => r.status === "waiting" && r.owner === null;

/**
 * Resolves when instances reach a state, detected with `runtime.onChange` and a read of the stored
 * status (no polling). Resolves with `performance.now()` at detection.
 *
 * The reads must not weigh on what is measured: changes are collected until the current microtask
 * queue drains (one group commit notifies all its instances in one go), then read in one read
 * transaction on a separate read-only connection (WAL: it sees every commit, and takes no lock the
 * engine waits for). A read outside a transaction costs about 4× one inside.
 */
export class Tracker {
  readonly #workflow: string;
  readonly #watches = new Map<string, Watch>();
  readonly #dirty = new Set<string>();
  readonly #db: DatabaseSync;
  readonly #select;
  readonly #stop: () => void;

  constructor(bench: BenchCairn, workflow: string) {
    this.#workflow = workflow;
    this.#db = new DatabaseSync(bench.path, { readOnly: true });
    this.#select = this.#db.prepare(
      "SELECT status, owner, error FROM instances WHERE workflow = ? AND id = ?",
    );
    this.#stop = bench.cairn.runtime.onChange((wf, id) => {
      if (wf === this.#workflow && this.#watches.has(id)) this.#mark(id);
    });
  }

  /** Call before the change can happen (before `create`, before `sendEvent`). */
  when(id: string, until: Predicate = isComplete): Promise<number> {
    return new Promise((resolve, reject) => this.#watches.set(id, { until, resolve, reject }));
  }

  dispose(): void {
    this.#stop();
    this.#watches.clear();
    this.#db.close();
  }

  #mark(id: string): void {
    if (this.#dirty.size === 0) queueMicrotask(() => this.#check());
    this.#dirty.add(id);
  }

  #check(): void {
    const ids = [...this.#dirty];
    this.#dirty.clear();
    if (!this.#db.isOpen) return;
    this.#db.exec("BEGIN");
    const rows = ids.map((id) => this.#select.get(this.#workflow, id) as RowState | undefined);
    this.#db.exec("COMMIT");
    const now = performance.now();
    for (const [i, id] of ids.entries()) this.#settle(id, rows[i], now);
  }

  #settle(id: string, row: RowState | undefined, now: number): void {
    const watch = this.#watches.get(id);
    if (!row || !watch) return;
    if (watch.until(row)) {
      this.#watches.delete(id);
      watch.resolve(now);
    } else if (FAILED.has(row.status)) {
      this.#watches.delete(id);
      watch.reject(new Error(`instance ${id} is ${row.status}: ${row.error}`));
    }
  }
}
