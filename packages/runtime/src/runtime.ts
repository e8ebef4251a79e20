import {
  ATTEMPT_MARKER_AFTER_MS,
  type Clock,
  DEFAULT_CPU_LIMIT_MS,
  DEFAULT_MAX_CONCURRENT,
  DEFAULT_RETRY_DELAY,
  DEFAULT_STEP_LIMIT,
  type Duration,
  defaultStepConfig,
  type InstanceEvent,
  type InstanceStatus,
  type InstanceStatusDetails,
  type InstanceSubscribeOptions,
  LOST_RETRY_ALONE_MS,
  MAX_WORKFLOW_STEP_LIMIT,
  parseDuration,
  parseSchedules,
  type RestartOptions,
  systemClock,
  validateAddressableId,
  validateWorkflowName,
  type WorkflowClass,
  WorkflowError,
  type WorkflowInstanceCreateOptions,
  type WorkflowInstanceTerminateOptions,
} from "@cairn/core";
import { type InstanceRow, type Store, StoreError } from "@cairn/store";
import { Control } from "./control.ts";
import { composeHooks, type RuntimeHooks } from "./hooks.ts";
import type { RunHost, RunOutcome } from "./run.ts";
import { type ScheduledHandler, Scheduler } from "./scheduler.ts";
import { subscribeInstance } from "./subscribe.ts";
import { SuspectLanes } from "./suspects.ts";
import { composeTelemetry, type Telemetry } from "./telemetry.ts";
import { loadTracing } from "./tracing.ts";
import { Worker } from "./worker.ts";

/** A workflow the runtime can run: like an entry of wrangler's `workflows[]`. */
export interface WorkflowDefinition {
  /** The workflow's name, as instances and the API refer to it. */
  name: string;
  /** The name of its binding in `env` (e.g. `"CHECKOUT"`). */
  binding?: string;
  class: WorkflowClass;
  /**
   * Cron expressions (wrangler's `workflows[].schedules`, SPEC §9.4): each slot creates one instance,
   * id `"<cron>#<slot ms>"`, with `event.schedule = { cron, scheduledTime }`. Invalid expressions are
   * refused when the runtime is made (`workflow.invalid_schedule`).
   */
  schedules?: string | string[];
  /**
   * `step.do` calls allowed per instance of this workflow (wrangler's `workflows[].limits.steps`,
   * 1 … 25,000); default the runtime's `stepLimit`.
   */
  stepLimit?: number;
  /**
   * Told of each run of an instance before `run()` is called (its epoch, and `done` when it ends):
   * how a workflow whose code lives in a remote worker (`RemoteWorkers`) follows its runs.
   */
  onRun?(run: RunInfo): void;
}

/** What `WorkflowDefinition.onRun` is told of a run. */
export interface RunInfo {
  readonly workflow: string;
  readonly id: string;
  readonly epoch: number;
  readonly createdAt: number;
  readonly done: Promise<RunOutcome>;
}

