import { fileURLToPath } from "node:url";
import {
  type AdjustDelay,
  type Attempt,
  type AttemptResult,
  type Clock,
  canRetry,
  DEFAULT_EVENT_TIMEOUT,
  DELAY_FUNCTION_TIMEOUT_MS,
  DYNAMIC_DELAY,
  deserializeError,
  dynamicDelayMs,
  type ExecutionContext,
  eligibleRollbacks,
  endAttempt,
  endRollbacks,
  endRun,
  endSleep,
  type HistoryEventType,
  historyEntry,
  type InstancePatch,
  type InstanceRow,
  type InstanceStatus,
  type InstanceWrite,
  isNonRetryable,
  loseAttempt,
  MAX_EVENT_TIMEOUT_MS,
  MAX_INSTANCE_STORAGE_BYTES,
  MAX_SLEEP_MS,
  MIN_EVENT_TIMEOUT_MS,
  type NewHistoryEntry,
  nonRetryableDelayError,
  type ParkState,
  park,
  parkPaused,
  parseDuration,
  parseRollbackOptions,
  type ResolvedStepConfig,
  ROLLBACK_PHASE_MESSAGE,
  type RollbackOptions,
  type RollbackState,
  type RunResult,
  receiveEvent,
  replayStep,
  resolveStepConfig,
  rollbackCall,
  rollbackKeyString,
  rollbackMissing,
  type SerializedError,
  type StepCall,
  StepCounter,
  type StepKey,
  type StepKind,
  type StepRow,
  type StepWrite,
  scheduleOfInstanceId,
  serializeError,
  startAttempt,
  startRollbacks,
  startSleep,
  startWait,
  stepKeyString,
  stepLabel,
  suspectLane,
  type TimerHandle,
  timeOutWait,
  trimStack,
  validateEventType,
  validateStepName,
  type WorkflowClass,
  type WorkflowDelayFunction,
  WorkflowError,
  type WorkflowEvent,
  WorkflowFatalError,
  type WorkflowStep,
  type WorkflowStepConfig,
  type WorkflowStepContext,
  type WorkflowStepEvent,
  WorkflowTimeoutError,
  waitMode,
  waitNext,
} from "@cairn/core";
import type { ClaimedInstance, StepCommit, Store, StoreTx } from "@cairn/store";
import {
  decodeStepResult,
  decodeValue,
  encodeStreamMarker,
  encodeValue,
  readStepStream,
  StreamResultError,
  stepChunks,
  storedByteLength,
  streamOf,
  unclonableReason,
} from "./codec.ts";
import type { RuntimeHooks } from "./hooks.ts";
import { InFlight } from "./in-flight.ts";
import type { SuspectLanes } from "./suspects.ts";
import { cpuMeter, reportedCpuTime, type Telemetry } from "./telemetry.ts";
import { type RunTrace, startRunTrace } from "./tracing.ts";

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
  /** Waits at or below this many ms keep the run in memory; longer ones park it. */
  readonly hotWaitMs: number;
  /**
   * A step callback still running after this many ms is stored as running (the "attempt started"
   * marker: a process that dies during it counts the attempt).
   */
  readonly attemptMarkerAfterMs: number;
  /** Orders attempts that may have killed the previous process (see `SuspectLanes`). */
  readonly suspects: SuspectLanes;
  readonly stepLimit: number;
  /** A workflow's own step limit (`WorkflowDefinition.stepLimit`), when it has one. */
  readonly stepLimitOf?: (workflow: string) => number | undefined;
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
  /** Told what runs store and cost (SPEC §12); absent when nothing observes. */
  telemetry?: Telemetry;
  /** `limits.cpu_ms`: an attempt over it is marked `cpuLimitExceeded` (not stopped). */
  readonly cpuLimitMs?: number;
  /** Reports errors the run cannot hand to user code (a store that failed). */
  log(message: string, error: unknown): void;
}

export type RunOutcome = "complete" | "errored" | "terminated" | "parked" | "aborted";

/** A run's commit was refused: the instance was terminated, restarted, deleted or claimed elsewhere. */
class Fenced extends Error {}

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** What a sleep returns, encoded once: every finished sleep stores it as its result. */
const SLEEP_RESULT = encodeValue(undefined);

interface Waiter {
  type: string;
  call: StepCall;
  startedAt: number;
  timeoutAt: number;
  /** The configured timeout (Cloudflare's timeout message names it, even when a test forces it). */
  timeoutMs: number;
  settled: boolean;
  resolve(event: WorkflowStepEvent): void;
  reject(error: Error): void;
  timer?: TimerHandle;
  longWait?: LongWait;
}

/** A wait too long to keep the run in memory for: once nothing else runs, the run parks until then. */
interface LongWait {
  wakeAt: number;
}

/** An attempt's callback as it settled: its value, or what it threw (or its timeout). */
type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** An attempt as the run follows it: whether its marker was stored, and the value it returned. */
type RunAttempt = Attempt & { shown: boolean; value: unknown };

