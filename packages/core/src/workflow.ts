import type { WorkflowStepConfig } from "./config.ts";
import type { Duration } from "./durations.ts";
import type { SerializedError } from "./errors.ts";
import type { InstanceStatus } from "./status.ts";

/** What `run()` receives: the instance's params and identity (compatible with Cloudflare's type). */
export interface WorkflowEvent<T = unknown> {
  payload: Readonly<T>;
  /** When the instance was created. */
  timestamp: Date;
  instanceId: string;
  workflowName: string;
  /** Set on instances a schedule created (`workflows[].schedules`, SPEC §9.4): which cron and slot. */
  schedule?: import("./schedule.ts").WorkflowCronSchedule;
}

/** What a step callback receives: which step this is, which attempt, and the resolved config. */
export interface WorkflowStepContext {
  step: { name: string; count: number };
  /** 1 on the first try, 2 on the first retry, … */
  attempt: number;
  /** A fresh copy each attempt: changing it does not change the retry policy. */
  config: {
    retries: { limit: number; delay: string | number; backoff: "constant" | "linear" | "exponential" };
    timeout: string | number;
    sensitive?: "output";
  };
}

/** An event delivered to `step.waitForEvent`. */
export interface WorkflowStepEvent<T = unknown> {
  payload: Readonly<T>;
  timestamp: Date;
  type: string;
}

export type WorkflowSleepDuration = Duration;

/**
 * The `step` object passed to `run()` (compatible with Cloudflare's `WorkflowStep`).
 *
 * Every method is durable: its outcome is stored before its promise settles, and when `run()` is
 * called again from the top (replay, after a crash, a long sleep, a pause or a restart) the stored
 * outcome is returned without doing the work again.
 *
 * **Step identity.** A step is `(kind, name, count)`: `count` is the 1-based occurrence of `name`
 * among steps of the same kind in this run of `run()`, shown to people as `"<name>-<count>"`. Names
 * must therefore come out in the same order on every replay; keep code outside steps deterministic.
 * `sleep` and `sleepUntil` share the kind `sleep`.
 *
 * **Names.** Non-empty, at most 256 characters (`MAX_STEP_NAME_LENGTH`), no control characters;
 * otherwise the call rejects with `step.invalid_name`.
 *
 * **Invalid input** (`step.invalid_name`, `step.invalid_config`, `workflow.invalid_event_type`)
 * rejects the call's promise inside `run()`, where the workflow may catch it; uncaught, it errors
 * the instance.
 *
 * **Parked steps never settle.** When the engine stops a run (the instance is paused, terminated,
 * restarted, evicted for a long wait, or the process shuts down), the promises of its pending steps
 * neither resolve nor reject: that run of `run()` is abandoned, and the code after the `await`
 * runs only in a later replay. So `finally` blocks around a step are not a place for side effects
 * that must happen; put them in a step of their own.
 *
 * **Concurrency.** Steps started without awaiting each other (e.g. in `Promise.all`) run
 * concurrently; their counts follow the order of the calls.
 */
export interface WorkflowStep {
  /**
   * Runs `callback` as a durable step and returns its value.
   *
   * The callback receives `{ step: { name, count }, attempt, config }`: `attempt` is 1 on the first
   * try, and `config` is the resolved config, a fresh copy each attempt.
   *
   * **Config** (optional second argument, see `WorkflowStepConfig`; unknown keys are rejected with
   * `step.invalid_config`). Defaults: `retries: { limit: 5, delay: "10 seconds", backoff:
   * "exponential" }` (the delay is configurable per runtime), `timeout: "10 minutes"`. `retries`
   * merges key by key over the defaults. The config is frozen at the first attempt: later attempts
   * and replays use the stored one.
   *
   * **Retries.** `limit` counts retries, so a step makes at most `limit + 1` attempts (at most
   * 10,000 retries). The wait after failed attempt `n` is `delay` (constant), `delay·n` (linear) or
   * `delay·2^(n-1)` (exponential); the instance is `waiting` meanwhile. `timeout` applies to each
   * attempt: an attempt that runs out of time fails with `WorkflowTimeoutError` and is retried like
   * any other failure.
   *
   * **What stops retries.** A `NonRetryableError` thrown by the callback (recognised by its name,
   * or a message that starts with `"NonRetryableError"`) fails the step at once; so does running out
   * of retries. The step then rejects with the last error, and the instance errors unless `run()`
   * catches it.
   *
   * **Results.** Any structured-clone value (plain objects, arrays, `Date`, `Map`, `Set`, `BigInt`,
   * typed arrays, `undefined`) of at most 1 MiB encoded. A larger result fails that attempt with
   * `step.output_too_large` (retried like any failure). A value that cannot be cloned (a function, a
   * symbol) errors the instance with a `WorkflowFatalError` naming the step, even if `run()` catches.
   * With `sensitive: "output"` the result is stored but shown as `"[REDACTED]"` by the API.
   *
   * **On replay** a step that succeeded returns a decoded copy of its stored result (on the first
   * run it is the callback's own value); a step that failed for good rethrows the stored error, an
   * `Error` with the stored `name` and `message` (`NonRetryableError` and `WorkflowTimeoutError` keep
   * their classes). A callback may run more than once for one attempt (a crash before its outcome
   * is stored runs it again), so make its effects idempotent; its outcome is recorded exactly once.
   *
   * **Limits.** At most 10,000 `do` steps per instance by default (`stepLimit`); the next one errors
   * the instance with `step.limit_reached`.
   *
   * @example
   * const user = await step.do("load user", async () => db.users.get(event.payload.userId));
   * await step.do(
   *   "charge card",
   *   { retries: { limit: 3, delay: "5 seconds", backoff: "linear" }, timeout: "30 seconds" },
   *   async ({ attempt }) => {
   *     const res = await charge(user, { idempotencyKey: `${event.instanceId}-charge` });
   *     if (res.declined) throw new NonRetryableError("card declined");
   *     return res.id;
   *   },
   * );
   */
  do<T>(
    name: string,
    callback: (ctx: WorkflowStepContext) => Promise<T> | T,
    rollbackOptions?: WorkflowStepRollbackOptions<T>,
  ): Promise<T>;
  do<T>(
    name: string,
    config: WorkflowStepConfig,
    callback: (ctx: WorkflowStepContext) => Promise<T> | T,
    rollbackOptions?: WorkflowStepRollbackOptions<T>,
  ): Promise<T>;

