import {
  ACTIVE_STATUSES,
  ATTEMPT_MARKER_AFTER_MS,
  type Clock,
  DEFAULT_MAX_CONCURRENT,
  DEFAULT_RETRY_DELAY,
  DEFAULT_STEP_LIMIT,
  type Duration,
  decidePause,
  decideResume,
  decideSendEvent,
  decideTerminate,
  defaultStepConfig,
  type InstanceStatus,
  type InstanceStatusDetails,
  LOST_RETRY_ALONE_MS,
  MAX_BATCH_SIZE,
  type NewHistoryEntry,
  parseDuration,
  planRestart,
  type RestartOptions,
  STEP_KINDS,
  systemClock,
  type TimerHandle,
  validateEventType,
  validateInstanceId,
  validateStepName,
  validateWorkflowName,
  type WorkflowClass,
  WorkflowError,
  type WorkflowInstanceCreateOptions,
} from "@cairn/core";
import {
  createdRow,
  type InstanceCreate,
  type InstanceRow,
  type NewInstance,
  type Store,
  type StoreMessage,
  type StoreTx,
} from "@cairn/store";
import { decodeValue, encodeInput } from "./codec.ts";
import { composeHooks, type RuntimeHooks } from "./hooks.ts";
import { InstanceRun, type RunHost, type RunOutcome } from "./run.ts";
import { SuspectLanes } from "./suspects.ts";

/** A workflow the runtime can run: like an entry of wrangler's `workflows[]`. */
export interface WorkflowDefinition {
  /** The workflow's name, as instances and the API refer to it. */
  name: string;
  /** The name of its binding in `env` (e.g. `"CHECKOUT"`). */
  binding?: string;
  class: WorkflowClass;
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
   * process left running, and it needs no lease renewal. Default: true for SQLite stores.
   */
  exclusive?: boolean;
  /** How often to look for work written by other processes. Default 1000 ms with the system clock. */
  pollMs?: number;
  hooks?: RuntimeHooks;
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

const keyOf = (workflow: string, id: string) => `${workflow}\u0000${id}`;

/**
 * Runs workflow instances stored in a `Store`, and is the control plane for them (create, pause,
 * resume, terminate, restart, events, delete). One per process.
 *
 * Work is claimed from the store (new, woken by timer, woken by event, resumed), run by replay in
 * memory, and left to the store whenever it waits long. Instances created in this process start at
 * once when a slot is free, without a separate claim.
 */
export class Runtime {
  readonly store: Store;
  readonly clock: Clock;
  readonly env: Record<string, unknown>;
  readonly workerId: string;
  readonly #definitions = new Map<string, WorkflowDefinition>();
  readonly #host: RunHost;
  readonly #hot = new Map<string, InstanceRun>();
  readonly #listeners = new Set<Listener>();
  readonly #maxConcurrent: number;
  readonly #worker: boolean;
  readonly #exclusive: boolean;
  readonly #leaseMs: number;
  readonly #pollMs: number | undefined;
  readonly #log: (message: string, error: unknown) => void;
  #slots = 0;
  #pumping = false;
  #pumpAgain = false;
  #wake?: { at: number; timer: TimerHandle };
  #poll?: TimerHandle;
  #heartbeat?: TimerHandle;
  #unlisten?: () => Promise<void>;
  #started = false;
  #closed = false;
  readonly #baseHooks: RuntimeHooks;
  readonly #addedHooks: { hooks: RuntimeHooks }[] = [];