/**
 * One execution of `run()` for a claimed instance: the driver of the decisions in
 * `core/transitions.ts`. It replays stored step outcomes, runs the steps that have none, commits
 * each outcome before settling its promise, and ends in one of four ways: the instance completes or
 * errors, the run parks (every remaining step is a long wait, or the instance is pausing: the
 * instance is left to the store and the run dropped), or it is aborted (terminate, restart, delete,
 * or a lost claim: it stops without writing more).
 *
 * What the decisions do not own lives here: timers, the pause gate, concurrency slots, suspects of a
 * crash, the step object's validation and the store. Invariants: every write checks the epoch the
 * instance was claimed with (fencing); a run counts its callbacks, commits and waits in flight
 * (`InFlight`), and parks only when no callback or commit is.
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
  /** Step callbacks running (from their attempt's start until its outcome is decided). */
  readonly #callbacks = new InFlight();
  /** Store writes in flight. */
  readonly #commits = new InFlight();
  /** Sleeps and retry waits under way; event waits are `#waiters`. */
  readonly #waits = new InFlight();
  #blocked = 0;
  #hotTimers = new Set<TimerHandle>();
  #longWaits = new Set<LongWait>();
  #waiters: Waiter[] = [];
  #pausing: boolean;
  #openGate?: () => void;
  #gate?: Promise<void>;
  #ended = false;
  #persistedStatus: "running" | "waiting" | "waitingForPause";
  #pending: NewHistoryEntry[] = [];
  /** A `takeSlot` in progress, shared by everything resuming at once. */
  #slotTaking?: Promise<"ok" | "full" | "fenced">;
  /** No slot was free: the run stopped its timers and waits to be parked. */
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
  /** Rollback handlers registered by `step.do` calls of this run, by step key; none until one is. */
  #handlers?: Map<string, RollbackOptions["rollback"]>;
  /**
   * The rollback phase (SPEC §9.1): its trigger once it is decided. From then on a step call with no
   * stored outcome is refused, nothing parks, and waits are kept in memory.
   */
  #rollback?: RollbackState;
  /** The phase's rollbacks have started running (`run()` settling later changes nothing). */
  #rollingBack = false;
  /** The original error of a trigger `error`, handed to the handlers as it was thrown. */
  #triggerError?: Error;
  /** CPU time (ms) of this run's attempts and `run()` code so far (SPEC §12.2, see `CpuMeter`). */
  #cpuMs = 0;
  /** The mark of the open `run()` code segment of the CPU meter, or -1. */
  #runCode = -1;
  /** Steps whose stored outcome this run returned without running them. */
  #replayed = 0;
  /** The run's span when tracing is on (SPEC §12.4). */
  #trace?: RunTrace;

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
    // A rollback phase under way when the last owner stopped: `run()` is replayed only to register
    // the handlers again (the first step with no stored outcome unwinds it), then the phase goes on.
    if (row.rollback && !row.rollback.outcome) this.#rollback = row.rollback;
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
    this.#trace = startRunTrace({
      workflow: this.workflow,
      id: this.id,
      createdAt: this.#row.createdAt,
      traceparent: this.#row.traceparent,
      reason: this.#recovering
        ? "recovery"
        : fresh || this.#row.startedAt === this.#claimedAt
          ? "start"
          : steps.length === 0
            ? "restart"
            : "wake-up",
    });

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
      const schedule = scheduleOfInstanceId(this.id);
      if (schedule) event.schedule = schedule;
    } catch (e) {
      void this.#finish({ error: e });
      return;
    }
    let result: Promise<unknown>;
    this.#openRunCode();
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

  /** A pause was requested: let in-flight callbacks finish, start nothing new, then park as paused. */
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
    return !this.#started || this.#commits.count > 0 || this.#checkScheduled;
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
      do<T>(
        name: string,
        configOrCallback: unknown,
        maybeCallback?: unknown,
        maybeRollback?: unknown,
      ): Promise<T> {
        const shortForm = typeof configOrCallback === "function";
        const callback = (shortForm ? configOrCallback : maybeCallback) as
          | ((ctx: WorkflowStepContext) => Promise<T> | T)
          | undefined;
        const config = shortForm ? undefined : configOrCallback;
        const rollbackArg = shortForm ? maybeCallback : maybeRollback;
        let rollback: RollbackOptions | undefined;
        if (rollbackArg !== undefined)
          try {
            rollback = parseRollbackOptions(name, rollbackArg, run.#host.defaultStepConfig);
          } catch (e) {
            return Promise.reject(e);
          }
        return run.#pipeline(
          "do",
          name,
          (call, stored) => {
            if (typeof callback !== "function")
              throw new WorkflowError("step.invalid_config", `Step "${name}" requires a callback function`);
            return run.#do(
              call,
              stored,
              config as WorkflowStepConfig | undefined,
              callback,
              rollback?.config,
            ) as Promise<T>;
          },
          rollback,
        );
      },
      sleep(name: string, duration: unknown): Promise<void> {
        return run.#pipeline("sleep", name, (call, stored) => {
          const ms = stored ? 0 : parseDuration(duration, `Sleep "${name}"`);
          if (ms > MAX_SLEEP_MS)
            throw new WorkflowError(
              "step.invalid_config",
              `Sleep "${name}" is longer than the limit of 365 days`,
            );
          return run.#sleep(call, stored, (now) => now + ms);
        });
      },
      sleepUntil(name: string, timestamp: unknown): Promise<void> {
        return run.#pipeline("sleep", name, (call, stored) => {
          const t = timestamp instanceof Date ? timestamp.getTime() : timestamp;
          if (typeof t !== "number" || !Number.isFinite(t))
            throw new WorkflowError(
              "step.invalid_config",
              `sleepUntil "${name}" needs a Date or a number of ms since the epoch`,
            );
          return run.#sleep(call, stored, (now) => {
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
        return run.#pipeline("waitForEvent", name, (call, stored) => {
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
          return run.#waitForEvent(call, stored, type, timeoutMs) as Promise<WorkflowStepEvent<T>>;
        });
      },
    } as WorkflowStep;
  }

  /**
   * Every `step.*` call goes through here: validate → key → look up (`replayStep`) → return the
   * stored outcome, or (once no pause holds it back) run the step.
   */
  async #pipeline<T>(
    kind: StepKind,
    name: string,
    body: (call: StepCall, stored: StepRow | undefined) => Promise<T>,
    rollback?: RollbackOptions,
  ): Promise<T> {
    if (this.#ended) return never();
    validateStepName(name);
    const key = this.#counter.next(kind, name);
    const seq = ++this.#seq;
    const own = kind === "do" ? this.#host.stepLimitOf?.(this.workflow) : undefined;
    const limit = own ?? this.#host.stepLimit;
    if (kind === "do" && ++this.#doCount > limit) {
      const raise =
        own === undefined ? "Raise stepLimit in the Cairn options" : "Raise the workflow's limits.steps";
      void this.#finish({
        error: new WorkflowError(
          "step.limit_reached",
          `The limit of ${limit} steps has been reached. ${raise} to allow more.`,
        ),
      });
      return never();
    }
    const keyString = stepKeyString(key);
    // The handler is code: registered each time `run()` passes the call, cached or not.
    if (rollback) (this.#handlers ??= new Map()).set(keyString, rollback.rollback);
    const stored = this.#steps.get(keyString);
    const replay = replayStep(kind, stored);
    // A stored outcome goes straight back to `run()`: its code segment stays open (SPEC §12.2).
    if (replay) {
      this.#replayed++;
      if (replay.outcome === "value")
        return decodeValue<T>(replay.result, stepChunks(this.#host.store.steps, this.workflow, this.id, key));
      if (replay.outcome === "error") throw this.#failedIn(replay.error, key);
    }
    if (this.#rollback) throw new Error(ROLLBACK_PHASE_MESSAGE);
    this.#closeRunCode();
    await this.#passGate();
    let value: T;
    try {
      value = await body({ workflow: this.workflow, instanceId: this.id, key, seq }, stored);
    } catch (e) {
      await this.#passGate();
      this.#openRunCode();
      throw this.#failedIn(e, key);
    }
    // A pause requested while the step ran takes effect before the workflow sees the outcome.
    await this.#passGate();
    this.#openRunCode();
    return value;
  }

  async #do(
    call: StepCall,
    stored: StepRow | undefined,
    userConfig: WorkflowStepConfig | undefined,
    callback: (ctx: WorkflowStepContext) => unknown,
    rollbackConfig?: ResolvedStepConfig,
    resolvedConfig?: ResolvedStepConfig,
  ): Promise<unknown> {
    const { key } = call;
    const config =
      stored?.config ??
      resolvedConfig ??
      resolveStepConfig(key.name, userConfig, this.#host.defaultStepConfig);
    // Frozen with the first attempt, like the config.
    const rollback = stored ? (stored.rollbackConfig ?? null) : (rollbackConfig ?? null);
    const timeoutMs = parseDuration(config.timeout);
    const stepStartedAt = stored?.startedAt ?? this.#now();
    // An attempt in flight when the process running it stopped: it failed.
    const delayFn = delayFunctionOf(userConfig);
    if (stored?.status === "running") {
      // A lost attempt does not call a delay function: the runtime's default delay is its base.
      const base =
        config.retries.delay === DYNAMIC_DELAY
          ? parseDuration(this.#host.defaultStepConfig.retries.delay)
          : undefined;
      const lost = loseAttempt(call, stored, config, this.#now(), this.#adjuster(key, "retry"), base);
      await this.#commit(lost);
      this.#steps.set(stepKeyString(key), lost.step);
      if (lost.next === "throw") throw lost.error;
      stored = lost.step;
    }
    let attempts = stored?.attempts ?? 0;
    let previousError = stored?.error ?? null;
    if (stored?.status === "retrying" && stored.wakeAt !== null) {
      const wakeAt = stored.wakeAt;
      await this.#waits.during(() => this.#waitUntil(wakeAt));
    }
    for (;;) {
      if (!(await this.#resume())) return never();
      const a: RunAttempt = {
        call,
        config,
        stepStartedAt,
        attempt: attempts + 1,
        startedAt: this.#now(),
        previousError,
        rollbackConfig: rollback,
        shown: false,
        value: undefined,
      };
      let result = await this.#callbacks.during(() => this.#runAttempt(a, timeoutMs, callback));
      if (result === undefined) return never();
      // A delay function (SPEC §9.3) is asked for the wait before the retry; when it fails, the step does.
      let delayBaseMs: number | undefined;
      if (
        config.retries.delay === DYNAMIC_DELAY &&
        !result.ok &&
        !isNonRetryable(result.error) &&
        canRetry(config.retries, a.attempt)
      ) {
        const failure = result.error;
        const d = delayFn
          ? await this.#callbacks.during(() => this.#askDelay(delayFn, a, failure))
          : "is not available (the step's code has no delay function now)";
        if (d === undefined) return never();
        if (typeof d === "number") delayBaseMs = d;
        else result = { ok: false, error: nonRetryableDelayError(key, d) };
      }
      const end = endAttempt(a, result, this.#now(), a.shown, this.#adjuster(key, "retry"), delayBaseMs);
      if (end.next === "return") {
        await this.#commit(end);
        this.#steps.set(stepKeyString(key), end.step);
        return a.value;
      }
      if (end.next === "throw") {
        await this.#commit(end);
        this.#steps.set(stepKeyString(key), end.step);
        throw end.error;
      }
      // Counted as a wait from its commit on, so the commit stores the instance `waiting`.
      await this.#waits.during(async () => {
        await this.#commit(end);
        this.#steps.set(stepKeyString(key), end.step);
        await this.#waitUntil(end.at);
      });
      await this.#passGate();
      attempts = a.attempt;
      previousError = end.step.error;
    }
  }

  /**
   * Runs one attempt with the "attempt started" marker (step row `running`, its start entries):
   * written once the callback has run for a moment, so the API and dashboard show it and a crash
   * during it counts the attempt; fast attempts write none. A suspect of the last crash (see
   * `suspectLane`) writes it before its callback runs, so one that kills the process without
   * yielding is counted too, and takes its turn among the other suspects. Returns the outcome with
   * the value encoded, and sets `a.shown` (the marker was stored; the outcome lands after it) and
   * `a.value`; `undefined` when the run ended meanwhile, or the value cannot be stored (the
   * instance fails).
   */
  async #runAttempt(
    a: RunAttempt,
    timeoutMs: number,
    callback: (ctx: WorkflowStepContext) => unknown,
  ): Promise<AttemptResult | undefined> {
    let shown: Promise<void> | undefined;
    let marker: TimerHandle | undefined;
    const lane = suspectLane(this.#recovering, a.previousError);
    const suspect =
      lane === "alone"
        ? await this.#host.suspects.alone()
        : lane === "alongside"
          ? await this.#host.suspects.alongside()
          : undefined;
    if (this.#ended) {
      suspect?.();
      return undefined;
    }
    if (lane) {
      shown = this.#showAttempt(a);
      await shown;
    } else
      marker = this.#host.clock.setTimer(() => {
        shown = this.#showAttempt(a);
      }, this.#host.attemptMarkerAfterMs);
    const settled = await this.#attempt(a, timeoutMs, callback);
    suspect?.();
    marker?.cancel();
    this.#recovering = false;
    if (shown) await shown;
    a.shown = shown !== undefined;
    if (!settled.ok) return settled;
    if (settled.value instanceof ReadableStream) {
      // A stream result (SPEC §9.3): read to its end and stored as chunk rows; the workflow gets a new
      // stream over them.
      let read: { byteLength: number; pieces: Uint8Array[] };
      try {
        read = await readStepStream(settled.value, a.call.key.name, this.#storageLeft());
      } catch (e) {
        if (!(e instanceof StreamResultError)) return { ok: false, error: e };
        void this.#finish({ error: e });
        return undefined;
      }
      a.value = streamOf(read.pieces);
      return { ok: true, result: encodeStreamMarker(read.byteLength), chunks: read.pieces };
    }
    a.value = settled.value;
    try {
      return { ok: true, result: encodeValue(settled.value) };
    } catch (e) {
      const reason = unclonableReason(e) ?? (e as Error).message;
      void this.#finish({
        error: new WorkflowFatalError(
          `The execution of the Workflow instance was terminated, as the step "${a.call.key.name}" returned a value which is not serialisable (${reason})`,
        ),
      });
      return undefined;
    }
  }

  /** Stores that an attempt is under way: the step row as `running` and the attempt's start entries. */
  async #showAttempt(a: Attempt): Promise<void> {
    await this.#commit(startAttempt(a));
  }

  /**
   * Calls a step's delay function for failed attempt `a`: its value in ms, or why it cannot be used
   * (threw, took more than 5 s, returned nonsense). `undefined` when the run was aborted meanwhile.
   */
  async #askDelay(
    fn: WorkflowDelayFunction,
    a: Attempt,
    failure: unknown,
  ): Promise<number | string | undefined> {
    const error = failure instanceof Error ? failure : new Error(String(failure));
    const { clock } = this.#host;
    let timer: { cancel(): void } | undefined;
    const timedOut = new Promise<string>((resolve) => {
      timer = clock.setTimer(
        () => resolve(`timed out after ${DELAY_FUNCTION_TIMEOUT_MS} ms`),
        DELAY_FUNCTION_TIMEOUT_MS,
      );
    });
    const asked = (async () => {
      try {
        return dynamicDelayMs(await fn({ ctx: stepContext(a), error }));
      } catch (e) {
        return `threw: ${(e as Error)?.message ?? String(e)}`;
      }
    })();
    try {
      return await Promise.race([asked, timedOut]);
    } finally {
      timer?.cancel();
    }
  }

  /** Runs one attempt of a callback under its timeout, through the `wrapStep` hook. */
  #attempt(a: Attempt, timeoutMs: number, callback: (ctx: WorkflowStepContext) => unknown): Promise<Settled> {
    const ctx = stepContext(a);
    const next = async () => callback(ctx);
    const { wrapStep } = this.#host.hooks;
    const { clock } = this.#host;
    const timedOut = (): Settled => ({
      ok: false,
      error: new WorkflowTimeoutError(`Execution timed out after ${timeoutMs}ms`),
    });
    const span = this.#trace?.startAttempt(a.call.key, a.attempt);
    const cpu = cpuMeter.open();
    return new Promise<Settled>((resolve) => {
      let settled = false;
      const deadline = clock.now() + timeoutMs;
      const done = (result: Settled) => {
        const measured = cpuMeter.close(cpu);
        this.#cpuMs += a.cpuTimeMs = reportedCpuTime(ctx) ?? measured;
        a.cpuLimitMs = this.#host.cpuLimitMs;
        if (span)
          this.#trace!.endAttempt(
            span,
            result.ok ? "ok" : result.error instanceof WorkflowTimeoutError ? "timeout" : "error",
            result.ok ? undefined : result.error,
          );
        resolve(result);
      };
      const timer = clock.setTimer(() => {
        if (settled) return;
        settled = true;
        done(timedOut());
      }, timeoutMs);
      // A callback that blocks the thread settles before its timer can fire: one that settles past
      // its deadline timed out all the same, and its outcome is discarded.
      const settle = (result: Settled) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        done(clock.now() > deadline ? timedOut() : result);
      };
      const work = wrapStep
        ? wrapStep(
            {
              workflow: this.workflow,
              instanceId: this.id,
              step: a.call.key,
              attempt: a.attempt,
              config: a.config,
            },
            next,
          )
        : next();
      work.then(
        (value) => settle({ ok: true, value }),
        (error) => settle({ ok: false, error }),
      );
    });
  }

  async #sleep(
    call: StepCall,
    stored: StepRow | undefined,
    wakeAtFrom: (now: number) => number,
  ): Promise<void> {
    const sleeping = await this.#waits.during(async () => {
      let row = stored;
      if (!row) {
        const now = this.#now();
        const wanted = wakeAtFrom(now);
        const start = startSleep(call, now, this.#adjust(call.key, "sleep", Math.max(0, wanted - now)));
        this.#trace?.event("sleep", call.key);
        await this.#commit(start);
        this.#steps.set(stepKeyString(call.key), start.step);
        row = start.step;
      }
      await this.#waitUntil(row.wakeAt ?? 0);
      return row;
    });
    const done = endSleep(call, sleeping, this.#now(), SLEEP_RESULT);
    await this.#commit(done);
    this.#steps.set(stepKeyString(call.key), done.step);
  }

  async #waitForEvent(
    call: StepCall,
    stored: StepRow | undefined,
    type: string,
    timeoutMs: number,
  ): Promise<WorkflowStepEvent> {
    const now = this.#now();
    const startedAt = stored?.startedAt ?? now;
    const timeoutAt = stored?.wakeAt ?? now + this.#adjust(call.key, "eventTimeout", timeoutMs);
    const waiter: Waiter = {
      type,
      call,
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
    this.#waiters.push(waiter);
    if (!stored) {
      const start = startWait(call, now, type, timeoutAt);
      this.#trace?.event("waitForEvent", call.key);
      await this.#commit(start);
      this.#steps.set(stepKeyString(call.key), start.step);
    }
    // Buffered events go to the first waiter of their type.
    const first = this.#waiters.find((w) => w.type === type && !w.settled) === waiter;
    this.#arm(waiter, first ? (this.#available.get(type) ?? 0) : 0);
    return result;
  }

  /** Delivers a buffered event to the waiter, or waits for one until its timeout (see `waitNext`). */
  #arm(waiter: Waiter, buffered: number): void {
    if (waiter.settled || this.#ended) return;
    const now = this.#now();
    switch (waitNext(buffered, waiter.timeoutAt, now, this.#host.hotWaitMs)) {
      case "deliver":
        void this.#deliver(waiter);
        return;
      case "timeOut":
        void this.#timeOut(waiter);
        return;
      case "hot": {
        const timer = this.#host.clock.setTimer(() => {
          this.#hotTimers.delete(timer);
          void this.#timeOut(waiter);
        }, waiter.timeoutAt - now);
        waiter.timer = timer;
        this.#hotTimers.add(timer);
        return;
      }
      case "park":
        waiter.longWait = { wakeAt: waiter.timeoutAt };
        this.#longWaits.add(waiter.longWait);
        this.#scheduleCheck();
    }
  }

  #settle(waiter: Waiter): boolean {
    if (waiter.settled || this.#ended) return false;
    waiter.settled = true;
    this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
    if (waiter.timer) {
      waiter.timer.cancel();
      this.#hotTimers.delete(waiter.timer);
    }
    if (waiter.longWait) this.#longWaits.delete(waiter.longWait);
    return true;
  }

  async #deliver(waiter: Waiter): Promise<void> {
    if (waiter.settled || this.#ended || !(await this.#resume())) return;
    if (!this.#settle(waiter)) return;
    const { call } = waiter;
    const keyString = stepKeyString(call.key);
    let event: WorkflowStepEvent | undefined;
    let received: StepWrite | undefined;
    this.#available.set(waiter.type, (this.#available.get(waiter.type) ?? 1) - 1);
    const now = this.#now();
    const delivered = await this.#commit(async (tx) => {
      const e = await tx.events.consume(this.workflow, this.id, waiter.type, keyString);
      if (!e) return undefined;
      event = { payload: decodeValue(e.payload), timestamp: new Date(e.timestamp), type: e.type };
      received = receiveEvent(call, waiter.startedAt, e, encodeValue(event), now);
      return received;
    });
    if (delivered && event && received) {
      this.#steps.set(keyString, received.step);
      waiter.resolve(event);
      return;
    }
    // The event was taken meanwhile (it cannot be, with one run per instance; kept for safety).
    waiter.settled = false;
    this.#waiters.push(waiter);
    this.#arm(waiter, 0);
  }

  async #timeOut(waiter: Waiter): Promise<void> {
    if (waiter.settled || this.#ended || !(await this.#resume())) return;
    if (!this.#settle(waiter)) return;
    const { call } = waiter;
    const timedOut = timeOutWait(call, waiter.startedAt, waiter.type, waiter.timeoutMs, this.#now());
    await this.#commit(timedOut);
    this.#steps.set(stepKeyString(call.key), timedOut.step);
    waiter.reject(timedOut.error);
  }

  /** Waits until `wakeAt`: in memory when it is near, otherwise by parking the run (`waitMode`). */
  async #waitUntil(wakeAt: number): Promise<void> {
    const now = this.#now();
    let mode = waitMode(wakeAt, now, this.#host.hotWaitMs);
    // The rollback phase never parks: its retry waits stay in memory.
    if (mode === "park" && this.#rollingBack) mode = "hot";
    if (mode === "now") return;
    if (mode === "hot") {
      await new Promise<void>((resolve) => {
        const timer = this.#host.clock.setTimer(() => {
          this.#hotTimers.delete(timer);
          resolve();
        }, wakeAt - now);
        this.#hotTimers.add(timer);
      });
      if (this.#ended || !(await this.#resume())) return never();
      return;
    }
    this.#longWaits.add({ wakeAt });
    this.#scheduleCheck();
    return never();
  }

  /**
   * Before the run goes on in memory after a wait, with the instance stored `waiting`: takes a slot
   * of the shared `maxConcurrent` (see `RunHost.takeSlot`). When there is none, the run gives up
   * its place: its timers stop and it is parked ready at once, so a claim resumes it, waking ones
   * first, when a slot frees. Returns whether the run may go on.
   */
  async #resume(): Promise<boolean> {
    if (this.#yielded) return false;
    if (!this.#host.takeSlot || this.#persistedStatus !== "waiting" || this.#pausing) return !this.#ended;
    this.#slotTaking ??= this.#host.takeSlot(this.workflow, this.id, this.#epoch).finally(() => {
      this.#slotTaking = undefined;
      this.#scheduleCheck();
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
      this.#longWaits.add({ wakeAt: this.#now() });
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
  async #commit(write: StepWrite | ((tx: StoreTx) => Promise<StepWrite | undefined>)): Promise<boolean> {
    if (this.#ended) return never();
    const pending = this.#pending;
    this.#pending = [];
    let stored: boolean;
    try {
      stored = await this.#commits.during(() => this.#storeStep(pending, write));
    } catch (e) {
      if (!(e instanceof Fenced)) this.#host.log(`Cairn could not store progress of instance ${this.id}`, e);
      else this.#host.telemetry?.leaseLost?.(this.workflow);
      this.#end("aborted");
      return never();
    }
    if (!stored) {
      this.#pending = [...pending, ...this.#pending];
      return false;
    }
    this.#host.changed(this.workflow, this.id, this.#persistedStatus);
    this.#scheduleCheck();
    return true;
  }

  /** The store operation of `#commit`: whether it stored anything. Throws `Fenced` when fenced. */
  async #storeStep(
    pending: NewHistoryEntry[],
    write: StepWrite | ((tx: StoreTx) => Promise<StepWrite | undefined>),
  ): Promise<boolean> {
    const { store } = this.#host;
    const now = this.#now();
    const status = this.#liveStatus() === "waiting" ? "waiting" : "running";
    const statusEntry = this.#entry(now, status === "waiting" ? "workflow_waiting" : "workflow_running");
    let history: NewHistoryEntry[] | undefined;
    const commit = (w: StepWrite): StepCommit => {
      const c: StepCommit = {
        workflow: this.workflow,
        instanceId: this.id,
        epoch: this.#epoch,
        status,
        now,
        step: w.step,
        history: (history = pending.length === 0 ? w.history : [...pending, ...w.history]),
        statusEntry,
      };
      if (w.chunks) c.chunks = w.chunks;
      return c;
    };
    const before =
      typeof write === "function"
        ? await store.transaction(async (tx) => {
            const w = await write(tx);
            if (!w) return null;
            const r = await tx.steps.commit(commit(w));
            if (r === undefined) throw new Fenced();
            return r;
          })
        : await store.steps.commit(commit(write));
    if (before === undefined) throw new Fenced();
    if (before === null) return false;
    if (history) this.#host.telemetry?.stored?.(history);
    if (before === "waitingForPause") this.#pausing = true;
    else this.#persistedStatus = status;
    return true;
  }

  /**
   * What is left of the instance's storage (SPEC §9.3: 1 GiB of params, step results and stream
   * results) for a stream result: events received are not counted (they are not all in memory).
   */
  #storageLeft(): number {
    let used = this.#row.params.byteLength;
    for (const s of this.#steps.values()) used += storedByteLength(s.result);
    return Math.max(0, MAX_INSTANCE_STORAGE_BYTES - used);
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
    return this.#callbacks.count === 0 && this.#waits.count + this.#waiters.length > 0
      ? "waiting"
      : "running";
  }

  async #finish(outcome: { output: unknown } | { error: unknown }): Promise<void> {
    if (this.#ended || this.#rollingBack) return;
    this.#closeRunCode();
    const now = this.#now();
    // A phase decided before `run()` settled (a resumed phase, terminate with rollback).
    if (this.#rollback) {
      void this.#rollBack(this.#rollback);
      return;
    }
    let result: RunResult;
    if ("output" in outcome)
      try {
        result = { output: encodeValue(outcome.output) };
      } catch (e) {
        result = { unserialisable: (e as Error).message };
      }
    else result = { error: this.#instanceError(outcome.error) };
    const end = endRun(this.workflow, this.id, result, now);
    // Every path to `errored` runs the registered rollbacks first.
    if (end.patch.status === "errored" && this.#mayRollBack()) {
      if ("error" in outcome && outcome.error instanceof Error) this.#triggerError = outcome.error;
      void this.#rollBack({ trigger: "error", triggerError: end.patch.error! });
      return;
    }
    await this.#end_(end);
  }

  /** Writes the run's end (`endRun`, or the end of a phase with nothing to compensate). */
  async #end_(end: InstanceWrite): Promise<void> {
    this.#ended = true;
    this.#cancelTimers();
    const history = this.#takePending(end.history);
    const wallMs = this.#metered(end.patch, this.#now());
    try {
      const ok = await this.#commits.during(() =>
        this.#host.store.instances.update(
          this.workflow,
          this.id,
          end.patch,
          { epoch: this.#epoch, statusIn: end.statusIn },
          history,
        ),
      );
      if (ok) this.#reported(history, wallMs, end.patch.status, end.patch.error);
      else this.#trace?.end("aborted", this.#replayed);
      this.#host.changed(this.workflow, this.id, ok ? end.patch.status : undefined);
      this.#resolveDone(ok ? (end.patch.status as RunOutcome) : "aborted");
    } catch (e) {
      this.#host.log(`Cairn could not store the end of instance ${this.id}`, e);
      this.#resolveDone("aborted");
    }
  }

  /** Whether a step of this run registered a rollback, or a stored one did. */
  #mayRollBack(): boolean {
    if (this.#handlers) return true;
    for (const s of this.#steps.values()) if (s.hasRollback) return true;
    return false;
  }

  /**
   * `terminate({ rollback: true })` reached this run: the phase starts once the step callbacks in
   * flight have finished, and the instance ends `terminated`.
   */
  rollback(state: RollbackState): void {
    if (this.#ended || this.#rollback) return;
    void this.#rollBack(state);
  }

  /**
   * The rollback phase: step calls are refused from now on, callbacks in flight finish and their
   * outcomes are stored, then the eligible steps' rollbacks run newest first, each a durable step of
   * kind `rollback` with its own retries, halting at the first that fails for good. The instance
   * then ends `errored` (trigger `error`) or `terminated`. Nothing eligible: it ends as it would have
   * without rollbacks.
   */
  async #rollBack(state: RollbackState): Promise<void> {
    if (this.#rollingBack || this.#ended) return;
    // Started by an earlier owner (its `rollback_started` is stored): it goes on where it was.
    const resumed = state.totalSteps !== undefined;
    this.#rollback = state;
    this.#rollingBack = true;
    // Waits of `run()` are dropped: nothing it waits for will be delivered.
    this.#cancelTimers();
    this.#longWaits.clear();
    for (const w of this.#waiters) w.settled = true;
    this.#waiters = [];
    // A callback's outcome is committed just after it settles: let those commits start and land.
    do {
      await this.#callbacks.idle();
      await new Promise<void>((r) => setImmediate(r));
      await this.#commits.idle();
    } while (this.#callbacks.count > 0 || this.#commits.count > 0);
    // The steps' continuations record the committed rows (`#steps`) in microtasks after the commit.
    await new Promise<void>((r) => setImmediate(r));
    if (this.#ended) return;
    const eligible = eligibleRollbacks(this.#steps.values());
    const now = this.#now();
    if (!resumed) {
      if (eligible.length === 0) {
        await this.#end_(this.#endWithout(state, now));
        return;
      }
      const start = startRollbacks(this.workflow, this.id, state, eligible.length, now);
      if (!(await this.#writeInstance(start))) return;
      state = start.patch.rollback!;
    }
    const total = state.totalSteps ?? eligible.length;
    let completed = total - eligible.length;
    let failure: SerializedError | undefined;
    const error = this.#triggerError ?? deserializeError(state.triggerError);
    for (const forward of eligible) {
      const call = rollbackCall(forward);
      const handler = this.#handlers?.get(stepKeyString(forward));
      if (!handler) {
        const missing = rollbackMissing(call, forward, this.#now());
        await this.#commit(missing);
        this.#steps.set(rollbackKeyString(forward), missing.step);
        failure = missing.step.error!;
        break;
      }
      const ctx: WorkflowStepContext = {
        step: { name: forward.name, count: forward.count },
        attempt: forward.attempts,
        config: structuredClone(forward.config ?? this.#host.defaultStepConfig),
      };
      const output =
        forward.status === "succeeded" ? decodeStepResult(this.#host.store.steps, forward) : undefined;
      const stepName = stepLabel(forward);
      try {
        await this.#do(
          call,
          this.#steps.get(rollbackKeyString(forward)),
          undefined,
          () => handler({ ctx: structuredClone(ctx), error, output, stepName }),
          undefined,
          forward.rollbackConfig ?? this.#host.defaultStepConfig,
        );
        completed++;
      } catch (e) {
        failure = serializeError(e);
        break;
      }
    }
    await this.#end_(endRollbacks(this.workflow, this.id, state, total, completed, failure, this.#now()));
  }

  /** A phase with nothing to compensate: the instance ends as it would without rollbacks. */
  #endWithout(state: RollbackState, now: number): InstanceWrite {
    if (state.trigger === "error") return endRun(this.workflow, this.id, { error: state.triggerError }, now);
    return {
      patch: {
        status: "terminated",
        endedAt: now,
        updatedAt: now,
        readyAt: null,
        owner: null,
        leaseUntil: null,
        pausedAt: null,
        rollback: null,
      },
      history: [historyEntry(this.workflow, this.id, now, "workflow_terminated")],
      statusIn: ["running", "waiting", "waitingForPause"],
    };
  }

  /** One guarded instance write of the run (the phase's start): false when fenced (the run ends). */
  async #writeInstance(w: InstanceWrite): Promise<boolean> {
    const history = this.#takePending(w.history);
    try {
      const ok = await this.#commits.during(() =>
        this.#host.store.instances.update(
          this.workflow,
          this.id,
          w.patch,
          { epoch: this.#epoch, statusIn: w.statusIn },
          history,
        ),
      );
      if (!ok) this.#end("aborted");
      else this.#host.changed(this.workflow, this.id, this.#persistedStatus);
      return ok;
    } catch (e) {
      this.#host.log(`Cairn could not store progress of instance ${this.id}`, e);
      this.#end("aborted");
      return false;
    }
  }

  #scheduleCheck(): void {
    if (this.#ended || this.#checkScheduled) return;
    this.#checkScheduled = true;
    setImmediate(() => {
      this.#checkScheduled = false;
      if (this.#quiescent()) void this.#park();
    });
  }

  /** Nothing is running, and what is left waits for a long time or for a pause to end. */
  #quiescent(): boolean {
    if (this.#ended || this.#rollback || this.#callbacks.count > 0 || this.#commits.count > 0) return false;
    // A slot being taken means the run goes on in memory (or yields): parking meanwhile would race it.
    if (this.#slotTaking) return false;
    if (this.#pausing) return true;
    return this.#hotTimers.size === 0 && this.#longWaits.size + this.#blocked > 0;
  }

  /**
   * Parks the run (`park` in core): the instance is left to the store, `waiting` until its earliest
   * wake-up or `paused`, without an owner, and the run ends without running `run()` further.
   */
  async #park(): Promise<void> {
    this.#ended = true;
    this.#cancelTimers();
    const now = this.#now();
    let wakeAt: number | null = null;
    for (const w of this.#longWaits) if (wakeAt === null || w.wakeAt < wakeAt) wakeAt = w.wakeAt;
    const state: ParkState = {
      workflow: this.workflow,
      instanceId: this.id,
      pausing: this.#pausing,
      wakeAt,
      waitTypes: [...new Set(this.#waiters.map((w) => w.type))],
      storedStatus: this.#persistedStatus,
    };
    const pending = this.#takePending([]);
    const guard = (statusIn: readonly InstanceStatus[]) => ({ epoch: this.#epoch, statusIn });
    let history: NewHistoryEntry[] = [];
    try {
      let final: InstanceStatus | undefined;
      const ok = await this.#commits.during(() =>
        this.#host.store.transaction(async (tx) => {
          // Lock the row first: a concurrent sendEvent (which locks it too) is then either seen by
          // the event check of `park` or sees this run parked and wakes the instance itself.
          await tx.instances.get(this.workflow, this.id, { lock: true });
          const events =
            !state.pausing && state.waitTypes.length > 0 ? await tx.events.list(this.workflow, this.id) : [];
          let write = park(state, events, now);
          if (write.notifyReady) await tx.notify?.({ kind: "ready" });
          history = [...pending, ...write.history];
          this.#metered(write.patch, now);
          if (!(await tx.instances.update(this.workflow, this.id, write.patch, guard(write.statusIn)))) {
            // A pause arrived while the run was parking: it parks paused instead.
            write = parkPaused(this.workflow, this.id, now);
            this.#metered(write.patch, now);
            if (!(await tx.instances.update(this.workflow, this.id, write.patch, guard(write.statusIn))))
              return false;
            history = [...history, ...write.history];
          }
          await tx.history.append(history);
          final = write.patch.status;
          return true;
        }),
      );
      if (ok) this.#reported(history, now - this.#claimedAt, final);
      this.#host.changed(this.workflow, this.id, final);
      this.#resolveDone(ok ? "parked" : "aborted");
    } catch (e) {
      this.#host.log(`Cairn could not park instance ${this.id}`, e);
      this.#resolveDone("aborted");
    }
  }

  #end(outcome: RunOutcome): void {
    if (!this.#ended) {
      this.#closeRunCode();
      this.#trace?.end(outcome, this.#replayed);
    }
    this.#ended = true;
    this.#cancelTimers();
    this.#resolveDone(outcome);
  }

  // ---- metrics (SPEC §12.2) and traces (§12.4) ----------------------------------------------

  #openRunCode(): void {
    if (this.#runCode < 0 && !this.#ended) this.#runCode = cpuMeter.open();
  }

  #closeRunCode(): void {
    if (this.#runCode < 0) return;
    this.#cpuMs += cpuMeter.close(this.#runCode);
    this.#runCode = -1;
  }

  /**
   * Adds the instance's CPU and wall time, with this run's, to the patch of the run's last write;
   * returns the run's wall time (from its claim to `now`).
   */
  #metered(patch: InstancePatch, now: number): number {
    this.#closeRunCode();
    const wallMs = now - this.#claimedAt;
    patch.cpuTimeMs = Math.round(((this.#row.cpuTimeMs ?? 0) + this.#cpuMs) * 100) / 100;
    patch.wallTimeMs = (this.#row.wallTimeMs ?? 0) + wallMs;
    return wallMs;
  }

  /** The run's last write is stored: tells the observers and ends the run's span. */
  #reported(
    history: NewHistoryEntry[],
    wallMs: number,
    status: InstanceStatus | undefined,
    error?: SerializedError | null,
  ): void {
    const t = this.#host.telemetry;
    if (t) {
      t.stored?.(history, { createdAt: this.#row.createdAt });
      t.ran?.(this.workflow, this.#cpuMs, wallMs);
    }
    this.#trace?.end(
      status === "waiting" || status === "paused" ? "parked" : (status ?? "parked"),
      this.#replayed,
      error,
    );
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

  /** `#adjust` for a decision to apply, or `undefined` when no hook adjusts waits. */
  #adjuster(key: StepKey, reason: "sleep" | "retry" | "eventTimeout"): AdjustDelay | undefined {
    return this.#host.hooks.adjustWait ? (ms) => this.#adjust(key, reason, ms) : undefined;
  }

  #log(timestamp: number, type: NewHistoryEntry["type"]): void {
    this.#pending.push(this.#entry(timestamp, type));
  }

  /** The instance-level entries waiting to be written, followed by `entries`; none are left pending. */
  #takePending(entries: NewHistoryEntry[]): NewHistoryEntry[] {
    const pending = this.#pending;
    this.#pending = [];
    return pending.length === 0 ? entries : [...pending, ...entries];
  }

  #entry(timestamp: number, type: HistoryEventType): NewHistoryEntry {
    return historyEntry(this.workflow, this.id, timestamp, type);
  }
}

/** What a step callback (and a delay function) receives: a fresh copy of the config each time. */
function stepContext(a: Attempt): WorkflowStepContext {
  const { key } = a.call;
  const { retries, timeout, sensitive } = a.config;
  // A dynamic delay is not shown to the callback (its `delay` is the function's, not a duration).
  const { delay, ...rest } = retries;
  return {
    step: { name: key.name, count: key.count },
    attempt: a.attempt,
    config: {
      retries: (delay === DYNAMIC_DELAY ? rest : { ...retries }) as WorkflowStepContext["config"]["retries"],
      timeout,
      ...(sensitive ? { sensitive } : {}),
    },
  };
}

/** The delay function of a step's config, if it has one. */
function delayFunctionOf(config: WorkflowStepConfig | undefined): WorkflowDelayFunction | undefined {
  const delay = (config as { retries?: { delay?: unknown } } | undefined)?.retries?.delay;
  return typeof delay === "function" ? (delay as WorkflowDelayFunction) : undefined;
}