  /**
   * Sleeps for `duration`: a number of milliseconds or `"<number> <unit>[s]"` with unit second,
   * minute, hour, day, week, month (30 days) or year (365 days). At most 365 days; a malformed or
   * longer duration rejects with `step.invalid_config`.
   *
   * The instance is `waiting` while it sleeps and holds no concurrency slot. A short sleep keeps the
   * run in memory; a long one unloads it, and `run()` is replayed when the sleep ends (a parked
   * step: see above). Time spent paused is added to the sleep on resume. On replay a finished sleep
   * returns at once; an unfinished one waits only for the time that is left.
   *
   * @example
   * await step.sleep("cool off", "10 minutes");
   */
  sleep(name: string, duration: WorkflowSleepDuration): Promise<void>;

  /**
   * Sleeps until `timestamp` (a `Date` or epoch milliseconds). A time in the past completes at once;
   * more than 365 days ahead, or not a valid time, rejects with `step.invalid_config`. Otherwise as
   * `sleep`, with which it shares the step kind (and so the counts).
   *
   * @example
   * await step.sleepUntil("until launch", new Date("2027-01-01T09:00:00Z"));
   */
  sleepUntil(name: string, timestamp: Date | number): Promise<void>;

  /**
   * Waits for an event of `type` sent to this instance (`instance.sendEvent({ type, payload })` or
   * `POST …/events/:type`) and resolves to `{ payload, timestamp, type }`.
   *
   * Events sent before the wait is reached are buffered per type, first in first out: a wait whose
   * event is already buffered takes the oldest one at once. Each event is delivered to one wait.
   * `type` follows the instance id rules (at most 100 letters, digits, `-`, `_`), else
   * `workflow.invalid_event_type`.
   *
   * `timeout` defaults to `"24 hours"` and must be between 1 second and 365 days, else
   * `step.invalid_config`. When it passes without an event, the promise rejects with a
   * `WorkflowTimeoutError` (catchable; waits are not retried). The instance is `waiting` meanwhile;
   * a long wait unloads the run, which is replayed when the event arrives or the time runs out.
   *
   * On replay a wait that received its event returns the same event (payload decoded again); one
   * that timed out rethrows its `WorkflowTimeoutError`.
   *
   * @example
   * const approval = await step.waitForEvent<{ by: string }>("approval", {
   *   type: "approved",
   *   timeout: "1 day",
   * });
   * console.log(approval.payload.by);
   */
  waitForEvent<T = unknown>(
    name: string,
    options: { type: string; timeout?: WorkflowSleepDuration },
  ): Promise<WorkflowStepEvent<T>>;
}

/** Cloudflare's `ExecutionContext`, as far as a workflow can use it. */
export interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
  readonly props: Record<string, unknown>;
}

/**
 * Base class of every workflow (compatible with `WorkflowEntrypoint` from "cloudflare:workers").
 *
 * ```ts
 * export class Checkout extends WorkflowEntrypoint<Env, { orderId: string }> {
 *   async run(event: WorkflowEvent<{ orderId: string }>, step: WorkflowStep) {
 *     const order = await step.do("load order", async () => loadOrder(event.payload.orderId));
 *     await step.sleep("cool off", "10 minutes");
 *     return order;
 *   }
 * }
 * ```
 * `run()` may be called again from the top at any time (replay); completed steps return their stored
 * results, so code outside steps must be deterministic and free of side effects that matter.
 */
