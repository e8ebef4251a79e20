import type { ResolvedStepConfig } from "./config.ts";
import type { SerializedError } from "./errors.ts";
import type { InstanceStatus } from "./status.ts";
import type { StepKey } from "./step-key.ts";

/**
 * The engine's stored records, as the `Store` keeps them and the decisions of `transitions.ts` read
 * and write them. Values (`params`, `output`, `result`, `payload`) are opaque encoded bytes: the
 * runtime owns the encoding (structured clone), the store only keeps them.
 */

/** One instance as stored. */
export interface InstanceRow {
  workflow: string;
  id: string;
  status: InstanceStatus;
  params: Uint8Array;
  output: Uint8Array | null;
  error: SerializedError | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  /** Set while paused: resume shifts every pending step timer by `now - pausedAt`. */
  pausedAt: number | null;
  /** When the instance should next be run; `null` when nothing will wake it by itself. */
  readyAt: number | null;
  /** 0 for waking instances, 1 for new ones: waking instances run first. */
  priority: number;
  /** Bumped by every claim and restart; every write from a run carries the epoch it was claimed with. */
  epoch: number;
  /** The worker running it, and until when its claim holds. */
  owner: string | null;
  leaseUntil: number | null;
  /** Set when a rollback phase starts (SPEC §9.1): its trigger, and its outcome once it ended. */
  rollback?: RollbackState | null;
  /**
   * CPU time its runs used (step callbacks and `run()` code) and wall time it was loaded in a
   * worker, summed over the runs that parked or ended (SPEC §12.2); 0 before the first such run.
   */
  cpuTimeMs?: number;
  wallTimeMs?: number;
  /** The W3C `traceparent` its runs' spans are children of (SPEC §12.4), when tracing was on. */
  traceparent?: string | null;
}

/** The stored state of an instance's rollback phase. */
export interface RollbackState {
  /** `error`: `run()` failed (the instance ends `errored`); `terminate`: `terminate({ rollback: true })`. */
  trigger: "error" | "terminate";
  /** The error handed to every rollback handler (for `error`, the instance's error). */
  triggerError: SerializedError;
  /** Set when the phase started (`rollback_started`): how many steps it compensates. */
  totalSteps?: number;
  /** Set when the phase ended. */
  outcome?: "complete" | "failed";
  /** The error of the rollback that failed for good. */
  error?: SerializedError;
}

export type InstancePatch = Partial<
  Pick<
    InstanceRow,
    | "status"
    | "output"
    | "error"
    | "updatedAt"
    | "startedAt"
    | "endedAt"
    | "pausedAt"
    | "readyAt"
    | "priority"
    | "epoch"
    | "owner"
    | "leaseUntil"
    | "rollback"
    | "cpuTimeMs"
    | "wallTimeMs"
    | "traceparent"
  >
>;

export type StepStatus = "running" | "retrying" | "sleeping" | "waiting" | "succeeded" | "failed";

/** The stored state of one step: its frozen config, attempts so far, and its outcome once it has one. */
export interface StepRow extends StepKey {
  workflow: string;
  instanceId: string;
  /**
   * The step's position among all step calls of a run (1-based). Replays call steps in the same
   * order, so it orders steps by when they started, even within one millisecond.
   */
  seq: number;
  status: StepStatus;
  config: ResolvedStepConfig | null;
  attempts: number;
  result: Uint8Array | null;
  error: SerializedError | null;
  startedAt: number;
  endedAt: number | null;
  /** When a sleeping, retrying or waiting step next needs attention (sleep end, retry, wait timeout). */
  wakeAt: number | null;
  /** The event type a `waitForEvent` step waits for. */
  eventType: string | null;
  /** A `do` step registered a rollback handler (written with its first attempt, frozen). */
  hasRollback?: boolean;
  /** Its `rollbackConfig` merged over the step defaults; `null` without a rollback. */
  rollbackConfig?: ResolvedStepConfig | null;
}

export interface EventRow {
  workflow: string;
  instanceId: string;
  seq: number;
  type: string;
  payload: Uint8Array;
  timestamp: number;
  /** The `waitForEvent` step that received it (`stepKeyString`), or `null` while buffered. */
  consumedBy: string | null;
}