export interface RuntimeOptions {
  store: Store;
  workflows: WorkflowDefinition[];
  /** Bindings and values visible to workflows as `this.env` (workflow bindings are added). */
  env?: Record<string, unknown>;
  clock?: Clock;
  /** Instances running at once; the rest stay `queued`. Default 10,000. */
  maxConcurrent?: number;
  /**
   * Instances this process may create per second and workflow (a token bucket with bursts of one
   * second's worth); more fail with `instance.rate_limited` (HTTP 429). Default: unlimited.
   */
  createRatePerSecond?: number;
  /** The default `retries.delay` of `step.do`. Default "10 seconds". */
  defaultRetryDelay?: Duration;
  /** Waits up to this long keep an instance in memory; longer ones park it. Default "5 seconds". */
  hotWaitThreshold?: Duration;
  /** `step.do` calls allowed per instance. Default 10,000. */
  stepLimit?: number;
  /** `false` makes a client only: it stores and controls instances but runs none. Default true. */
  worker?: boolean;
  /** This worker's identity in leases. Default: random. */
  workerId?: string;
  /** How long a claim holds without renewal. Default 30 s. */
  leaseMs?: number;
  /**
   * The worker is alone on its store (embedded SQLite): on start it takes over whatever a previous
   * process left running, and it needs no lease renewal. Default: true unless the store is shared by
   * workers (`store.capabilities.sharedByWorkers`).
   */
  exclusive?: boolean;
  /** How often to look for work written by other processes. Default 1000 ms with the system clock. */
  pollMs?: number;
  hooks?: RuntimeHooks;
  /**
   * Wrangler's `triggers.crons`: each slot calls `scheduled` once (across workers sharing the store)
   * with `{ cron, scheduledTime, type: "scheduled", noRetry() }`; a failure is logged, not retried.
   */
  triggers?: { crons: string[]; scheduled?: ScheduledHandler };
  /** Observers of what runs store and cost (Prometheus, SPEC §12.3); more with `addTelemetry`. */
  telemetry?: Telemetry[];
  /**
   * CPU time an attempt may use (a Worker's `limits.cpu_ms`), in ms: one over it is marked
   * `cpuLimitExceeded`, not stopped (SPEC §12.2). Default 30,000.
   */
  cpuLimitMs?: number;
  /** Where the runtime reports errors it cannot hand to anyone. Default: console.error. */
  log?: (message: string, error: unknown) => void;
}

/** Told about every stored change of an instance; `status` is its new status when the change set one. */
type Listener = (workflow: string, instanceId: string, status?: InstanceStatus) => void;

/** Which runtime and workflow a binding object (`env.X`) belongs to. */
export interface BindingOwner {
  runtime: Runtime;
  workflow: string;
  /** The `env` property it is, when it is one of the runtime's `env` bindings. */
  binding?: string;
}

/** Shared by every copy of this module in a process (a test runner may load two), like the bindings. */
const owners: WeakMap<object, BindingOwner> = ((globalThis as Record<symbol, unknown>)[
  Symbol.for("cairn.runtime.bindingOwners")
] ??= new WeakMap<object, BindingOwner>()) as WeakMap<object, BindingOwner>;

/**
 * The runtime and workflow behind a workflow binding made by any Cairn runtime (`cairn.env.X`, or
 * `runtime.binding(name)`); `undefined` for anything else. The testing helpers use it to introspect
 * the bindings of any Cairn.
 */
export function bindingOwner(binding: unknown): BindingOwner | undefined {
  return typeof binding === "object" && binding !== null ? owners.get(binding) : undefined;
}

/**
 * Runs workflow instances stored in a `Store`, and is the control plane for them (create, pause,
 * resume, terminate, restart, events, delete). One per process.
 *
 * Work is claimed from the store (new, woken by timer, woken by event, resumed), run by replay in
 * memory, and left to the store whenever it waits long. Instances created in this process start at
 * once when a slot is free, without a separate claim.
 *
 * The runtime composes the two sides: the worker (`worker.ts`: claiming, wake-ups, leases, listening,
 * slots) and the control (`control.ts`: create, commands, events, delete).
 */
export class Runtime {
  readonly store: Store;
  readonly clock: Clock;
  /** Waits up to this long stay in memory (`hotWaitThreshold`); longer ones park the run. */
  readonly hotWaitMs: number;
  readonly env: Record<string, unknown>;
  readonly workerId: string;
  readonly #definitions = new Map<string, WorkflowDefinition>();
  readonly #host: RunHost;
  readonly #listeners = new Set<Listener>();
  readonly #worker: Worker;
  readonly #control: Control;
  readonly #scheduler: Scheduler;
  /** Each workflow's parsed schedules, for `schedules()`. */
  readonly #schedules = new Map<string, import("@cairn/core").CronExpression[]>();
  readonly #workerEnabled: boolean;
  readonly #baseHooks: RuntimeHooks;
  readonly #addedHooks: { hooks: RuntimeHooks }[] = [];
  readonly #telemetry: Telemetry[] = [];
  #unobserveTransactions: (() => void) | undefined;
  /** `limits.cpu_ms` in force (SPEC §12.2). */
  readonly cpuLimitMs: number;