export abstract class WorkflowEntrypoint<Env = unknown, T = unknown> {
  protected ctx: ExecutionContext;
  protected env: Env;

  constructor(ctx: ExecutionContext, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }

  abstract run(event: Readonly<WorkflowEvent<T>>, step: WorkflowStep): Promise<unknown>;
}

export type WorkflowClass<Env = any, T = any> = new (
  ctx: ExecutionContext,
  env: Env,
) => WorkflowEntrypoint<Env, T>;

/** What `instance.status()` returns. */
export interface InstanceStatusDetails {
  status: InstanceStatus;
  error?: SerializedError;
  output?: unknown;
}

export interface WorkflowInstanceCreateOptions<P = unknown> {
  id?: string;
  params?: P;
  retention?: { successRetention?: Duration; errorRetention?: Duration };
  /** Cloudflare's placement hint (SPEC §9.3): validated against `LOCATION_HINTS`, otherwise ignored. */
  locationHint?: LocationHint;
}

/** The regions Cloudflare accepts as a `locationHint`. */
export const LOCATION_HINTS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"] as const;
export type LocationHint = (typeof LOCATION_HINTS)[number];

export interface RestartOptions {
  from?: { name: string; count?: number; type?: "do" | "sleep" | "waitForEvent" };
}

/** A handle on one instance (compatible with Cloudflare's `WorkflowInstance`). */
export interface WorkflowInstance {
  readonly id: string;
  status(): Promise<InstanceStatusDetails>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** With `rollback: true`, the registered rollbacks run (newest first) before it ends `terminated`. */
  terminate(options?: WorkflowInstanceTerminateOptions): Promise<void>;
  restart(options?: RestartOptions): Promise<void>;
  sendEvent(event: { type: string; payload?: unknown }): Promise<void>;
  delete(): Promise<void>;
  /**
   * The instance's events (SPEC §5: history, then live), ending after the final `workflow_*` event
   * (SPEC §9.3). `cursor`: only events after this `eventId`; `filter`: event types to keep, or a
   * predicate. Dispose it (`await using`, or `break`) to stop early.
   */
  subscribe(options?: InstanceSubscribeOptions): AsyncIterableIterator<InstanceEvent> & AsyncDisposable;
}

/** Options of `instance.subscribe`. */
export interface InstanceSubscribeOptions {
  filter?: readonly string[] | ((event: InstanceEvent) => boolean);
  cursor?: number;
}

/**
 * One event of `instance.subscribe`: a history entry's data with its `type`, `instanceId`, `eventId`
 * and `timestamp` (ms), the step it concerns, and the value where there is one (`output` of
 * `step_completed`, `wait_completed` and `workflow_completed`, `"[REDACTED]"` for a sensitive step;
 * `params` of `workflow_started`).
 */
export interface InstanceEvent {
  type: string;
  instanceId: string;
  eventId: number;
  timestamp: number;
  stepName?: string;
  step?: { type: string; name: string; count: number };
  output?: unknown;
  params?: unknown;
  [key: string]: unknown;
}

/** A workflow binding, `env.MY_WORKFLOW` (compatible with Cloudflare's `Workflow<P>`). */
export interface Workflow<P = unknown> {
  create(options?: WorkflowInstanceCreateOptions<P>): Promise<WorkflowInstance>;
  createBatch(batch: WorkflowInstanceCreateOptions<P>[]): Promise<WorkflowInstance[]>;
  get(id: string): Promise<WorkflowInstance>;
  deleteBatch(
    ids: string[],
  ): Promise<{ deleted: { id: string }[]; errors: { id: string; code: number; message: string }[] }>;
}

/** What a rollback handler receives (compatible with Cloudflare's `WorkflowRollbackContext`). */
export interface WorkflowRollbackContext<T = unknown> {
  /** The forward step's context (a copy). */
  ctx: WorkflowStepContext;
  /** The error that started the rollback phase. */
  error: Error;
  /** The forward step's stored output; `undefined` when it did not succeed. */
  output: T | undefined;
  /** `"<name>-<count>"` (deprecated upstream). */
  stepName: string;
}

/** The fourth argument of `step.do`: a compensation run when the instance fails or is terminated with `rollback`. */
export interface WorkflowStepRollbackOptions<T = unknown> {
  rollback: (c: WorkflowRollbackContext<T>) => Promise<void>;
  rollbackConfig?: Pick<WorkflowStepConfig, "retries" | "timeout">;
}

export interface WorkflowInstanceTerminateOptions {
  rollback?: boolean;
}