  constructor(options: RuntimeOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.workerId = options.workerId ?? `worker-${crypto.randomUUID()}`;
    this.#maxConcurrent = options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT;
    if (!Number.isInteger(this.#maxConcurrent) || this.#maxConcurrent < 1)
      throw new Error(`maxConcurrent must be a whole number ≥ 1, got ${options.maxConcurrent}`);
    this.#worker = options.worker ?? true;
    this.#exclusive = options.exclusive ?? options.store.kind === "sqlite";
    this.#leaseMs = options.leaseMs ?? (this.#exclusive ? 365 * 86_400_000 : 30_000);
    this.#pollMs = options.pollMs ?? (this.clock === systemClock ? 1000 : undefined);
    this.#log = options.log ?? ((message, error) => console.error(message, error));
    const stepLimit = options.stepLimit ?? DEFAULT_STEP_LIMIT;
    if (!Number.isInteger(stepLimit) || stepLimit < 1)
      throw new Error(`stepLimit must be a whole number ≥ 1, got ${stepLimit}`);
    for (const def of options.workflows) {
      validateWorkflowName(def.name);
      if (typeof def.class !== "function")
        throw new Error(`Workflow "${def.name}" needs a class that extends WorkflowEntrypoint`);
      if (this.#definitions.has(def.name)) throw new Error(`Workflow "${def.name}" is defined twice`);
      this.#definitions.set(def.name, def);
    }
    this.env = { ...options.env };
    for (const def of options.workflows)
      if (def.binding) {
        const binding = this.binding(def.name);
        owners.set(binding, { runtime: this, workflow: def.name, binding: def.binding });
        this.env[def.binding] = binding;
      }
    this.#baseHooks = options.hooks ?? {};
    const retryDelay = options.defaultRetryDelay ?? DEFAULT_RETRY_DELAY;
    parseDuration(retryDelay, "defaultRetryDelay");
    this.#host = {
      store: this.store,
      clock: this.clock,
      env: this.env,
      hooks: this.#baseHooks,
      hotWaitMs: parseDuration(options.hotWaitThreshold ?? "5 seconds", "hotWaitThreshold"),
      attemptMarkerAfterMs: ATTEMPT_MARKER_AFTER_MS,
      suspects: new SuspectLanes(this.clock, LOST_RETRY_ALONE_MS),
      stepLimit,
      defaultStepConfig: defaultStepConfig(retryDelay),
      changed: (workflow, id, status) => this.#changed(workflow, id, status),
      log: (message, error) => this.#log(message, error),
    };
    if (!this.#exclusive) this.#host.takeSlot = (workflow, id, epoch) => this.#takeSlot(workflow, id, epoch);
  }

  /** `RunHost.takeSlot`: counts every worker's running instances under the claim lock. */
  #takeSlot(workflow: string, id: string, epoch: number): Promise<"ok" | "full" | "fenced"> {
    return this.store.transaction(async (tx) => {
      if ((await tx.instances.countRunning({ lockClaims: true })) >= this.#maxConcurrent) {
        const row = await tx.instances.get(workflow, id);
        return row?.epoch === epoch && ACTIVE_STATUSES.includes(row.status) ? "full" : "fenced";
      }
      const now = this.clock.now();
      if (
        await tx.instances.update(
          workflow,
          id,
          { status: "running", updatedAt: now },
          { epoch, statusIn: ["waiting"] },
        )
      )
        return "ok";
      // Not waiting any more: still ours if a pause is pending (it holds a slot already).
      const row = await tx.instances.get(workflow, id);
      return row?.epoch === epoch && (row.status === "running" || row.status === "waitingForPause")
        ? "ok"
        : "fenced";
    });
  }

  /** The workflows this runtime knows, by name. */
  get workflows(): WorkflowDefinition[] {
    return [...this.#definitions.values()];
  }

  /** Begins claiming and running work. Opening a store again resumes every unfinished instance. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    if (!this.#worker) return;
    if (this.#exclusive) await this.store.instances.expireLeases();
    else this.#armHeartbeat();
    // A store shared with other processes, or with other threads of this one (the API's connection
    // to the same SQLite file), tells this worker about work they wrote.
    if (this.store.listen)
      this.#unlisten = await this.store.listen(
        (m) => this.#onMessage(m),
        (e) => this.#log("Cairn lost its notification channel; polling until it reconnects", e),
        () => void this.#catchUp(),
      );
    if (this.#pollMs !== undefined) this.#armPoll();
    this.#pump();
  }

  /** Acts on a message from another process sharing the store. */
  #onMessage(m: StoreMessage): void {
    if (m.sender === this.workerId || this.#closed) return;
    if (m.kind === "ready") {
      this.#pump();
      return;
    }
    const run = m.workflow && m.instanceId ? this.#hot.get(keyOf(m.workflow, m.instanceId)) : undefined;
    // A command about an earlier epoch does not concern a run claimed after it (e.g. after a restart).
    if (!run || (m.epoch !== undefined && run.epoch > m.epoch)) return;
    if (m.kind === "pause") run.pause();
    else if (m.kind === "resume") run.cancelPause();
    else if (m.kind === "abort") run.abort();
    else if (m.kind === "event" && m.eventType) run.notifyEvent(m.eventType);
  }

  /**
   * The notification channel is back after a drop: messages sent meanwhile are lost. Polling finds
   * ready instances again, but not what only a message tells a run held in memory: events for its
   * waiters, and pauses requested or cancelled. Reads each such run's row and events to catch up.
   */
  async #catchUp(): Promise<void> {
    for (const run of [...this.#hot.values()]) {
      if (run.ended || this.#closed) continue;
      try {
        const [row, events] = await Promise.all([
          this.store.instances.get(run.workflow, run.id),
          this.store.events.list(run.workflow, run.id),
        ]);
        if (!row) continue;
        if (row.status === "waitingForPause") run.pause();
        else if (run.pausing && (row.status === "running" || row.status === "waiting")) run.cancelPause();
        const unconsumed = new Map<string, number>();
        for (const e of events)
          if (e.consumedBy === null) unconsumed.set(e.type, (unconsumed.get(e.type) ?? 0) + 1);
        run.catchUpEvents(unconsumed);
      } catch (e) {
        this.#log(`Cairn could not catch up on messages for instance ${run.id}`, e);
      }
    }
  }

  /** Tells other processes (through the store) about a change; a no-op on single-process stores. */
  #tell(tx: StoreTx, message: StoreMessage): Promise<void> {
    return tx.notify ? tx.notify({ ...message, sender: this.workerId }) : Promise.resolve();
  }

  /**
   * Stops claiming and aborts every run in memory without writing more; unfinished instances
   * continue when a worker opens the store again. Step callbacks already running cannot be stopped,
   * but their outcomes are not stored (they run again later).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.timer.cancel();
    this.#poll?.cancel();
    this.#heartbeat?.cancel();
    await this.#unlisten?.();
    for (const run of this.#hot.values()) run.abort();
    if (this.#worker && !this.#exclusive) await this.store.instances.renewLeases(this.workerId, 0);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
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
    for (let quiet = 0; quiet < 3; ) {
      await new Promise((r) => setImmediate(r));
      if (this.#busy()) {
        quiet = 0;
        continue;
      }
      const next =
        this.#worker && !this.#closed && this.#slots < this.#maxConcurrent
          ? await this.store.instances.nextReadyAt()
          : undefined;
      if (next !== undefined && next <= this.clock.now()) {
        quiet = 0;
        this.#pump();
        continue;
      }
      quiet++;
    }
  }

  #busy(): boolean {
    if (this.#pumping) return true;
    for (const run of this.#hot.values()) if (run.busy) return true;
    return false;
  }

  // ---- control plane ------------------------------------------------------------------------

  definition(workflow: string): WorkflowDefinition {
    const def = this.#definitions.get(workflow);
    if (!def) throw new WorkflowError("workflow.not_found", `Workflow "${workflow}" not found`);
    return def;
  }

  /** Creates an instance; fails with `instance.already_exists` if the id is taken. Returns its id. */
  async create(workflow: string, options: WorkflowInstanceCreateOptions = {}): Promise<string> {
    const prepared = await this.#prepare(workflow, options);
    const now = this.clock.now();
    // A worker with a free slot starts the instance itself, claimed at insert: no claim round, no
    // wake-up message. Workers sharing the store count everyone's instances first (under the claim
    // lock) so maxConcurrent holds across them.
    const direct = this.#canStartHere();
    if (direct) this.#slots++;
    const create: InstanceCreate = {
      row: { ...prepared, createdAt: now },
      history: [{ workflow, instanceId: prepared.id, type: "workflow_queued", timestamp: now }],
      notify: { kind: "ready", sender: this.workerId },
    };
    if (direct)
      create.start = {
        owner: this.workerId,
        leaseUntil: now + this.#leaseMs,
        ...(this.#exclusive ? {} : { maxRunning: this.#maxConcurrent }),
      };
    let outcome: "started" | "queued" | "exists";
    try {
      outcome = await this.store.instances.create(create);
    } finally {
      if (direct && outcome! !== "started") this.#slots--;
    }
    if (outcome === "exists")
      throw new WorkflowError(
        "instance.already_exists",
        `Instance "${prepared.id}" already exists in workflow "${workflow}"`,
      );
    const row = createdRow(create, outcome === "started");
    this.#changed(workflow, row.id, row.status ?? "queued");
    if (outcome === "started") this.#startRun(fullRow(row), now, true, true);
    else this.#pump();
    return row.id;
  }

  /**
   * Creates up to 100 instances in one transaction. Ids that already exist (or repeat in the batch)
   * are skipped and left out of the result.
   */
  async createBatch(workflow: string, batch: WorkflowInstanceCreateOptions[]): Promise<string[]> {
    if (!Array.isArray(batch) || batch.length === 0)
      throw new WorkflowError("body", "createBatch should have at least 1 instance");
    if (batch.length > MAX_BATCH_SIZE)
      throw new WorkflowError(
        "body",
        `createBatch only supports ${MAX_BATCH_SIZE} instances at a time, got ${batch.length}`,
      );
    const prepared = await Promise.all(batch.map((o) => this.#prepare(workflow, o ?? {})));
    const now = this.clock.now();
    const created = await this.store.transaction(async (tx) => {
      const inserted = await tx.instances.insertMany(prepared.map((p) => ({ ...p, createdAt: now })));
      const ids = prepared.filter((_, i) => inserted[i]).map((p) => p.id);
      const entries: NewHistoryEntry[] = ids.map((id) => ({
        workflow,
        instanceId: id,
        type: "workflow_queued",
        timestamp: now,
      }));
      await tx.history.append(entries);
      if (ids.length > 0) await this.#tell(tx, { kind: "ready" });
      return ids;
    });
    for (const id of created) this.#changed(workflow, id);
    this.#pump();
    return created;
  }

  /** Whether this process may start a new instance itself, without a claim (see `create`). */
  #canStartHere(): boolean {
    return this.#worker && this.#started && !this.#closed && this.#slots < this.#maxConcurrent;
  }

  async #prepare(
    workflow: string,
    options: WorkflowInstanceCreateOptions,
  ): Promise<{ workflow: string; id: string; params: Uint8Array }> {
    this.definition(workflow);
    if (typeof options !== "object" || options === null)
      throw new WorkflowError("body", "create options must be an object");
    const id = options.id === undefined ? crypto.randomUUID() : validateInstanceId(options.id);
    const params = encodeInput(options.params ?? {}, `Params of instance "${id}"`);
    await this.#host.hooks.beforeCreate?.({ workflow, id, params: options.params });
    return { workflow, id, params };
  }

  /** The stored row of an instance; `instance.not_found` if there is none. */
  async instance(workflow: string, id: string): Promise<InstanceRow> {
    this.definition(workflow);
    const row = await this.store.instances.get(workflow, id);
    if (!row) throw notFound(workflow, id);
    return row;
  }

  async status(workflow: string, id: string): Promise<InstanceStatusDetails> {
    const row = await this.instance(workflow, id);
    const details: InstanceStatusDetails = { status: row.status };
    if (row.status === "complete") details.output = decodeValue(row.output);
    // As on Cloudflare: `{ name, message }` (the stack and the step are in the API's instance detail).
    if (row.error) details.error = { name: row.error.name, message: row.error.message };
    return details;
  }

  async pause(workflow: string, id: string): Promise<void> {
    const { status, row } = await this.#control(workflow, id, async (tx, row, now) => {
      // Loaded somewhere: a worker holds it (locally, the run of this epoch, if it has not ended).
      const run = this.#runOf(row);
      const held = run?.epoch === row.epoch ? !run.ended : row.owner !== null && (row.leaseUntil ?? 0) > now;
      const t = decidePause(row.status, held);
      if (!t) return undefined;
      if (t.status === "waitingForPause")
        await this.#tell(tx, { kind: "pause", workflow, instanceId: id, epoch: row.epoch });
      const patch =
        t.status === "paused" ? { pausedAt: now, readyAt: null, owner: null, leaseUntil: null } : {};
      return { status: t.status, patch, history: t.history };
    });
    if (status === "waitingForPause") this.#runOf(row)?.pause();
  }

  async resume(workflow: string, id: string): Promise<void> {
    const { status, row } = await this.#control(workflow, id, async (tx, row, now) => {
      const t = decideResume(row.status);
      if (!t) return undefined;
      if (row.status === "paused") {
        await this.#tell(tx, { kind: "ready" });
        await tx.steps.shiftWakeTimes(workflow, id, now - (row.pausedAt ?? now));
        return { status: t.status, patch: { pausedAt: null, readyAt: now, priority: 0 }, history: t.history };
      }
      await this.#tell(tx, { kind: "resume", workflow, instanceId: id, epoch: row.epoch });
      return { status: t.status, patch: {}, history: t.history };
    });
    if (status === "running") this.#runOf(row)?.cancelPause();
    if (status === "queued") this.#pump();
  }

