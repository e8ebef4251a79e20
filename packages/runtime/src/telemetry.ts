import type { NewHistoryEntry } from "@cairn/core";

/**
 * What the runtime tells observers (Prometheus in `@cairn/server`, or a host's own): the history
 * entries it stored and what each run cost. Entries are the ones in the store (outputs are never in
 * them; errors are), reported after the write succeeded. Observers must be quick and must not throw.
 */
export interface Telemetry {
  /**
   * Entries a run or a command stored. `createdAt` is given with an instance's final entry
   * (`workflow_completed|errored|terminated`), for the instance's duration.
   */
  stored?(entries: readonly NewHistoryEntry[], instance?: { createdAt: number }): void;
  /** A run parked or ended: the CPU and wall time (ms) it used while loaded. */
  ran?(workflow: string, cpuTimeMs: number, wallTimeMs: number): void;
  /** A run lost its claim (another worker took the instance, or a command fenced it off). */
  leaseLost?(workflow: string): void;
  /** A run could not reach the store (a `StoreError` it could not hand to user code). */
  storeError?(): void;
  /** The store (`kind`: sqlite, postgres) ended a database transaction that took `durationMs`. */
  storeTransaction?(store: string, durationMs: number): void;
}

/** Calls every observer of `list`; `undefined` when there are none, so runs skip the calls. */
export function composeTelemetry(list: readonly Telemetry[]): Telemetry | undefined {
  if (list.length === 0) return undefined;
  if (list.length === 1) return list[0];
  return {
    stored: (entries, instance) => {
      for (const t of list) t.stored?.(entries, instance);
    },
    ran: (workflow, cpu, wall) => {
      for (const t of list) t.ran?.(workflow, cpu, wall);
    },
    leaseLost: (workflow) => {
      for (const t of list) t.leaseLost?.(workflow);
    },
    storeError: () => {
      for (const t of list) t.storeError?.();
    },
    storeTransaction: (store, ms) => {
      for (const t of list) t.storeTransaction?.(store, ms);
    },
  };
}

/** This thread's CPU time in µs: `process.threadCpuUsage` (Node ≥ 23.9/22.19), else the process's. */
const threadCpu: () => number =
  typeof (process as { threadCpuUsage?: unknown }).threadCpuUsage === "function"
    ? () => {
        const u = (process as unknown as { threadCpuUsage(): NodeJS.CpuUsage }).threadCpuUsage();
        return u.user + u.system;
      }
    : () => {
        const u = process.cpuUsage();
        return u.user + u.system;
      };

/**
 * CPU accounting of instance code (SPEC §12.2), approximate by design. A *segment* is a stretch in
 * which an instance's own code may run: a step attempt's callback (from its call until it settles)
 * or `run()` between steps (from the moment a step's outcome is handed back until the next step
 * call). The thread's CPU time is read at every segment boundary, and what was used between two
 * boundaries is shared equally among the segments open meanwhile (a virtual clock: O(1) and one
 * `threadCpuUsage` call per boundary, nothing allocated but its result). A busy callback alone gets
 * all of its time; one awaiting a timer gets only what other open segments used while it waited,
 * divided among them. Engine work outside any segment (claims, commits of other instances) is
 * counted for no instance. One meter per thread (module state).
 */
export class CpuMeter {
  #open = 0;
  #last = threadCpu();
  /** CPU µs each open segment has accumulated since the meter began. */
  #share = 0;

  #tick(): void {
    const now = threadCpu();
    if (this.#open > 0) this.#share += (now - this.#last) / this.#open;
    this.#last = now;
  }

  /** Opens a segment; returns its mark, to hand to `close`. */
  open(): number {
    this.#tick();
    this.#open++;
    return this.#share;
  }

  /** Closes the segment opened at `mark`; returns its CPU time in ms. */
  close(mark: number): number {
    this.#tick();
    this.#open--;
    return (this.#share - mark) / 1000;
  }

  /** Segments open now (for tests). */
  get openSegments(): number {
    return this.#open;
  }
}

/**
 * CPU time an attempt's callback reported itself, by its step context: a remote worker's attempt
 * (Python: `time.thread_time()` deltas, SPEC §12.2) replaces what this thread measured while it
 * waited for the worker.
 */
const reported = new WeakMap<object, number>();

/** Records the CPU time (ms) the attempt of `ctx` used elsewhere (a remote worker). */
export function reportCpuTime(ctx: object, ms: number): void {
  if (Number.isFinite(ms) && ms >= 0) reported.set(ctx, ms);
}

/** The CPU time reported for the attempt of `ctx`, if any. */
export function reportedCpuTime(ctx: object): number | undefined {
  return reported.get(ctx);
}

/** The meter of this thread. */
export const cpuMeter: CpuMeter = new CpuMeter();
