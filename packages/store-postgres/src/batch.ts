import type { InstanceStatus, NewHistoryEntry } from "@cairn/core";
import type { StepCommit } from "@cairn/store";

type Pending = {
  commit: StepCommit;
  resolve: (status: InstanceStatus | undefined) => void;
  reject: (error: unknown) => void;
};

export interface CommitBatcherOptions {
  /** Writes several commits (of distinct instances) in one statement; one status per commit. */
  many(commits: StepCommit[]): Promise<(InstanceStatus | undefined)[]>;
  /** Writes one commit. */
  one(commit: StepCommit): Promise<InstanceStatus | undefined>;
  /** Batches written at the same time (each on a connection of its own); default 3. */
  concurrency?: number;
  /** Commits per batch; default 256. */
  maxBatch?: number;
  /** Bytes of step results per batch, roughly; default 4 MiB. */
  maxBytes?: number;
}

/**
 * Group commit for `steps.commit` outside transactions: the commits requested while the event loop is
 * busy, or while earlier batches are being written, go to the server together as one statement.
 * Round trips, not the server's work, are what a step commit costs most, so a burst of runs shares
 * them. Each commit is still fenced and succeeds or fails on its own: when a batch fails as a whole
 * (one bad value), its commits are written one by one. Commits of one instance keep their order: a
 * batch holds at most one commit per instance.
 */
export class CommitBatcher {
  readonly #options: Required<CommitBatcherOptions>;
  #queue: Pending[] = [];
  #writing = 0;
  #scheduled = false;

  constructor(options: CommitBatcherOptions) {
    this.#options = { concurrency: 3, maxBatch: 256, maxBytes: 4 * 2 ** 20, ...options };
  }

  commit(commit: StepCommit): Promise<InstanceStatus | undefined> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ commit, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0 || this.#writing >= this.#options.concurrency) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#write();
    });
  }

  #take(): Pending[] {
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const instances = new Set<string>();
    let bytes = 0;
    for (const p of this.#queue) {
      const key = `${p.commit.workflow}\u0000${p.commit.instanceId}`;
      const size = p.commit.step.result?.byteLength ?? 0;
      const full =
        batch.length >= this.#options.maxBatch || (batch.length > 0 && bytes + size > this.#options.maxBytes);
      if (full || instances.has(key)) {
        rest.push(p);
        // A later commit of the same instance must not overtake this one.
        instances.add(key);
        continue;
      }
      instances.add(key);
      bytes += size;
      batch.push(p);
    }
    this.#queue = rest;
    return batch;
  }

  async #write(): Promise<void> {
    const batch = this.#take();
    if (batch.length === 0) return;
    this.#writing++;
    this.#schedule();
    try {
      if (batch.length === 1) {
        await this.#one(batch[0]!);
        return;
      }
      let statuses: (InstanceStatus | undefined)[];
      try {
        statuses = await this.#options.many(batch.map((p) => p.commit));
      } catch {
        await Promise.all(batch.map((p) => this.#one(p)));
        return;
      }
      batch.forEach((p, i) => p.resolve(statuses[i]));
    } finally {
      this.#writing--;
      this.#schedule();
    }
  }

  async #one(p: Pending): Promise<void> {
    try {
      p.resolve(await this.#options.one(p.commit));
    } catch (e) {
      p.reject(e);
    }
  }
}

/** The history arrays of a batch: every commit's entries, its status entry last. */
export function batchHistory(commits: StepCommit[]): {
  entries: NewHistoryEntry[];
  commitIndex: number[];
  place: number[];
} {
  const entries: NewHistoryEntry[] = [];
  const commitIndex: number[] = [];
  const place: number[] = [];
  commits.forEach((c, i) => {
    const own = c.statusEntry ? [...c.history, c.statusEntry] : c.history;
    own.forEach((e, j) => {
      entries.push(e);
      commitIndex.push(i + 1);
      place.push(j + 1);
    });
  });
  return { entries, commitIndex, place };
}

/**
 * Reads of one instance's rows (its steps, its events) asked for at about the same time, answered by
 * one statement for all of them: a burst of claimed runs loads its state in a few round trips.
 */
export class ListBatcher<R extends { workflow: string; instanceId: string }> {
  readonly #many: (workflows: string[], ids: string[]) => Promise<R[]>;
  readonly #concurrency: number;
  #queue: { workflow: string; id: string; resolve: (rows: R[]) => void; reject: (e: unknown) => void }[] = [];
  #reading = 0;
  #scheduled = false;

  constructor(many: (workflows: string[], ids: string[]) => Promise<R[]>, concurrency = 2) {
    this.#many = many;
    this.#concurrency = concurrency;
  }

  list(workflow: string, id: string): Promise<R[]> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ workflow, id, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0 || this.#reading >= this.#concurrency) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#read();
    });
  }

  async #read(): Promise<void> {
    const batch = this.#queue.splice(0, 512);
    if (batch.length === 0) return;
    this.#reading++;
    this.#schedule();
    try {
      const rows = await this.#many(
        batch.map((b) => b.workflow),
        batch.map((b) => b.id),
      );
      const byKey = new Map<string, R[]>();
      for (const r of rows) {
        const key = `${r.workflow}\u0000${r.instanceId}`;
        const list = byKey.get(key);
        if (list) list.push(r);
        else byKey.set(key, [r]);
      }
      for (const b of batch) b.resolve(byKey.get(`${b.workflow}\u0000${b.id}`) ?? []);
    } catch (e) {
      for (const b of batch) b.reject(e);
    } finally {
      this.#reading--;
      this.#schedule();
    }
  }
}