  constructor(options: RuntimeOptions) {
    checkStore(options.store);
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.hotWaitMs = parseDuration(options.hotWaitThreshold ?? "5 seconds", "hotWaitThreshold");
    this.workerId = options.workerId ?? `worker-${crypto.randomUUID()}`;
    const maxConcurrent = options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT;
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1)
      throw new Error(`maxConcurrent must be a whole number ≥ 1, got ${options.maxConcurrent}`);
    const exclusive = options.exclusive ?? !options.store.capabilities.sharedByWorkers;
    const leaseMs = options.leaseMs ?? (exclusive ? 365 * 86_400_000 : 30_000);
    const log = options.log ?? ((message, error) => console.error(message, error));
    const stepLimit = options.stepLimit ?? DEFAULT_STEP_LIMIT;
    const rate = options.createRatePerSecond;
    if (rate !== undefined && (typeof rate !== "number" || !Number.isFinite(rate) || rate <= 0))
      throw new Error(`createRatePerSecond must be a number > 0, got ${rate}`);
    if (!Number.isInteger(stepLimit) || stepLimit < 1)
      throw new Error(`stepLimit must be a whole number ≥ 1, got ${stepLimit}`);
    for (const def of options.workflows) {
      validateWorkflowName(def.name);
      if (typeof def.class !== "function")
        throw new Error(`Workflow "${def.name}" needs a class that extends WorkflowEntrypoint`);
      if (this.#definitions.has(def.name)) throw new Error(`Workflow "${def.name}" is defined twice`);
      this.#definitions.set(def.name, def);
      this.#schedules.set(def.name, parseSchedules(def.schedules, def.binding ?? def.name));
      if (
        def.stepLimit !== undefined &&
        (!Number.isInteger(def.stepLimit) || def.stepLimit < 1 || def.stepLimit > MAX_WORKFLOW_STEP_LIMIT)
      )
        throw new Error(
          `Workflow "${def.name}": limits.steps must be a whole number from 1 to ${MAX_WORKFLOW_STEP_LIMIT}, got ${def.stepLimit}`,
        );
    }
    const triggers = options.triggers;
    if (
      triggers !== undefined &&
      (typeof triggers !== "object" || triggers === null || !Array.isArray(triggers.crons))
    )
      throw new Error("triggers must be { crons: string[], scheduled }");
    const crons = parseSchedules(triggers?.crons ?? [], "triggers.crons");
    if (crons.length > 0 && typeof triggers?.scheduled !== "function")
      throw new Error(
        "triggers.crons needs a scheduled() handler: export default { scheduled(controller, env, ctx) { … } }",
      );
    this.env = { ...options.env };
    for (const def of options.workflows)
      if (def.binding) {
        const binding = this.binding(def.name);
        owners.set(binding, { runtime: this, workflow: def.name, binding: def.binding });
        this.env[def.binding] = binding;
      }
    this.#baseHooks = options.hooks ?? {};
    this.#telemetry.push(...(options.telemetry ?? []));
    this.cpuLimitMs = options.cpuLimitMs ?? DEFAULT_CPU_LIMIT_MS;
    if (!(this.cpuLimitMs > 0)) throw new Error(`cpuLimitMs must be a number > 0, got ${options.cpuLimitMs}`);
    const retryDelay = options.defaultRetryDelay ?? DEFAULT_RETRY_DELAY;
    parseDuration(retryDelay, "defaultRetryDelay");
    this.#host = {
      store: this.store,
      clock: this.clock,
      env: this.env,
      hooks: this.#baseHooks,
      hotWaitMs: this.hotWaitMs,
      attemptMarkerAfterMs: ATTEMPT_MARKER_AFTER_MS,
      suspects: new SuspectLanes(this.clock, LOST_RETRY_ALONE_MS),
      stepLimit,
      stepLimitOf: (workflow) => this.#definitions.get(workflow)?.stepLimit,
      defaultStepConfig: defaultStepConfig(retryDelay),
      changed: (workflow, id, status) => this.#changed(workflow, id, status),
      telemetry: composeTelemetry(this.#telemetry),
      cpuLimitMs: this.cpuLimitMs,
      log: (message, error) => {
        if (StoreError.is(error)) this.#host.telemetry?.storeError?.();
        log(message, error);
      },
    };
    this.#observeTransactions();
    this.#worker = new Worker({
      store: this.store,
      clock: this.clock,
      host: this.#host,
      workerId: this.workerId,
      enabled: options.worker ?? true,
      maxConcurrent,
      exclusive,
      leaseMs,
      pollMs: options.pollMs ?? (this.clock === systemClock ? 1000 : undefined),
      classOf: (workflow) => this.#definitions.get(workflow)?.class,
      onRun: (workflow, run) => this.#definitions.get(workflow)?.onRun?.(run),
      log,
    });
    this.#workerEnabled = options.worker ?? true;
    this.#scheduler = new Scheduler({
      store: this.store,
      clock: this.clock,
      workerId: this.workerId,
      workflows: [...this.#schedules].map(([name, schedules]) => ({ name, schedules })),
      crons,
      ...(triggers?.scheduled ? { scheduled: triggers.scheduled } : {}),
      env: this.env,
      hooks: () => this.#host.hooks,
      created: (workflow, id, history) => {
        this.#host.telemetry?.stored?.(history);
        this.#changed(workflow, id, "queued");
        this.#worker.pump();
      },
      retryMs: options.pollMs ?? 1000,
      log,
    });
    this.#control = new Control({
      store: this.store,
      clock: this.clock,
      worker: this.#worker,
      workerId: this.workerId,
      maxConcurrent,
      ...(rate !== undefined ? { createRatePerSecond: rate } : {}),
      exclusive,
      leaseMs,
      definition: (workflow) => this.definition(workflow),
      hooks: () => this.#host.hooks,
      telemetry: () => this.#host.telemetry,
      changed: (workflow, id, status) => this.#changed(workflow, id, status),
    });
  }

  /** The workflows this runtime knows, by name. */
  get workflows(): WorkflowDefinition[] {
    return [...this.#definitions.values()];
  }

  /** Begins claiming and running work. Opening a store again resumes every unfinished instance. */
  async start(): Promise<void> {
    await loadTracing();
    await this.#worker.start();
    if (this.#workerEnabled && !this.#worker.closed) this.#scheduler.start();
  }

  /**
   * Adds an observer of what runs store and cost (SPEC §12.3), from now on. Returns a function that
   * removes it again.
   */
  addTelemetry(telemetry: Telemetry): () => void {
    this.#telemetry.push(telemetry);
    this.#host.telemetry = composeTelemetry(this.#telemetry);
    this.#observeTransactions();
    return () => {
      const i = this.#telemetry.indexOf(telemetry);
      if (i >= 0) this.#telemetry.splice(i, 1);
      this.#host.telemetry = composeTelemetry(this.#telemetry);
      this.#observeTransactions();
    };
  }

  /** Listens to the store's transactions while an observer wants them (`storeTransaction`). */
  #observeTransactions(): void {
    const wanted = this.#telemetry.some((t) => t.storeTransaction);
    if (wanted && !this.#unobserveTransactions)
      this.#unobserveTransactions = this.store.onTransaction((ms) =>
        this.#host.telemetry?.storeTransaction?.(this.store.kind, ms),
      );
    else if (!wanted && this.#unobserveTransactions) {
      this.#unobserveTransactions();
      this.#unobserveTransactions = undefined;
    }
  }

  /**
   * Stops claiming and aborts every run in memory without writing more; unfinished instances
   * continue when a worker opens the store again. Step callbacks already running cannot be stopped,
   * but their outcomes are not stored (they run again later).
   */
  async close(): Promise<void> {
    await this.#scheduler.close();
    await this.#worker.close();
  }

  /** Every observer added (`telemetry`, `addTelemetry`) as one, or `undefined` when there is none. */
  get telemetry(): Telemetry | undefined {
    return this.#host.telemetry;
  }

  /** How many instances of each workflow this process has in memory now (SPEC §12.3). */
  loaded(): Map<string, number> {
    return this.#worker.loaded();
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#worker.closed;
  }

  /**
   * Adds hooks to the ones the runtime was created with, from now on (instances already running see
   * them at their next step). The added hooks run inside the existing ones (see `composeHooks`).
   * Returns a function that removes them again.
   */
  addHooks(hooks: RuntimeHooks): () => void {
    const added = { hooks };
    this.#addedHooks.push(added);
    this.#composeHooks();
    return () => {
      const i = this.#addedHooks.indexOf(added);
      if (i >= 0) this.#addedHooks.splice(i, 1);
      this.#composeHooks();
    };
  }

  #composeHooks(): void {
    this.#host.hooks = this.#addedHooks.reduce((outer, a) => composeHooks(a.hooks, outer), this.#baseHooks);
  }

  /** Calls `listener` after every stored change of an instance made through this runtime (or announced to it). */
  onChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Tells `onChange` listeners about a change another runtime stored (e.g. the worker thread of the
   * same process), so they learn of it without polling.
   */
  announce(workflow: string, instanceId: string, status?: InstanceStatus): void {
    this.#changed(workflow, instanceId, status);
  }

  /**
   * Resolves once the engine has nothing left to do by itself: no commit or claim in flight and
   * nothing ready to claim. What is left waits for time to pass, for events, or for step callbacks
   * still running (callbacks that settle within a few turns of the event loop are waited for; ones
   * that wait on I/O are not). Used by tests with a fake clock.
   */
  async whenIdle(): Promise<void> {
    await this.#scheduler.idle();
    await this.#worker.whenIdle();
  }

  /**
   * A workflow's schedules (SPEC §9.4) and when each fires next (ms since the epoch; `null` when it
   * never will again).
   */
  schedules(workflow: string): { cron: string; nextAt: number | null }[] {
    this.definition(workflow);
    const now = this.clock.now();
    return (this.#schedules.get(workflow) ?? []).map((c) => ({
      cron: c.cron,
      nextAt: c.nextSlot(now) ?? null,
    }));
  }

  /**
   * Calls the Worker's `scheduled()` handler for `cron` now, claiming no slot: what `cairn dev`'s
   * `GET /__scheduled?cron=` does. Fails when there is no handler.
   */
  fireScheduled(cron: string): Promise<void> {
    return this.#scheduler.fireNow(cron);
  }

  // ---- control plane (control.ts) -----------------------------------------------------------

  definition(workflow: string): WorkflowDefinition {
    const def = this.#definitions.get(workflow);
    if (!def) throw new WorkflowError("workflow.not_found", `Workflow "${workflow}" not found`);
    return def;
  }

  /**
   * Creates an instance; fails with `instance.already_exists` if the id is taken. Returns its id.
   * `meta.traceparent` (a W3C `traceparent`, e.g. an HTTP request's) is the trace its runs join;
   * without it, the span active now when tracing is on (SPEC §12.4).
   */
  create(
    workflow: string,
    options: WorkflowInstanceCreateOptions = {},
    meta?: { traceparent?: string },
  ): Promise<string> {
    return this.#control.create(workflow, options, meta);
  }

  /**
   * Creates up to 100 instances in one transaction. Ids that already exist (or repeat in the batch)
   * are skipped and left out of the result.
   */
  createBatch(workflow: string, batch: WorkflowInstanceCreateOptions[]): Promise<string[]> {
    return this.#control.createBatch(workflow, batch);
  }

  /** The stored row of an instance; `instance.not_found` if there is none. */
  instance(workflow: string, id: string): Promise<InstanceRow> {
    return this.#control.instance(workflow, id);
  }

  status(workflow: string, id: string): Promise<InstanceStatusDetails> {
    return this.#control.status(workflow, id);
  }

  pause(workflow: string, id: string): Promise<void> {
    return this.#control.pause(workflow, id);
  }

  resume(workflow: string, id: string): Promise<void> {
    return this.#control.resume(workflow, id);
  }

  terminate(workflow: string, id: string, options?: WorkflowInstanceTerminateOptions): Promise<void> {
    return this.#control.terminate(workflow, id, options);
  }

  /**
   * Runs the instance again under the same id. Without `from`, everything is wiped; with it, results
   * of steps started before the target step are kept and the target and everything after run again.
   */
  restart(workflow: string, id: string, options: RestartOptions = {}): Promise<void> {
    return this.#control.restart(workflow, id, options);
  }

  sendEvent(workflow: string, id: string, event: { type: string; payload?: unknown }): Promise<void> {
    return this.#control.sendEvent(workflow, id, event);
  }

  delete(workflow: string, id: string): Promise<void> {
    return this.#control.delete(workflow, id);
  }

  /** Deletes up to 100 instances; reports each missing one instead of failing the batch. */
  deleteBatch(
    workflow: string,
    ids: string[],
  ): Promise<{ deleted: { id: string }[]; errors: { id: string; code: number; message: string }[] }> {
    return this.#control.deleteBatch(workflow, ids);
  }

  // ---- bindings -----------------------------------------------------------------------------

  /** The `env.X` binding of a workflow (Cloudflare's `Workflow` interface). */
  binding(workflow: string): import("@cairn/core").Workflow {
    const runtime = this;
    const handle = (id: string) => new InstanceHandle(runtime, workflow, id);
    const binding: import("@cairn/core").Workflow = {
      async create(options) {
        return handle(await runtime.create(workflow, options));
      },
      async createBatch(batch) {
        return (await runtime.createBatch(workflow, batch)).map(handle);
      },
      async get(id) {
        validateAddressableId(id);
        await runtime.instance(workflow, id);
        return handle(id);
      },
      deleteBatch: (ids) => runtime.deleteBatch(workflow, ids),
    };
    owners.set(binding, { runtime, workflow });
    return binding;
  }

  #changed(workflow: string, id: string, status?: InstanceStatus): void {
    for (const l of this.#listeners) l(workflow, id, status);
  }
}

