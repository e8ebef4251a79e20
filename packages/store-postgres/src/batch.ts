type Pending<In, Out> = { item: In; resolve: (out: Out) => void; reject: (error: unknown) => void };

export interface WriteBatcherOptions<In, Out> {
  /** The instance an item writes to: a batch holds at most one item per instance. */
  instance(item: In): string;
  /** Items batch only with items of the same group (same statement shape); default one group. */
  group?(item: In): string;
  /** Bytes an item adds to a batch, roughly; default 0. */
  size?(item: In): number;
  /** Writes several items (of distinct instances) in one statement; one result per item, in order. */
  many(items: In[]): Promise<Out[]>;
  /** Writes one item. */
  one(item: In): Promise<Out>;
  /** Batches written at the same time (each on a connection of its own); default 3. */
  concurrency?: number;
  /** Items per batch; default 256. */
  maxBatch?: number;
  /** Bytes per batch; default 4 MiB. */
  maxBytes?: number;
}

/**
 * Group commit for single-statement writes outside transactions (step commits, a run's end): the
 * writes requested while the event loop is busy, or while earlier batches are being written, go to
 * the server together as one statement. Round trips, not the server's work, are what such a write
 * costs most, so a burst of runs shares them. Each write is still fenced and succeeds or fails on its
 * own: when a batch fails as a whole (one bad value), its writes are retried one by one. Writes to
 * one instance keep their order: a batch holds at most one write per instance, and an instance's
 * next write waits until the batch holding its previous one is written (so concurrent batches never
 * lock the same rows).
 */
export class WriteBatcher<In, Out> {
  readonly #o: Required<Omit<WriteBatcherOptions<In, Out>, "group" | "size">> &
    Pick<WriteBatcherOptions<In, Out>, "group" | "size">;
  #queue: Pending<In, Out>[] = [];
  /** Instances with a write in a batch being written: their next writes wait for it. */
  readonly #busy = new Set<string>();
  #writing = 0;
  #scheduled = false;

  constructor(options: WriteBatcherOptions<In, Out>) {
    this.#o = { concurrency: 3, maxBatch: 256, maxBytes: 4 * 2 ** 20, ...options };
  }

  write(item: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      // Idle: write at once (an unloaded worker pays no wait); busy: gather until the loop turns.
      if (this.#writing === 0 && !this.#scheduled && this.#queue.length === 1) void this.#write();
      else this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0 || this.#writing >= this.#o.concurrency) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#write();
    });
  }

  #take(): Pending<In, Out>[] {
    const batch: Pending<In, Out>[] = [];
    const rest: Pending<In, Out>[] = [];
    const instances = new Set<string>();
    const group = this.#queue.length > 0 ? this.#o.group?.(this.#queue[0]!.item) : undefined;
    let bytes = 0;
    for (const p of this.#queue) {
      const key = this.#o.instance(p.item);
      const size = this.#o.size?.(p.item) ?? 0;
      const fits =
        batch.length < this.#o.maxBatch &&
        (batch.length === 0 || bytes + size <= this.#o.maxBytes) &&
        this.#o.group?.(p.item) === group;
      // A later write of an instance left for the next batch, or still being written, stays behind it.
      if (!fits || instances.has(key) || this.#busy.has(key)) rest.push(p);
      else {
        bytes += size;
        batch.push(p);
      }
      instances.add(key);
    }
    this.#queue = rest;
    return batch;
  }

  async #write(): Promise<void> {
    const batch = this.#take();
    if (batch.length === 0) return;
    const keys = batch.map((p) => this.#o.instance(p.item));
    for (const k of keys) this.#busy.add(k);
    this.#writing++;
    this.#schedule();
    try {
      if (batch.length === 1) {
        await this.#one(batch[0]!);
        return;
      }
      let results: Out[];
      try {
        results = await this.#o.many(batch.map((p) => p.item));
      } catch {
        await Promise.all(batch.map((p) => this.#one(p)));
        return;
      }
      for (const [i, p] of batch.entries()) p.resolve(results[i]!);
    } finally {
      for (const k of keys) this.#busy.delete(k);
      this.#writing--;
      this.#schedule();
    }
  }

  async #one(p: Pending<In, Out>): Promise<void> {
    try {
      p.resolve(await this.#o.one(p.item));
    } catch (e) {
      p.reject(e);
    }
  }
}

/** The history arrays of a batch: each item's entries in order, with the item (1-based) and place. */
export function batchHistory<T>(lists: readonly (readonly T[])[]): {
  entries: T[];
  item: number[];
  place: number[];
} {
  const entries: T[] = [];
  const item: number[] = [];
  const place: number[] = [];
  lists.forEach((own, i) => {
    own.forEach((e, j) => {
      entries.push(e);
      item.push(i + 1);
      place.push(j + 1);
    });
  });
  return { entries, item, place };
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