  async terminate(workflow: string, id: string): Promise<void> {
    const { row } = await this.#control(workflow, id, async (tx, row, now) => {
      const t = decideTerminate(row.status);
      await this.#tell(tx, { kind: "abort", workflow, instanceId: id, epoch: row.epoch });
      const patch = { endedAt: now, readyAt: null, owner: null, leaseUntil: null, pausedAt: null };
      return { status: t.status, patch, history: t.history };
    });
    this.#abortRunOf(row);
  }

  /**
   * Runs the instance again under the same id. Without `from`, everything is wiped; with it, results
   * of steps started before the target step are kept and the target and everything after run again.
   */
  async restart(workflow: string, id: string, options: RestartOptions = {}): Promise<void> {
    const from = options?.from;
    if (from !== undefined) {
      if (typeof from !== "object" || from === null)
        throw new WorkflowError("instance.cannot_restart", "from must be { name, count?, type? }");
      validateStepName(from.name);
      if (from.count !== undefined && (!Number.isInteger(from.count) || from.count < 1))
        throw new WorkflowError(
          "instance.cannot_restart",
          `from.count must be a whole number ≥ 1, got ${from.count}`,
        );
      if (from.type !== undefined && !STEP_KINDS.includes(from.type))
        throw new WorkflowError(
          "instance.cannot_restart",
          `from.type must be do, sleep or waitForEvent, got ${JSON.stringify(from.type)}`,
        );
    }
    const { row } = await this.#control(workflow, id, async (tx, row, now) => {
      const steps = from ? await tx.steps.list(workflow, id) : [];
      const history = from ? await tx.history.list(workflow, id) : [];
      const plan = planRestart(row, from, steps, history, now);
      if (plan.wipe === "from") {
        await tx.steps.delete(workflow, id, plan.delete);
        await tx.events.delete(workflow, id, plan.eventsOf);
        await tx.history.delete(workflow, id, {
          steps: plan.deletedKeys,
          afterEventId: plan.historyAfterEventId,
        });
      } else {
        await tx.steps.delete(workflow, id);
        await tx.events.delete(workflow, id);
        await tx.history.delete(workflow, id);
      }
      await this.#tell(tx, { kind: "abort", workflow, instanceId: id, epoch: row.epoch });
      await this.#tell(tx, { kind: "ready" });
      return { status: "queued" as const, patch: plan.patch, history: plan.history };
    });
    // Only runs of the epoch the restart replaced: a claim after it may have started a new run.
    this.#abortRunOf(row);
    this.#pump();
  }

  async sendEvent(workflow: string, id: string, event: { type: string; payload?: unknown }): Promise<void> {
    if (typeof event !== "object" || event === null)
      throw new WorkflowError("body", "sendEvent needs { type, payload }");
    const type = validateEventType(event.type);
    const payload = encodeInput(event.payload ?? null, `Payload of event "${type}"`);
    this.definition(workflow);
    const now = this.clock.now();
    // A parked instance waiting for this type is claimed by the same transaction when a slot is
    // free, so it resumes without a separate claim. Workers sharing the store count everyone's
    // running instances first, under the claim lock (taken before the row's lock, as claims do).
    const canStart = this.#canStartHere();
    if (canStart) this.#slots++;
    let claimed: InstanceRow | undefined;
    try {
      await this.store.transaction(async (tx) => {
        claimed = undefined;
        const canClaim = canStart && (this.#exclusive || (await this.#roomForParked(tx, workflow, id)));
        const row = await tx.instances.get(workflow, id, { lock: true });
        if (!row) throw notFound(workflow, id);
        decideSendEvent(row.status);
        await tx.events.insert({ workflow, instanceId: id, type, payload, timestamp: now });
        if (row.owner !== null)
          await this.#tell(tx, { kind: "event", workflow, instanceId: id, eventType: type });
        if (row.status !== "waiting" || row.owner !== null || !(await tx.steps.hasWaiter(workflow, id, type)))
          return;
        const guard = { statusIn: ["waiting"] as const, epoch: row.epoch };
        if (!canClaim) {
          await tx.instances.update(workflow, id, { readyAt: now, priority: 0 }, guard);
          await this.#tell(tx, { kind: "ready" });
          return;
        }
        const patch = {
          status: "running" as const,
          epoch: row.epoch + 1,
          owner: this.workerId,
          leaseUntil: now + this.#leaseMs,
          readyAt: null,
          updatedAt: now,
        };
        if (await tx.instances.update(workflow, id, patch, guard)) claimed = { ...row, ...patch };
      });
    } catch (e) {
      if (canStart) this.#slots--;
      throw e;
    }
    if (claimed) this.#startRun(claimed, now, true);
    else {
      if (canStart) this.#slots--;
      this.#hot.get(keyOf(workflow, id))?.notifyEvent(type);
    }
    this.#changed(workflow, id, claimed?.status);
    this.#pump();
  }

  /**
   * With a shared store: whether `sendEvent` may claim the instance if it turns out to be a parked
   * waiter. Only then is the claim lock taken (before the row's lock, as everywhere) and everyone's
   * running instances counted; events for running or owned instances skip it.
   */
  async #roomForParked(tx: StoreTx, workflow: string, id: string): Promise<boolean> {
    const peek = await tx.instances.get(workflow, id);
    if (peek?.status !== "waiting" || peek.owner !== null) return false;
    return (await tx.instances.countRunning({ lockClaims: true })) < this.#maxConcurrent;
  }

  async delete(workflow: string, id: string): Promise<void> {
    this.definition(workflow);
    const deleted = await this.#deleteOne(workflow, id);
    if (!deleted) throw notFound(workflow, id);
    this.#abortRunOf(deleted);
    this.#changed(workflow, id);
  }

  /** Deletes up to 100 instances; reports each missing one instead of failing the batch. */
  async deleteBatch(
    workflow: string,
    ids: string[],
  ): Promise<{ deleted: { id: string }[]; errors: { id: string; code: number; message: string }[] }> {
    this.definition(workflow);
    if (!Array.isArray(ids) || ids.length === 0)
      throw new WorkflowError("body", "batchDeleteInstances should have at least 1 instance");
    if (ids.length > MAX_BATCH_SIZE)
      throw new WorkflowError(
        "body",
        `batchDeleteInstances only supports ${MAX_BATCH_SIZE} instances at a time`,
      );
    for (const id of ids) validateInstanceId(id);
    const deleted: { id: string }[] = [];
    const errors: { id: string; code: number; message: string }[] = [];
    const gone = new Set<string>();
    for (const id of ids) {
      const removed = gone.has(id) ? undefined : await this.#deleteOne(workflow, id);
      if (gone.has(id) || removed) {
        gone.add(id);
        deleted.push({ id });
        if (removed) this.#abortRunOf(removed);
      } else errors.push({ id, code: 10400, message: "workflows.api.error.instance.not_found" });
    }
    return { deleted, errors };
  }

  /** Deletes one instance, telling the worker that holds it; returns the row it deleted. */
  #deleteOne(workflow: string, id: string): Promise<InstanceRow | undefined> {
    return this.store.transaction(async (tx) => {
      const row = await tx.instances.get(workflow, id, { lock: true });
      if (!row || !(await tx.instances.delete(workflow, id))) return undefined;
      await this.#tell(tx, { kind: "abort", workflow, instanceId: id, epoch: row.epoch });
      return row;
    });
  }

  /**
   * Applies one control command in a transaction: `decide` reads the row and returns the new status,
   * extra fields and history entries (or undefined for no change). The update is guarded by the status
   * it decided from. Returns the new status (undefined for no change) and the row the decision read:
   * what the command does to a run in memory afterwards concerns only runs of that row's epoch or older.
   */
  async #control(
    workflow: string,
    id: string,
    decide: (
      tx: StoreTx,
      row: InstanceRow,
      now: number,
    ) => Promise<
      | { status: InstanceRow["status"]; patch: Partial<InstanceRow>; history: NewHistoryEntry["type"][] }
      | undefined
    >,
  ): Promise<{ status: InstanceRow["status"] | undefined; row: InstanceRow }> {
    this.definition(workflow);
    const now = this.clock.now();
    let read: InstanceRow | undefined;
    const status = await this.store.transaction(async (tx) => {
      const row = await tx.instances.get(workflow, id, { lock: true });
      if (!row) throw notFound(workflow, id);
      read = row;
      const d = await decide(tx, row, now);
      if (!d) return undefined;
      const ok = await tx.instances.update(
        workflow,
        id,
        { ...d.patch, status: d.status, updatedAt: now },
        { statusIn: [row.status], epoch: row.epoch },
      );
      if (!ok)
        throw new WorkflowError(
          "instance.changed",
          `Instance "${id}" changed while the command ran; try again`,
        );
      await tx.history.append(d.history.map((type) => ({ workflow, instanceId: id, type, timestamp: now })));
      return d.status;
    });
    if (status !== undefined) this.#changed(workflow, id, status);
    return { status, row: read! };
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
        validateInstanceId(id);
        await runtime.instance(workflow, id);
        return handle(id);
      },
      deleteBatch: (ids) => runtime.deleteBatch(workflow, ids),
    };
    owners.set(binding, { runtime, workflow });
    return binding;
  }

  // ---- work ---------------------------------------------------------------------------------

  #startRun(row: InstanceRow, claimedAt: number, reserved = false, fresh = false): void {
    if (!reserved) this.#slots++;
    const key = keyOf(row.workflow, row.id);
    const def = this.#definitions.get(row.workflow);
    if (!def) {
      // Stored by a process that knows this workflow; this one does not. Leave it to the store.
      this.#slots--;
      void this.store.instances.update(
        row.workflow,
        row.id,
        { owner: null, leaseUntil: 0 },
        { epoch: row.epoch },
      );
      return;
    }
    const current = this.#hot.get(key);
    if (current && !current.ended && current.createdAt === row.createdAt && current.epoch > row.epoch) {
      // A later claim's run is loaded already; this row is stale (and fenced).
      this.#slots--;
      return;
    }
    current?.abort();
    const run = new InstanceRun(this.#host, def.class, row, claimedAt);
    this.#hot.set(key, run);
    def.onRun?.(run);
    run.start(fresh).catch((e) => {
      this.#log(`Cairn could not start instance ${row.id}`, e);
      run.abort();
    });
    void run.done.then(() => {
      if (this.#hot.get(key) === run) this.#hot.delete(key);
      this.#slots--;
      this.#pump();
    });
  }

  /**
   * The run in memory of the instance `row` describes, if it was claimed at `row`'s epoch or before:
   * the one a command that read `row` concerns. A run claimed after (or of a re-created instance) is
   * left alone.
   */
  #runOf(row: InstanceRow): InstanceRun | undefined {
    const run = this.#hot.get(keyOf(row.workflow, row.id));
    return run && run.epoch <= row.epoch && run.createdAt === row.createdAt ? run : undefined;
  }

  /** Aborts the run of the instance a command that read `row` ended (terminate, restart, delete). */
  #abortRunOf(row: InstanceRow): void {
    this.#runOf(row)?.abort();
  }

  /** Claims runnable instances while slots are free; coalesces calls. */
  #pump(): void {
    if (!this.#worker || !this.#started || this.#closed) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    setImmediate(async () => {
      try {
        do {
          this.#pumpAgain = false;
          await this.#claimPass();
        } while (this.#pumpAgain && !this.#closed);
      } catch (e) {
        if (!this.#closed) this.#log("Cairn could not claim work", e);
      } finally {
        this.#pumping = false;
      }
    });
  }

  async #claimPass(): Promise<void> {
    for (;;) {
      if (this.#closed) return;
      const free = this.#maxConcurrent - this.#slots;
      if (free <= 0) return;
      const limit = Math.min(free, 512);
      const now = this.clock.now();
      const options = { owner: this.workerId, now, limit, leaseMs: this.#leaseMs };
      // Workers sharing a store hold maxConcurrent together: the claim counts everyone's instances.
      const rows = await this.store.instances.claim(
        this.#exclusive ? options : { ...options, maxRunning: this.#maxConcurrent },
      );
      for (const row of rows) this.#startRun(row, now);
      if (rows.length < limit) break;
    }
    const next = await this.store.instances.nextReadyAt();
    this.#armWake(next);
  }

  #armWake(at: number | undefined): void {
    if (this.#closed || at === undefined) return;
    if (this.#wake && this.#wake.at <= at && this.#wake.at > this.clock.now()) return;
    this.#wake?.timer.cancel();
    const timer = this.clock.setTimer(
      () => {
        if (this.#wake?.timer === timer) this.#wake = undefined;
        this.#pump();
      },
      Math.max(0, at - this.clock.now()),
    );
    this.#wake = { at, timer };
  }

  #armPoll(): void {
    this.#poll = this.clock.setTimer(() => {
      this.#pump();
      if (!this.#closed) this.#armPoll();
    }, this.#pollMs!);
  }

  #armHeartbeat(): void {
    this.#heartbeat = this.clock.setTimer(
      async () => {
        try {
          await this.store.instances.renewLeases(this.workerId, this.clock.now() + this.#leaseMs);
        } catch (e) {
          this.#log("Cairn could not renew its leases", e);
        }
        if (!this.#closed) this.#armHeartbeat();
      },
      Math.floor(this.#leaseMs / 3),
    );
  }

  #changed(workflow: string, id: string, status?: InstanceStatus): void {
    for (const l of this.#listeners) l(workflow, id, status);
  }
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
  terminate(): Promise<void> {
    return this.#runtime.terminate(this.#workflow, this.id);
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
}

function notFound(workflow: string, id: string): WorkflowError {
  return new WorkflowError("instance.not_found", `Instance "${id}" not found in workflow "${workflow}"`);
}

function fullRow(r: NewInstance): InstanceRow {
  return {
    workflow: r.workflow,
    id: r.id,
    status: r.status ?? "queued",
    params: r.params,
    output: null,
    error: null,
    createdAt: r.createdAt,
    updatedAt: r.createdAt,
    startedAt: r.startedAt ?? null,
    endedAt: null,
    pausedAt: null,
    readyAt: r.readyAt ?? null,
    priority: r.priority ?? 1,
    epoch: r.epoch ?? 0,
    owner: r.owner ?? null,
    leaseUntil: r.leaseUntil ?? null,
  };
}
