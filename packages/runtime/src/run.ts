import { fileURLToPath } from "node:url";
import {
  ACTIVE_STATUSES,
  type Clock,
  canRetry,
  DEFAULT_EVENT_TIMEOUT,
  decideLostAttempt,
  deserializeError,
  type ExecutionContext,
  eventTimeoutError,
  eventTimeoutMessage,
  type HistoryDataOf,
  type HistoryEventType,
  type InstanceStatus,
  isNonRetryable,
  MAX_EVENT_TIMEOUT_MS,
  MAX_PAYLOAD_BYTES,
  MAX_SLEEP_MS,
  MIN_EVENT_TIMEOUT_MS,
  type NewHistoryEntry,
  parseDuration,
  type ResolvedStepConfig,
  resolveStepConfig,
  retryDelayMs,
  type SerializedError,
  StepCounter,
  type StepKey,
  type StepKind,
  serializeError,
  stepKeyString,
  stepLabel,
  suspectLane,
  type TimerHandle,
  trimStack,
  validateEventType,
  validateStepName,
  type WorkflowClass,
  WorkflowError,
  type WorkflowEvent,
  WorkflowFatalError,
  type WorkflowStep,
  type WorkflowStepConfig,
  type WorkflowStepContext,
  type WorkflowStepEvent,
  WorkflowTimeoutError,
} from "@cairn/core";
import type {
  ClaimedInstance,
  InstancePatch,
  InstanceRow,
  StepCommit,
  StepRow,
  Store,
  StoreTx,
} from "@cairn/store";
import { decodeValue, encodeValue, unclonableReason } from "./codec.ts";
import type { RuntimeHooks } from "./hooks.ts";
import type { SuspectLanes } from "./suspects.ts";

/** Stack frames of the engine and of Node, dropped from the stacks of instance errors. */
const INTERNAL_FRAMES = [
  "node:",
  "/node_modules/",
  "(<anonymous>)",
  fileURLToPath(new URL("../../", import.meta.url)),
];

/** What a run needs from the runtime that started it. */
export interface RunHost {
  readonly store: Store;
  readonly clock: Clock;
  readonly env: Record<string, unknown>;
  /** Read at each use: `Runtime.addHooks` may change them while instances run. */
  hooks: RuntimeHooks;
  /** Waits at or below this many ms keep the run in memory; longer ones evict it. */
  readonly hotWaitMs: number;
  /**
   * A step callback still running after this many ms is stored as running (the "attempt started"
   * marker: a process that dies during it counts the attempt).
   */
  readonly attemptMarkerAfterMs: number;
  /** Orders attempts that may have killed the previous process (see `SuspectLanes`). */
  readonly suspects: SuspectLanes;
  readonly stepLimit: number;
  readonly defaultStepConfig: ResolvedStepConfig;
  /**
   * Workers sharing a store (and so `maxConcurrent`): takes a slot for an instance that was stored
   * `waiting` and is about to run again in memory (a hot wait ended, an event arrived, a callback
   * starts): `ok` once it is stored `running`, `full` when the shared limit is reached, `fenced`
   * when the run no longer owns it. Absent for a worker alone on its store.
   */
  takeSlot?(workflow: string, id: string, epoch: number): Promise<"ok" | "full" | "fenced">;
  /** Called after every commit that changed the instance. */
  changed(workflow: string, id: string, status?: InstanceStatus): void;
  /** Reports errors the run cannot hand to user code (a store that failed). */
  log(message: string, error: unknown): void;
}

export type RunOutcome = "complete" | "errored" | "terminated" | "evicted" | "aborted";

/** A run's commit was refused: the instance was terminated, restarted, deleted or claimed elsewhere. */
class Fenced extends Error {}

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** A step key with the step's call position in the run (see `StepRow.seq`). */
type RunKey = StepKey & { seq: number };

interface Waiter {
  type: string;
  key: RunKey;
  startedAt: number;
  timeoutAt: number;
  /** The configured timeout (Cloudflare's timeout message names it, even when a test forces it). */
  timeoutMs: number;
  settled: boolean;
  resolve(event: WorkflowStepEvent): void;
  reject(error: Error): void;
  timer?: TimerHandle;
  suspension?: Suspension;
}

interface Suspension {
  wakeAt: number;
}

type AttemptResult = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * One execution of `run()` for a claimed instance. It replays stored step outcomes, runs the steps
 * that have none, commits each outcome before settling its promise, and ends in one of four ways:
 * the instance completes or errors, the run is evicted (every remaining step is a long wait, or the
 * instance is pausing), or it is aborted (terminate, restart, delete, or a lost claim).
 *
 * Invariants: every write checks the epoch the instance was claimed with (fencing); a run counts its
 * callbacks and commits in flight, and is evicted only when both are zero.
 */
