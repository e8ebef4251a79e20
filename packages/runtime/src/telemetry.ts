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

/** How often (ms of wall time, at most) the meter reads the thread's CPU time. */
export const CPU_READ_INTERVAL_MS = 1;

/** Where a meter reads the time: the thread's CPU time in µs, and a wall clock in ms. */
export interface MeterClocks {
  cpu(): number;
  wall(): number;
}

const THREAD_CLOCKS: MeterClocks = { cpu: threadCpu, wall: () => performance.now() };

/**
 * CPU accounting of instance code (SPEC §12.2), approximate by design. A *segment* is a stretch in
 * which an instance's own code may run: a step attempt's callback (from its call until it settles)
 * or `run()` between steps (from the moment a step's outcome is handed back until the next step
 * call). What the thread used between two segment boundaries is shared equally among the segments
 * open meanwhile (a virtual clock: O(1), nothing allocated). A busy callback alone gets all of its
 * time; one awaiting a timer gets only what other open segments used while it waited, divided among
 * them. Engine work outside any segment (claims, commits of other instances) is counted for no
 * instance. One meter per thread (module state).
 *
 * Reading the thread's CPU time is a system call (~0.3 µs, more under load), and a burst crosses a
 * boundary every few µs, so the meter reads it at most once per `CPU_READ_INTERVAL_MS` of wall time.
 * In between, the thread's CPU time is estimated from the wall clock at the utilisation of the last
 * interval; each real reading corrects the estimate (which never runs backwards: an estimate ahead
 * of the thread is paid back from the next increments). A gap of a millisecond or more (a timer, an
 * idle loop, a long synchronous callback) always ends with a real reading.
 */
export class CpuMeter {
  readonly #clocks: MeterClocks;
  /**
   * The meter's numbers in one typed array (indices below): doubles there are read and written in
   * place, where fields holding doubles would box them in heap numbers on the hot path.
   */
  readonly #s = new Float64Array(8);

  constructor(clocks: MeterClocks = THREAD_CLOCKS) {
    this.#clocks = clocks;
    const s = this.#s;
    s[READ_CPU] = s[CPU] = clocks.cpu();
    s[READ_WALL] = s[WALL] = clocks.wall();
    s[UTILISATION] = 1;
  }

  /** Advances the meter's CPU clock to now; returns how far it moved (µs). */
  #advance(): number {
    const s = this.#s;
    const before = s[CPU]!;
    const wall = this.#clocks.wall();
    const sinceRead = wall - s[READ_WALL]!;
    if (sinceRead >= CPU_READ_INTERVAL_MS) {
      const cpu = this.#clocks.cpu();
      s[UTILISATION] = Math.min(1, Math.max(0, (cpu - s[READ_CPU]!) / (sinceRead * 1000)));
      s[READ_CPU] = cpu;
      s[READ_WALL] = wall;
      if (cpu >= before) {
        s[CPU] = cpu;
        s[AHEAD] = 0;
      } else s[AHEAD] = before - cpu;
    } else {
      let step = (wall - s[WALL]!) * 1000 * s[UTILISATION]!;
      const ahead = s[AHEAD]!;
      if (ahead > 0) {
        const paid = Math.min(ahead, step);
        s[AHEAD] = ahead - paid;
        step -= paid;
      }
      s[CPU] = before + step;
    }
    s[WALL] = wall;
    return s[CPU]! - before;
  }

  #tick(): void {
    const moved = this.#advance();
    const s = this.#s;
    if (s[OPEN]! > 0) s[SHARE] = s[SHARE]! + moved / s[OPEN]!;
  }

  /** Opens a segment; returns its mark, to hand to `close`. */
  open(): number {
    this.#tick();
    const s = this.#s;
    s[OPEN] = s[OPEN]! + 1;
    return s[SHARE]!;
  }

  /** Closes the segment opened at `mark`; returns its CPU time in ms. */
  close(mark: number): number {
    this.#tick();
    const s = this.#s;
    s[OPEN] = s[OPEN]! - 1;
    return (s[SHARE]! - mark) / 1000;
  }

  /** Segments open now (for tests). */
  get openSegments(): number {
    return this.#s[OPEN]!;
  }
}

// Indices into a `CpuMeter`'s numbers.
/** Segments open now. */
const OPEN = 0;
/** The thread's CPU time (µs) and the wall time (ms) at the last real reading. */
const READ_CPU = 1;
const READ_WALL = 2;
/** CPU µs per wall µs over the last interval between real readings, in [0, 1]. */
const UTILISATION = 3;
/** The meter's CPU clock (µs): real readings, estimates between them; never decreases. */
const CPU = 4;
/** The wall time (ms) the meter's CPU clock was last advanced to. */
const WALL = 5;
/** How far the estimate ran ahead of the last real reading (µs), paid back from the next increments. */
const AHEAD = 6;
/** CPU µs each open segment has accumulated since the meter began. */
const SHARE = 7;

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