/** Fails with a clear error for a store that does not implement the `Store` interface's nouns. */
function checkStore(store: Store): void {
  if (typeof store !== "object" || store === null)
    throw new Error("The runtime needs a store (a Store object)");
  const missing: string[] = (["instances", "queue", "steps", "events", "history"] as const).filter(
    (noun) => typeof store[noun] !== "object" || store[noun] === null,
  );
  if (typeof store.transaction !== "function") missing.push("transaction");
  if (missing.length > 0)
    throw new Error(
      `The store (kind ${JSON.stringify(store.kind)}) has no ${missing.join(", ")}: it does not implement Store`,
    );
  if (typeof store.capabilities?.sharedByWorkers !== "boolean")
    throw new Error(
      `The store (kind ${JSON.stringify(store.kind)}) must declare capabilities.sharedByWorkers: true when several worker processes may claim from it, false when one process uses it`,
    );
}

/** A handle on one instance (Cloudflare's `WorkflowInstance`). */
export class InstanceHandle {
  readonly id: string;
  readonly #runtime: Runtime;
  readonly #workflow: string;

  constructor(runtime: Runtime, workflow: string, id: string) {
    this.#runtime = runtime;
    this.#workflow = workflow;
    this.id = id;
  }

  status(): Promise<InstanceStatusDetails> {
    return this.#runtime.status(this.#workflow, this.id);
  }
  pause(): Promise<void> {
    return this.#runtime.pause(this.#workflow, this.id);
  }
  resume(): Promise<void> {
    return this.#runtime.resume(this.#workflow, this.id);
  }
  terminate(options?: WorkflowInstanceTerminateOptions): Promise<void> {
    return this.#runtime.terminate(this.#workflow, this.id, options);
  }
  restart(options?: RestartOptions): Promise<void> {
    return this.#runtime.restart(this.#workflow, this.id, options);
  }
  sendEvent(event: { type: string; payload?: unknown }): Promise<void> {
    return this.#runtime.sendEvent(this.#workflow, this.id, event);
  }
  delete(): Promise<void> {
    return this.#runtime.delete(this.#workflow, this.id);
  }
  /** See `WorkflowInstance.subscribe`. */
  subscribe(options?: InstanceSubscribeOptions): AsyncIterableIterator<InstanceEvent> & AsyncDisposable {
    return subscribeInstance(this.#runtime, this.#workflow, this.id, options);
  }
}