export class InstanceRun {
  readonly workflow: string;
  readonly id: string;
  readonly #host: RunHost;
  readonly #class: WorkflowClass;
  readonly #epoch: number;
  readonly #row: InstanceRow;
  readonly #claimedAt: number;
  #steps = new Map<string, StepRow>();
  #available = new Map<string, number>();
  #counter = new StepCounter();
  #doCount = 0;
  #seq = 0;
  #callbacks = 0;
  #commits = 0;
  #waits = 0;
  #blocked = 0;
  #hotTimers = new Set<TimerHandle>();
  #suspensions = new Set<Suspension>();
  #waiters: Waiter[] = [];
  #pausing: boolean;
  #openGate?: () => void;
  #gate?: Promise<void>;
  #ended = false;
  #persistedStatus: "running" | "waiting" | "waitingForPause";
  #pending: NewHistoryEntry[] = [];
  /** A `takeSlot` in progress, shared by everything resuming at once. */
  #slotTaking?: Promise<"ok" | "full" | "fenced">;
  /** No slot was free: the run stopped its timers and waits to be suspended. */
  #yielded = false;
  #checkScheduled = false;
  #started = false;
  /**
   * Taken over from a process that stopped while running the instance: attempts are recorded as
   * started before their callbacks run, until one attempt has ended in this process.
   */
  #recovering: boolean;
  #resolveDone!: (outcome: RunOutcome) => void;
  readonly done: Promise<RunOutcome>;

  constructor(host: RunHost, workflowClass: WorkflowClass, row: ClaimedInstance, claimedAt: number) {
    this.#host = host;
    this.#class = workflowClass;
    this.#row = row;
    this.workflow = row.workflow;
    this.id = row.id;
    this.#epoch = row.epoch;
    this.#pausing = row.status === "waitingForPause";
    this.#persistedStatus = this.#pausing ? "waitingForPause" : "running";
    this.#claimedAt = claimedAt;
    this.#recovering = row.takenOver === true;
    this.done = new Promise((r) => (this.#resolveDone = r));
  }

  get pausing(): boolean {
    return this.#pausing;
  }

  /** The epoch the instance was claimed with: commands read at a later epoch do not concern this run. */
  get epoch(): number {
    return this.#epoch;
  }

  /** When the instance was created: with `epoch`, tells this run from one of a re-created instance. */
  get createdAt(): number {
    return this.#row.createdAt;
  }

  /**
   * Loads stored state and starts `run()`. A `fresh` instance (just created by this process) has no
   * steps or events yet, so nothing is loaded.
   */
  async start(fresh = false): Promise<void> {
    const { store } = this.#host;
    const [steps, events] = fresh
      ? [[], []]
      : await Promise.all([
          store.steps.list(this.workflow, this.id),
          store.events.list(this.workflow, this.id),
        ]);
    this.#started = true;
    for (const s of steps) this.#steps.set(stepKeyString(s), s);
    for (const e of events)
      if (e.consumedBy === null) this.#available.set(e.type, (this.#available.get(e.type) ?? 0) + 1);
    const now = this.#now();
    // First start: just created here, or claimed with nothing done yet and started by this claim.
    if (fresh || (steps.length === 0 && this.#row.startedAt === this.#claimedAt))
      this.#log(now, "workflow_started");
    this.#log(now, "workflow_running");

    let instance: { run(event: WorkflowEvent, step: WorkflowStep): Promise<unknown> };
    let event: WorkflowEvent;
    try {
      const ctx: ExecutionContext = {
        waitUntil: (p) => void Promise.resolve(p).catch(() => {}),
        passThroughOnException: () => {},
        props: {},
      };
      instance = new this.#class(ctx, this.#host.env);
      event = {
        payload: decodeValue(this.#row.params),
        timestamp: new Date(this.#row.createdAt),
        instanceId: this.id,
        workflowName: this.workflow,
      };
    } catch (e) {
      void this.#finish({ error: e });
      return;
    }
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(instance.run(event, this.#stepApi()));
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      (output) => this.#finish({ output }),
      (error) => this.#finish({ error }),
    );
  }

  // ---- control from the runtime -------------------------------------------------------------

  /** A pause was requested: let in-flight callbacks finish, start nothing new, then evict as paused. */
  pause(): void {
    if (this.#ended || this.#pausing) return;
    this.#pausing = true;
    this.#scheduleCheck();
  }

  /** A pending pause was cancelled before it took effect. */
  cancelPause(): void {
    if (!this.#pausing) return;
    this.#pausing = false;
    this.#persistedStatus = "running";
    this.#openGate?.();
    this.#gate = undefined;
    this.#openGate = undefined;
  }

  /** Stops the run without writing anything more (terminate, restart, delete, close). */
  abort(): void {
    this.#end("aborted");
  }

  /**
   * Whether the engine has work of its own pending for this run (starting, a commit, a pending check).
   * Step callbacks are user work and do not count: one may wait for a timer of the clock.
   */
  get busy(): boolean {
    return !this.#started || this.#commits > 0 || this.#checkScheduled;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** An event of `type` was stored for this instance: hand it to the first waiter of that type. */
  notifyEvent(type: string): void {
    if (this.#ended) return;
    this.#available.set(type, (this.#available.get(type) ?? 0) + 1);
    const waiter = this.#waiters.find((w) => w.type === type && !w.settled);
    if (waiter) void this.#deliver(waiter);
  }

  /**
   * The store's unconsumed events by type, read after notifications may have been lost: hands the
   * ones this run did not hear of to its waiters. Counting one twice is harmless (a delivery that
   * finds no event to consume re-arms its waiter).
   */
  catchUpEvents(unconsumed: Map<string, number>): void {
    if (this.#ended) return;
    for (const [type, n] of unconsumed)
      if ((this.#available.get(type) ?? 0) < n) this.#available.set(type, n);
    for (const waiter of [...this.#waiters])
      if (!waiter.settled && (this.#available.get(waiter.type) ?? 0) > 0) void this.#deliver(waiter);
  }

  // ---- the step object ----------------------------------------------------------------------

  #stepApi(): WorkflowStep {
    const run = this;
    return {
      do<T>(name: string, configOrCallback: unknown, maybeCallback?: unknown): Promise<T> {
        const callback = (typeof configOrCallback === "function" ? configOrCallback : maybeCallback) as
          | ((ctx: WorkflowStepContext) => Promise<T> | T)
          | undefined;
        const config = typeof configOrCallback === "function" ? undefined : configOrCallback;
        return run.#pipeline("do", name, (key, stored) => {
          if (typeof callback !== "function")
            throw new WorkflowError("step.invalid_config", `Step "${name}" requires a callback function`);
          return run.#do(key, stored, config as WorkflowStepConfig | undefined, callback) as Promise<T>;
        });
      },
      sleep(name: string, duration: unknown): Promise<void> {
        return run.#pipeline("sleep", name, (key, stored) => {
          const ms = stored ? 0 : parseDuration(duration, `Sleep "${name}"`);
          if (ms > MAX_SLEEP_MS)
            throw new WorkflowError(
              "step.invalid_config",
              `Sleep "${name}" is longer than the limit of 365 days`,
            );
          return run.#sleep(key, stored, (now) => now + ms);
        });
      },
      sleepUntil(name: string, timestamp: unknown): Promise<void> {
        return run.#pipeline("sleep", name, (key, stored) => {
          const t = timestamp instanceof Date ? timestamp.getTime() : timestamp;
          if (typeof t !== "number" || !Number.isFinite(t))
            throw new WorkflowError(
              "step.invalid_config",
              `sleepUntil "${name}" needs a Date or a number of ms since the epoch`,
            );
          return run.#sleep(key, stored, (now) => {
            if (t - now > MAX_SLEEP_MS)
              throw new WorkflowError(
                "step.invalid_config",
                `sleepUntil "${name}" is more than 365 days away`,
              );
            return t;
          });
        });
      },
      waitForEvent<T>(
        name: string,
        options: { type: string; timeout?: unknown },
      ): Promise<WorkflowStepEvent<T>> {
        return run.#pipeline("waitForEvent", name, (key, stored) => {
          if (typeof options !== "object" || options === null)
            throw new WorkflowError(
              "step.invalid_config",
              `waitForEvent "${name}" needs options { type, timeout? }`,
            );
          const type = validateEventType(options.type);
          const timeoutMs = parseDuration(
            options.timeout ?? DEFAULT_EVENT_TIMEOUT,
            `waitForEvent "${name}": timeout`,
          );
          if (timeoutMs < MIN_EVENT_TIMEOUT_MS || timeoutMs > MAX_EVENT_TIMEOUT_MS)
            throw new WorkflowError(
              "step.invalid_config",
              `waitForEvent "${name}": timeout must be between 1 second and 365 days`,
            );
          return run.#waitForEvent(key, stored, type, timeoutMs) as Promise<WorkflowStepEvent<T>>;
        });
      },
    } as WorkflowStep;
  }

  /**
   * Every `step.*` call goes through here: validate → key → look up → return the stored outcome, or
   * (once no pause holds it back) run the step.
   */
  async #pipeline<T>(
    kind: StepKind,
    name: string,
    body: (key: RunKey, stored: StepRow | undefined) => Promise<T>,
  ): Promise<T> {
    if (this.#ended) return never();
    validateStepName(name);
    const key = this.#counter.next(kind, name);
    const seq = ++this.#seq;
    if (kind === "do" && ++this.#doCount > this.#host.stepLimit) {
      void this.#finish({
        error: new WorkflowError(
          "step.limit_reached",
          `The limit of ${this.#host.stepLimit} steps has been reached. Raise stepLimit in the Cairn options to allow more.`,
        ),
      });
      return never();
    }
    const stored = this.#steps.get(stepKeyString(key));
    if (stored?.status === "succeeded") return decodeValue<T>(stored.result);
    if (stored?.status === "failed")
      throw this.#failedIn(
        kind === "waitForEvent"
          ? eventTimeoutError(stored.error?.message ?? eventTimeoutMessage(0))
          : deserializeError(stored.error!),
        key,
      );
    await this.#passGate();
    let value: T;
    try {
      value = await body({ ...key, seq }, stored);
    } catch (e) {
      await this.#passGate();
      throw this.#failedIn(e, key);
    }
    // A pause requested while the step ran takes effect before the workflow sees the outcome.
    await this.#passGate();
    return value;
  }

  async #do(
    key: RunKey,
    stored: StepRow | undefined,
    userConfig: WorkflowStepConfig | undefined,
    callback: (ctx: WorkflowStepContext) => unknown,
  ): Promise<unknown> {
    const config = stored?.config ?? resolveStepConfig(key.name, userConfig, this.#host.defaultStepConfig);
    const timeoutMs = parseDuration(config.timeout);
    const startedAt = stored?.startedAt ?? this.#now();
    // An attempt in flight when the process running it stopped: it failed.
    if (stored?.status === "running") {
      stored = await this.#recordLostAttempt(key, stored, config);
      if (stored.status === "failed") throw deserializeError(stored.error!);
    }
    let attempts = stored?.attempts ?? 0;
    let lastError = stored?.error ?? null;
    if (stored?.status === "retrying" && stored.wakeAt !== null) {
      this.#waits++;
      try {
        await this.#waitUntil(stored.wakeAt);
      } finally {
        this.#waits--;
      }
    }
    for (;;) {
      if (!(await this.#resume())) return never();
      const attempt = attempts + 1;
      const attemptStart = this.#now();
      this.#callbacks++;
      // The "attempt started" marker (step row `running`, its start entries): written once the
      // callback has run for a moment, so the API and dashboard show it and a crash during it counts
      // the attempt; fast attempts write none. A suspect of the last crash (see `suspectLane`) writes
      // it before its callback runs, so one that kills the process without yielding is counted too,
      // and takes its turn among the other suspects.
      let shown: Promise<void> | undefined;
      let marker: TimerHandle | undefined;
      const lane = suspectLane(this.#recovering, lastError);
      const suspect =
        lane === "alone"
          ? await this.#host.suspects.alone()
          : lane === "alongside"
            ? await this.#host.suspects.alongside()
            : undefined;
      if (this.#ended) {
        suspect?.();
        return never();
      }
      if (lane) {
        shown = this.#showAttempt(key, config, startedAt, attempt, attemptStart, lastError);
        await shown;
      } else
        marker = this.#host.clock.setTimer(() => {
          shown = this.#showAttempt(key, config, startedAt, attempt, attemptStart, lastError);
        }, this.#host.attemptMarkerAfterMs);
      let result = await this.#attempt(key, attempt, config, timeoutMs, callback);
      suspect?.();
      marker?.cancel();
      this.#recovering = false;
      // The outcome must land after the "running" row, never before it.
      if (shown) await shown;
      let encoded: Uint8Array | undefined;
      if (result.ok) {
        try {
          encoded = encodeValue(result.value);
        } catch (e) {
          this.#callbacks--;
          const reason = unclonableReason(e) ?? (e as Error).message;
          void this.#finish({
            error: new WorkflowFatalError(
              `The execution of the Workflow instance was terminated, as the step "${key.name}" returned a value which is not serialisable (${reason})`,
            ),
          });
          return never();
        }
        if (encoded.byteLength > MAX_PAYLOAD_BYTES)
          result = {
            ok: false,
            error: new WorkflowError(
              "step.output_too_large",
              `Step ${stepLabel(key)} output is too large (${encoded.byteLength} bytes). Maximum allowed size is 1MiB.`,
            ),
          };
      }
      const now = this.#now();
      const step = { kind: key.kind, name: key.name, count: key.count };
      const entries: NewHistoryEntry[] = [];
      if (!shown) {
        if (attempt === 1) entries.push(this.#entry(startedAt, "step_started", step, { config }));
        entries.push(this.#entry(attemptStart, "attempt_started", step, { attempt }));
      }
      const row: StepRow = {
        workflow: this.workflow,
        instanceId: this.id,
        ...step,
        seq: key.seq,
        status: "succeeded",
        config,
        attempts: attempt,
        result: null,
        error: null,
        startedAt,
        endedAt: now,
        wakeAt: null,
        eventType: null,
      };
      if (result.ok) {
        row.result = encoded!;
        entries.push(this.#entry(now, "attempt_completed", step, { attempt }));
        entries.push(this.#entry(now, "step_completed", step));
        this.#callbacks--;
        await this.#commit(entries, row);
        this.#steps.set(stepKeyString(key), row);
        return result.value;
      }
      const error = serializeError(result.error);
      if (isNonRetryable(result.error) || !canRetry(config.retries, attempt)) {
        row.status = "failed";
        row.error = error;
        entries.push(this.#entry(now, "attempt_errored", step, { attempt, error }));
        entries.push(this.#entry(now, "step_errored", step, { error }));
        this.#callbacks--;
        await this.#commit(entries, row);
        this.#steps.set(stepKeyString(key), row);
        throw result.error instanceof Error ? result.error : deserializeError(error);
      }
      const delay = this.#adjust(key, "retry", retryDelayMs(config.retries, attempt));
      row.status = "retrying";
      row.error = error;
      row.endedAt = null;
      row.wakeAt = now + delay;
      entries.push(this.#entry(now, "attempt_errored", step, { attempt, error, retryDelayMs: delay }));
      this.#callbacks--;
      this.#waits++;
      try {
        await this.#commit(entries, row);
        this.#steps.set(stepKeyString(key), row);
        await this.#waitUntil(row.wakeAt);
      } finally {
        this.#waits--;
      }
      await this.#passGate();
      attempts = attempt;
      lastError = error;
    }
  }

  /**
   * Stores that the attempt of a `running` step row (the marker of an attempt in flight when the
   * process stopped) failed, and what follows (`decideLostAttempt`): a retry wait or the step's
   * failure. Returns the stored row.
   */
  async #recordLostAttempt(key: RunKey, stored: StepRow, config: ResolvedStepConfig): Promise<StepRow> {
    const d = decideLostAttempt({
      name: key.name,
      attempts: stored.attempts,
      config,
      previousError: stored.error,
    });
    const now = this.#now();
    const step = { kind: key.kind, name: key.name, count: key.count };
    const row: StepRow = { ...stored, seq: key.seq, config, error: d.error };
    const entries: NewHistoryEntry[] = [];
    if (d.retry) {
      const delay = this.#adjust(key, "retry", d.delayMs);
      Object.assign(row, { status: "retrying", endedAt: null, wakeAt: now + delay });
      entries.push(
        this.#entry(now, "attempt_errored", step, {
          attempt: d.attempt,
          error: d.error,
          retryDelayMs: delay,
        }),
      );
    } else {
      Object.assign(row, { status: "failed", endedAt: now, wakeAt: null });
      entries.push(this.#entry(now, "attempt_errored", step, { attempt: d.attempt, error: d.error }));
      entries.push(this.#entry(now, "step_errored", step, { error: d.error }));
    }
    await this.#commit(entries, row);
    this.#steps.set(stepKeyString(key), row);
    return row;
  }

  /** Stores that an attempt is under way: the step row as `running` and the attempt's start entries. */
  async #showAttempt(
    key: RunKey,
    config: ResolvedStepConfig,
    startedAt: number,
    attempt: number,
    attemptStart: number,
    previousError: SerializedError | null,
  ) {
    const step = { kind: key.kind, name: key.name, count: key.count };
    const entries: NewHistoryEntry[] = [];
    if (attempt === 1) entries.push(this.#entry(startedAt, "step_started", step, { config }));
    entries.push(this.#entry(attemptStart, "attempt_started", step, { attempt }));
    const row: StepRow = {
      workflow: this.workflow,
      instanceId: this.id,
      ...step,
      seq: key.seq,
      status: "running",
      config,
      attempts: attempt,
      result: null,
      // The previous attempt's error: on recovery it tells whether that one was lost too.
      error: previousError,
      startedAt,
      endedAt: null,
      wakeAt: null,
      eventType: null,
    };
    await this.#commit(entries, row);
  }

  /** Runs one attempt of a callback under its timeout, through the `wrapStep` hook. */
  #attempt(
    key: StepKey,
    attempt: number,
    config: ResolvedStepConfig,
    timeoutMs: number,
    callback: (ctx: WorkflowStepContext) => unknown,
  ): Promise<AttemptResult> {
    const ctx: WorkflowStepContext = {
      step: { name: key.name, count: key.count },
      attempt,
      config: {
        retries: { ...config.retries },
        timeout: config.timeout,
        ...(config.sensitive ? { sensitive: config.sensitive } : {}),
      },
    };
    const next = async () => callback(ctx);
    const { wrapStep } = this.#host.hooks;
    const { clock } = this.#host;
    const timedOut = (): AttemptResult => ({
      ok: false,
      error: new WorkflowTimeoutError(`Execution timed out after ${timeoutMs}ms`),
    });
    return new Promise<AttemptResult>((resolve) => {
      let settled = false;
      const deadline = clock.now() + timeoutMs;
      const timer = clock.setTimer(() => {
        if (settled) return;
        settled = true;
        resolve(timedOut());
      }, timeoutMs);
      // A callback that blocks the thread settles before its timer can fire: one that settles past
      // its deadline timed out all the same, and its outcome is discarded.
      const settle = (result: AttemptResult) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        resolve(clock.now() > deadline ? timedOut() : result);
      };
      const work = wrapStep
        ? wrapStep({ workflow: this.workflow, instanceId: this.id, step: key, attempt, config }, next)
        : next();
      work.then(
        (value) => settle({ ok: true, value }),
        (error) => settle({ ok: false, error }),
      );
    });
  }

  async #sleep(key: RunKey, stored: StepRow | undefined, wakeAtFrom: (now: number) => number): Promise<void> {
    const step = { kind: key.kind, name: key.name, count: key.count };
    this.#waits++;
    let row = stored;
    try {
      if (!row) {
        const now = this.#now();
        const wanted = wakeAtFrom(now);
        const durationMs = this.#adjust(key, "sleep", Math.max(0, wanted - now));
        row = {
          workflow: this.workflow,
          instanceId: this.id,
          ...step,
          seq: key.seq,
          status: "sleeping",
          config: null,
          attempts: 0,
          result: null,
          error: null,
          startedAt: now,
          endedAt: null,
          wakeAt: now + durationMs,
          eventType: null,
        };
        const sleeping = row;
        await this.#commit(
          [this.#entry(now, "sleep_started", step, { durationMs, wakeAt: now + durationMs })],
          sleeping,
        );
        this.#steps.set(stepKeyString(key), row);
      }
      await this.#waitUntil(row.wakeAt ?? 0);
    } finally {
      this.#waits--;
    }
    const now = this.#now();
    const done: StepRow = {
      ...row,
      status: "succeeded",
      endedAt: now,
      wakeAt: null,
      result: encodeValue(undefined),
    };
    await this.#commit([this.#entry(now, "sleep_completed", step)], done);
    this.#steps.set(stepKeyString(key), done);
  }

  async #waitForEvent(
    key: RunKey,
    stored: StepRow | undefined,
    type: string,
    timeoutMs: number,
  ): Promise<WorkflowStepEvent> {
    const step = { kind: key.kind, name: key.name, count: key.count };
    const now = this.#now();
    const startedAt = stored?.startedAt ?? now;
    const timeoutAt = stored?.wakeAt ?? now + this.#adjust(key, "eventTimeout", timeoutMs);
    const waiter: Waiter = {
      type,
      key,
      startedAt,
      timeoutAt,
      timeoutMs,
      settled: false,
      resolve: () => {},
      reject: () => {},
    };
    const result = new Promise<WorkflowStepEvent>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    this.#waits++;
    this.#waiters.push(waiter);
    if (!stored) {
      const row: StepRow = {
        workflow: this.workflow,
        instanceId: this.id,
        ...step,
        seq: key.seq,
        status: "waiting",
        config: null,
        attempts: 0,
        result: null,
        error: null,
        startedAt,
        endedAt: null,
        wakeAt: timeoutAt,
        eventType: type,
      };
      await this.#commit([this.#entry(now, "wait_started", step, { eventType: type, timeoutAt })], row);
      this.#steps.set(stepKeyString(key), row);
    }
    if (
      (this.#available.get(type) ?? 0) > 0 &&
      this.#waiters.find((w) => w.type === type && !w.settled) === waiter
    )
      void this.#deliver(waiter);
    else this.#armTimeout(waiter);
    return result;
  }

  #armTimeout(waiter: Waiter): void {
    if (waiter.settled || this.#ended) return;
    const remaining = waiter.timeoutAt - this.#now();
    if (remaining <= 0) {
      void this.#timeOut(waiter);
    } else if (remaining <= this.#host.hotWaitMs) {
      const timer = this.#host.clock.setTimer(() => {
        this.#hotTimers.delete(timer);
        void this.#timeOut(waiter);
      }, remaining);
      waiter.timer = timer;
      this.#hotTimers.add(timer);
    } else {
      waiter.suspension = { wakeAt: waiter.timeoutAt };
      this.#suspensions.add(waiter.suspension);
      this.#scheduleCheck();
    }
  }

  #settle(waiter: Waiter): boolean {
    if (waiter.settled || this.#ended) return false;
    waiter.settled = true;
    this.#waits--;
    this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
    if (waiter.timer) {
      waiter.timer.cancel();
      this.#hotTimers.delete(waiter.timer);
    }
    if (waiter.suspension) this.#suspensions.delete(waiter.suspension);
    return true;
  }

  async #deliver(waiter: Waiter): Promise<void> {
    if (waiter.settled || this.#ended || !(await this.#resume())) return;
    if (!this.#settle(waiter)) return;
    const step = { kind: waiter.key.kind, name: waiter.key.name, count: waiter.key.count };
    const keyString = stepKeyString(waiter.key);
    let event: WorkflowStepEvent | undefined;
    let row: StepRow | undefined;
    this.#available.set(waiter.type, (this.#available.get(waiter.type) ?? 1) - 1);
    const now = this.#now();
    const delivered = await this.#commit([this.#entry(now, "wait_completed", step)], async (tx) => {
      const e = await tx.events.consume(this.workflow, this.id, waiter.type, keyString);
      if (!e) return undefined;
      event = { payload: decodeValue(e.payload), timestamp: new Date(e.timestamp), type: e.type };
      row = {
        workflow: this.workflow,
        instanceId: this.id,
        ...step,
        seq: waiter.key.seq,
        status: "succeeded",
        config: null,
        attempts: 0,
        result: encodeValue(event),
        error: null,
        startedAt: waiter.startedAt,
        endedAt: now,
        wakeAt: null,
        eventType: waiter.type,
      };
      return row;
    });
    if (delivered && event && row) {
      this.#steps.set(keyString, row);
      waiter.resolve(event);
      return;
    }
    // The event was taken meanwhile (it cannot be, with one run per instance; kept for safety).
    waiter.settled = false;
    this.#waits++;
    this.#waiters.push(waiter);
    this.#armTimeout(waiter);
  }

  async #timeOut(waiter: Waiter): Promise<void> {
    if (waiter.settled || this.#ended || !(await this.#resume())) return;
    if (!this.#settle(waiter)) return;
    const step = { kind: waiter.key.kind, name: waiter.key.name, count: waiter.key.count };
    const now = this.#now();
    const error = eventTimeoutError(eventTimeoutMessage(waiter.timeoutMs));
    // Stored (and shown by the API) under the engine's name for it, like Cloudflare's wait log.
    const recorded = { name: "WorkflowTimeoutError", message: error.message };
    const row: StepRow = {
      workflow: this.workflow,
      instanceId: this.id,
      ...step,
      seq: waiter.key.seq,
      status: "failed",
      config: null,
      attempts: 0,
      result: null,
      error: recorded,
      startedAt: waiter.startedAt,
      endedAt: now,
      wakeAt: null,
      eventType: waiter.type,
    };
    await this.#commit([this.#entry(now, "wait_timed_out", step, { error: recorded })], row);
    this.#steps.set(stepKeyString(waiter.key), row);
    waiter.reject(error);
  }

  /** Waits until `wakeAt`: in memory when it is near, otherwise by suspending the run. */
  async #waitUntil(wakeAt: number): Promise<void> {
    const remaining = wakeAt - this.#now();
    if (remaining <= 0) return;
    if (remaining <= this.#host.hotWaitMs) {
      await new Promise<void>((resolve) => {
        const timer = this.#host.clock.setTimer(() => {
          this.#hotTimers.delete(timer);
          resolve();
        }, remaining);
        this.#hotTimers.add(timer);
      });
      if (this.#ended || !(await this.#resume())) return never();
      return;
    }
    this.#suspensions.add({ wakeAt });
    this.#scheduleCheck();
    return never();
  }

  /**
   * Before the run goes on in memory after a wait, with the instance stored `waiting`: takes a slot
   * of the shared `maxConcurrent` (see `RunHost.takeSlot`). When there is none, the run gives up
   * its place: its timers stop and it is suspended ready at once, so a claim resumes it, waking ones
   * first, when a slot frees. Returns whether the run may go on.
   */
  async #resume(): Promise<boolean> {
    if (this.#yielded) return false;
    if (!this.#host.takeSlot || this.#persistedStatus !== "waiting" || this.#pausing) return !this.#ended;
    this.#slotTaking ??= this.#host.takeSlot(this.workflow, this.id, this.#epoch).finally(() => {
      this.#slotTaking = undefined;
    });
    let slot: "ok" | "full" | "fenced";
    try {
      slot = await this.#slotTaking;
    } catch (e) {
      this.#host.log(`Cairn could not take a concurrency slot for instance ${this.id}`, e);
      slot = "full";
    }
    if (this.#ended) return false;
    if (slot === "fenced") {
      this.#end("aborted");
      return false;
    }
    if (slot === "ok") {
      if (this.#persistedStatus === "waiting") {
        this.#persistedStatus = "running";
        this.#log(this.#now(), "workflow_running");
      }
      return true;
    }
    if (!this.#yielded) {
      this.#yielded = true;
      this.#cancelTimers();
      this.#suspensions.add({ wakeAt: this.#now() });
      this.#scheduleCheck();
    }
    return false;
  }

  /** Holds a step back while a pause is pending; lets it through if the pause is cancelled. */
  async #passGate(): Promise<void> {
    if (!this.#pausing) return;
    this.#gate ??= new Promise<void>((r) => (this.#openGate = r));
    this.#blocked++;
    this.#scheduleCheck();
    try {
      await this.#gate;
    } finally {
      this.#blocked--;
    }
    if (this.#ended) return never();
  }

  // ---- commits and endings ------------------------------------------------------------------

  /**
   * Commits one step outcome with its history entries, fenced by the run's epoch (`steps.commit`):
   * one store operation, or a transaction when `write` must read first (an event to consume). A
   * `write` that finds nothing to store returns `undefined`: nothing is written and this returns
   * false. Instance-level entries waiting to be written go along.
   */
  async #commit(
    entries: NewHistoryEntry[],
    write: StepRow | ((tx: StoreTx) => Promise<StepRow | undefined>),
  ): Promise<boolean> {
    if (this.#ended) return never();
    this.#commits++;
    const pending = this.#pending;
    this.#pending = [];
    const { store } = this.#host;
    try {
      const now = this.#now();
      const status = this.#liveStatus() === "waiting" ? "waiting" : "running";
      const base: Omit<StepCommit, "step"> = {
        workflow: this.workflow,
        instanceId: this.id,
        epoch: this.#epoch,
        status,
        now,
        history: [...pending, ...entries],
        statusEntry: this.#entry(now, status === "waiting" ? "workflow_waiting" : "workflow_running"),
      };
      const before =
        typeof write === "function"
          ? await store.transaction(async (tx) => {
              const step = await write(tx);
              if (!step) return null;
              const r = await tx.steps.commit({ ...base, step });
              if (r === undefined) throw new Fenced();
              return r;
            })
          : await store.steps.commit({ ...base, step: write });
      if (before === undefined) throw new Fenced();
      if (before === null) {
        this.#pending = [...pending, ...this.#pending];
        return false;
      }
      if (before === "waitingForPause") this.#pausing = true;
      else this.#persistedStatus = status;
    } catch (e) {
      this.#commits--;
      if (!(e instanceof Fenced)) this.#host.log(`Cairn could not store progress of instance ${this.id}`, e);
      this.#end("aborted");
      return never();
    }
    this.#commits--;
    this.#host.changed(this.workflow, this.id, this.#persistedStatus);
    this.#scheduleCheck();
    return true;
  }

  /** Errors thrown out of a step into `run()`, with the step; an instance error names it. */
  #stepErrors = new WeakMap<object, StepKey>();

  #failedIn(e: unknown, key: StepKey): unknown {
    if (typeof e === "object" && e !== null && !this.#stepErrors.has(e)) this.#stepErrors.set(e, key);
    return e;
  }

  /** The stored error that ends the instance: name and message, the user's stack, and where. */
  #instanceError(e: unknown): SerializedError {
    const error = serializeError(e);
    const stack = e instanceof Error ? trimStack(e.stack, INTERNAL_FRAMES) : undefined;
    if (stack) error.stack = stack;
    const key = typeof e === "object" && e !== null ? this.#stepErrors.get(e) : undefined;
    if (key) {
      error.where = "step";
      error.step = {
        type: key.kind === "do" ? "step" : key.kind,
        name: key.name,
        count: key.count,
      };
    } else error.where = "run";
    return error;
  }

  #liveStatus(): "running" | "waiting" | "waitingForPause" {
    if (this.#pausing) return "waitingForPause";
    return this.#callbacks === 0 && this.#waits > 0 ? "waiting" : "running";
  }

  async #finish(outcome: { output: unknown } | { error: unknown }): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#cancelTimers();
    const now = this.#now();
    let patch: InstancePatch;
    const entries = this.#pending;
    this.#pending = [];
    if ("output" in outcome) {
      let output: Uint8Array | undefined;
      let failure: SerializedError | undefined;
      try {
        output = encodeValue(outcome.output);
        if (output.byteLength > MAX_PAYLOAD_BYTES)
          failure = {
            name: "WorkflowError",
            message: `(payload.too_large) The instance output is ${output.byteLength} bytes encoded; the limit is 1 MiB`,
          };
      } catch (e) {
        failure = {
          name: "WorkflowFatalError",
          message: `The instance output is not serialisable (${(e as Error).message})`,
        };
      }
      patch = failure
        ? { status: "errored", error: failure, endedAt: now }
        : { status: "complete", output: output!, endedAt: now };
      entries.push(
        failure
          ? this.#entry(now, "workflow_errored", undefined, { error: failure })
          : this.#entry(now, "workflow_completed"),
      );
    } else {
      const error = this.#instanceError(outcome.error);
      patch = { status: "errored", error, endedAt: now };
      entries.push(this.#entry(now, "workflow_errored", undefined, { error }));
    }
    Object.assign(patch, { updatedAt: now, readyAt: null, owner: null, leaseUntil: null, pausedAt: null });
    this.#commits++;
    try {
      const ok = await this.#host.store.instances.update(
        this.workflow,
        this.id,
        patch,
        { epoch: this.#epoch, statusIn: ACTIVE_STATUSES },
        entries,
      );
      this.#commits--;
      this.#host.changed(this.workflow, this.id, ok ? patch.status : undefined);
      this.#resolveDone(ok ? (patch.status as RunOutcome) : "aborted");
    } catch (e) {
      this.#commits--;
      this.#host.log(`Cairn could not store the end of instance ${this.id}`, e);
      this.#resolveDone("aborted");
    }
  }

  #scheduleCheck(): void {
    if (this.#ended || this.#checkScheduled) return;
    this.#checkScheduled = true;
    setImmediate(() => {
      this.#checkScheduled = false;
      if (this.#quiescent()) void this.#evict();
    });
  }

  /** Nothing is running, and what is left waits for a long time or for a pause to end. */
  #quiescent(): boolean {
    if (this.#ended || this.#callbacks > 0 || this.#commits > 0) return false;
    if (this.#pausing) return true;
    return this.#hotTimers.size === 0 && this.#suspensions.size + this.#blocked > 0;
  }

  async #evict(): Promise<void> {
    this.#ended = true;
    this.#cancelTimers();
    const now = this.#now();
    const pausing = this.#pausing;
    let wakeAt: number | null = null;
    for (const s of this.#suspensions) if (wakeAt === null || s.wakeAt < wakeAt) wakeAt = s.wakeAt;
    const waitTypes = [...new Set(this.#waiters.map((w) => w.type))];
    const entries = this.#pending;
    this.#pending = [];
    this.#commits++;
    try {
      let final: InstanceStatus | undefined;
      const ok = await this.#host.store.transaction(async (tx) => {
        // Lock the row first: a concurrent sendEvent (which locks it too) is then either seen by the
        // event check below or sees this suspension and wakes the instance itself.
        await tx.instances.get(this.workflow, this.id, { lock: true });
        let patch: InstancePatch;
        if (pausing) {
          patch = { status: "paused", pausedAt: now, readyAt: null };
          entries.push(this.#entry(now, "workflow_paused"));
        } else {
          // An event may have arrived after the last delivery: wake at once rather than at the timeout.
          let readyAt = wakeAt;
          if (waitTypes.length > 0) {
            const events = await tx.events.list(this.workflow, this.id);
            if (events.some((e) => e.consumedBy === null && waitTypes.includes(e.type))) readyAt = now;
          }
          patch = { status: "waiting", readyAt, priority: 0 };
          if (readyAt !== null && readyAt <= now) await tx.notify?.({ kind: "ready" });
          if (this.#persistedStatus !== "waiting") entries.push(this.#entry(now, "workflow_waiting"));
        }
        Object.assign(patch, { updatedAt: now, owner: null, leaseUntil: null });
        const statusIn = pausing ? ACTIVE_STATUSES : (["running", "waiting"] as const);
        if (!(await tx.instances.update(this.workflow, this.id, patch, { epoch: this.#epoch, statusIn }))) {
          // A pause arrived while the run was suspending: it becomes paused instead.
          const paused = {
            status: "paused",
            pausedAt: now,
            readyAt: null,
            updatedAt: now,
            owner: null,
            leaseUntil: null,
          } as const;
          if (
            !(await tx.instances.update(this.workflow, this.id, paused, {
              epoch: this.#epoch,
              statusIn: ["waitingForPause"],
            }))
          )
            return false;
          entries.push(this.#entry(now, "workflow_paused"));
          patch.status = "paused";
        }
        await tx.history.append(entries);
        final = patch.status;
        return true;
      });
      this.#commits--;
      this.#host.changed(this.workflow, this.id, final);
      this.#resolveDone(ok ? "evicted" : "aborted");
    } catch (e) {
      this.#commits--;
      this.#host.log(`Cairn could not store the suspension of instance ${this.id}`, e);
      this.#resolveDone("aborted");
    }
  }

  #end(outcome: RunOutcome): void {
    this.#ended = true;
    this.#cancelTimers();
    this.#resolveDone(outcome);
  }

  #cancelTimers(): void {
    for (const t of this.#hotTimers) t.cancel();
    this.#hotTimers.clear();
  }

  // ---- small helpers ------------------------------------------------------------------------

  #now(): number {
    return this.#host.clock.now();
  }

  #adjust(key: StepKey, reason: "sleep" | "retry" | "eventTimeout", ms: number): number {
    const hook = this.#host.hooks.adjustWait;
    return hook ? hook({ workflow: this.workflow, instanceId: this.id, step: key, reason }, ms) : ms;
  }

  #log(timestamp: number, type: NewHistoryEntry["type"]): void {
    this.#pending.push(this.#entry(timestamp, type));
  }

  #entry<T extends HistoryEventType>(
    timestamp: number,
    type: T,
    step?: StepKey,
    data?: HistoryDataOf<T>,
  ): NewHistoryEntry {
    const e: Record<string, unknown> = { workflow: this.workflow, instanceId: this.id, type, timestamp };
    if (step) e.step = step;
    if (data) e.data = data;
    return e as NewHistoryEntry;
  }
}
