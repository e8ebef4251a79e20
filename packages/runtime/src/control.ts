import {
  type Clock,
  decidePause,
  decideResume,
  decideSendEvent,
  decideTerminate,
  type InstanceStatus,
  type InstanceStatusDetails,
  LOCATION_HINTS,
  MAX_BATCH_SIZE,
  type NewHistoryEntry,
  planRestart,
  type RateBucket,
  type RestartOptions,
  type RollbackState,
  STEP_KINDS,
  TERMINATE_TRIGGER_ERROR,
  takeTokens,
  validateEventType,
  validateInstanceId,
  validateStepName,
  WorkflowError,
  type WorkflowInstanceCreateOptions,
  type WorkflowInstanceTerminateOptions,
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
import { retryConflicts } from "./conflicts.ts";
import type { RuntimeHooks } from "./hooks.ts";
import type { InstanceRun } from "./run.ts";
import type { Telemetry } from "./telemetry.ts";
import { activeTraceparent, isTraceparent } from "./tracing.ts";
import type { Worker } from "./worker.ts";

export interface ControlOptions {
  store: Store;
  clock: Clock;
  worker: Worker;
  workerId: string;
  maxConcurrent: number;
  /** Instances this process may create per second and workflow; unlimited when undefined. */
  createRatePerSecond?: number;
  exclusive: boolean;
  leaseMs: number;
  /** Fails with `workflow.not_found` for a workflow this runtime does not know. */
  definition(workflow: string): unknown;
  /** The hooks in force now (`beforeCreate`). */
  hooks(): RuntimeHooks;
  /** The observers of what is stored (SPEC §12.3), if any. */
  telemetry(): Telemetry | undefined;
  /** Tells the runtime's listeners about a stored change. */
  changed(workflow: string, id: string, status?: InstanceStatus): void;
}

/**
 * The control side of a runtime: creates instances and applies commands to them (pause, resume,
 * terminate, restart, events, delete), each in one transaction guarded by what it read. Tells the
 * worker that holds an instance (through the store's messages, and this process's worker directly)
 * what the command means for its run.
 */
export class Control {
  readonly #o: ControlOptions;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #worker: Worker;
  /** `createRatePerSecond`'s buckets, per workflow. */
  readonly #buckets = new Map<string, RateBucket>();

  constructor(options: ControlOptions) {
    this.#o = options;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#worker = options.worker;
  }

  /**
   * Every command's transaction: run again when the database aborted it for a concurrent one (a
   * deadlock between a command and a run's commit is the database's doing, not the caller's).
   */
  #transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return retryConflicts(() => this.#store.transaction(fn));
  }

  /** Tells other processes (through the store) about a change; a no-op on single-process stores. */
  #tell(tx: StoreTx, message: StoreMessage): Promise<void> {
    return tx.notify ? tx.notify({ ...message, sender: this.#o.workerId }) : Promise.resolve();
  }

  /**
   * Creates an instance; fails with `instance.already_exists` if the id is taken. Returns its id.
   * `traceparent` (or the span active now, when tracing is on) is stored: its runs' spans join
   * that trace (SPEC §12.4).
   */
  async create(
    workflow: string,
    options: WorkflowInstanceCreateOptions = {},
    meta: { traceparent?: string } = {},
  ): Promise<string> {
    const traceparent = isTraceparent(meta.traceparent) ? meta.traceparent : activeTraceparent();
    const prepared = await this.#prepare(workflow, options);
    this.#limitRate(workflow, 1);
    const now = this.#clock.now();
    // A worker with a free slot starts the instance itself, claimed at insert: no claim round, no
    // wake-up message. Workers sharing the store count everyone's instances first (under the claim
    // lock) so maxConcurrent holds across them.
    const direct = this.#worker.reserveSlot();
    const create: InstanceCreate = {
      row: { ...prepared, createdAt: now },
      history: [{ workflow, instanceId: prepared.id, type: "workflow_queued", timestamp: now }],
      notify: { kind: "ready", sender: this.#o.workerId },
    };
    if (direct)
      create.start = {
        owner: this.#o.workerId,
        leaseUntil: now + this.#o.leaseMs,
        ...(this.#o.exclusive ? {} : { maxRunning: this.#o.maxConcurrent }),
      };
    let outcome: "started" | "queued" | "exists";
    try {
      outcome = await retryConflicts(() => this.#store.instances.create(create));
    } finally {
      if (direct && outcome! !== "started") this.#worker.releaseSlot();
    }
    if (outcome === "exists")
      throw new WorkflowError(
        "instance.already_exists",
        `Instance "${prepared.id}" already exists in workflow "${workflow}"`,
      );
    const row = createdRow(create, outcome === "started");
    this.#o.telemetry()?.stored?.(create.history);
    if (traceparent) await this.#store.instances.update(workflow, row.id, { traceparent });
    this.#o.changed(workflow, row.id, row.status ?? "queued");
    if (outcome === "started")
      this.#worker.startRun(traceparent ? { ...fullRow(row), traceparent } : fullRow(row), now, true, true);
    else this.#worker.pump();
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
    this.#limitRate(workflow, prepared.length);
    const now = this.#clock.now();
    let stored: NewHistoryEntry[] | undefined;
    const created = await this.#transaction(async (tx) => {
      const inserted = await tx.instances.insertMany(prepared.map((p) => ({ ...p, createdAt: now })));
      const ids = prepared.filter((_, i) => inserted[i]).map((p) => p.id);
      const entries: NewHistoryEntry[] = ids.map((id) => ({
        workflow,
        instanceId: id,
        type: "workflow_queued",
        timestamp: now,
      }));
      await tx.history.append(entries);
      stored = entries;
      if (ids.length > 0) await this.#tell(tx, { kind: "ready" });
      return ids;
    });
    if (stored) this.#o.telemetry()?.stored?.(stored);
    for (const id of created) this.#o.changed(workflow, id);
    this.#worker.pump();
    return created;
  }

  /** `createRatePerSecond` (SPEC §9.3): `instance.rate_limited` when `n` more would exceed it. */
  #limitRate(workflow: string, n: number): void {
    const rate = this.#o.createRatePerSecond;
    if (rate === undefined) return;
    const { bucket, ok } = takeTokens(this.#buckets.get(workflow), rate, n, this.#clock.now());
    this.#buckets.set(workflow, bucket);
    if (!ok)
      throw new WorkflowError(
        "instance.rate_limited",
        `Too many instances created for workflow "${workflow}": the limit is ${rate} per second (createRatePerSecond)`,
      );
  }

  async #prepare(
    workflow: string,
    options: WorkflowInstanceCreateOptions,
  ): Promise<{ workflow: string; id: string; params: Uint8Array }> {
    this.#o.definition(workflow);
    if (typeof options !== "object" || options === null)
      throw new WorkflowError("body", "create options must be an object");
    const id = options.id === undefined ? crypto.randomUUID() : validateInstanceId(options.id);
    // Accepted as on Cloudflare; Cairn runs everything where it is (SPEC §9.3).
    const hint = options.locationHint as unknown;
    if (hint !== undefined && !(LOCATION_HINTS as readonly unknown[]).includes(hint))
      throw new WorkflowError(
        "body",
        `locationHint must be one of ${LOCATION_HINTS.join(", ")}, got ${JSON.stringify(hint)}`,
      );
    const params = encodeInput(options.params ?? {}, `Params of instance "${id}"`);
    await this.#o.hooks().beforeCreate?.({ workflow, id, params: options.params });
    return { workflow, id, params };
  }

  /** The stored row of an instance; `instance.not_found` if there is none. */
  async instance(workflow: string, id: string): Promise<InstanceRow> {
    this.#o.definition(workflow);
    const row = await this.#store.instances.get(workflow, id);
    if (!row) throw notFound(workflow, id);
    return row;
  }

  async status(workflow: string, id: string): Promise<InstanceStatusDetails> {
    const row = await this.instance(workflow, id);
    // A rollback phase waiting between attempts is `running` to the binding (its type has no
    // `rollingBack`; the API shows that).
    const rollingBack = row.rollback && !row.rollback.outcome && row.status === "waiting";
    const details: InstanceStatusDetails = { status: rollingBack ? "running" : row.status };
    if (row.status === "complete") details.output = decodeValue(row.output);
    // As on Cloudflare: `{ name, message }` (the stack and the step are in the API's instance detail).
    if (row.error) details.error = { name: row.error.name, message: row.error.message };
    return details;
  }

  async pause(workflow: string, id: string): Promise<void> {
    const { status, row } = await this.#control(workflow, id, async (tx, row, now) => {
      // Loaded somewhere: a worker holds it (locally, the run of this epoch, if it has not ended).
      const run = this.#worker.runOf(row);
      const held = run?.epoch === row.epoch ? !run.ended : row.owner !== null && (row.leaseUntil ?? 0) > now;
      const t = decidePause(row.status, held);
      if (!t) return undefined;
      if (t.status === "waitingForPause")
        await this.#tell(tx, { kind: "pause", workflow, instanceId: id, epoch: row.epoch });
      const patch =
        t.status === "paused" ? { pausedAt: now, readyAt: null, owner: null, leaseUntil: null } : {};
      return { status: t.status, patch, history: t.history };
    });
    if (status === "waitingForPause") this.#worker.runOf(row)?.pause();
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
    if (status === "running") this.#worker.runOf(row)?.cancelPause();
    if (status === "queued") this.#worker.pump();
  }

  async terminate(workflow: string, id: string, options?: WorkflowInstanceTerminateOptions): Promise<void> {
    if (
      options !== undefined &&
      (typeof options !== "object" ||
        options === null ||
        Object.keys(options).some((k) => k !== "rollback") ||
        (options.rollback !== undefined && typeof options.rollback !== "boolean"))
    )
      throw new WorkflowError("body", "terminate options must be { rollback?: boolean }");
    if (options?.rollback) return this.#terminateWithRollback(workflow, id);
    const { row } = await this.#control(workflow, id, async (tx, row, now) => {
      const t = decideTerminate(row.status);
      await this.#tell(tx, { kind: "abort", workflow, instanceId: id, epoch: row.epoch });
      const patch = { endedAt: now, readyAt: null, owner: null, leaseUntil: null, pausedAt: null };
      return { status: t.status, patch, history: t.history };
    });
    this.#worker.abortRunOf(row);
  }

  /**
   * `terminate({ rollback: true })` (SPEC §9.1): the registered rollbacks run, newest first, then the
   * instance ends `terminated`. A run of the instance in this process starts the phase itself once
   * its callbacks in flight finish. Otherwise the trigger is stored, any run elsewhere is fenced off
   * (the epoch moves on) and the instance is made ready: its next owner replays `run()` only to
   * register the handlers again, and runs the phase. A phase already under way is left alone.
   */
  async #terminateWithRollback(workflow: string, id: string): Promise<void> {
    const rollback: RollbackState = { trigger: "terminate", triggerError: TERMINATE_TRIGGER_ERROR };
    let local: InstanceRun | undefined;
    const { status, row } = await this.#control(workflow, id, async (tx, row, now) => {
      local = undefined; // The transaction may run again (see #transaction).
      decideTerminate(row.status);
      if (row.rollback && !row.rollback.outcome) return undefined;
      const run = this.#worker.runOf(row);
      if (run?.epoch === row.epoch && !run.ended) {
        local = run;
        return { status: row.status, patch: { rollback }, history: [] };
      }
      await this.#tell(tx, { kind: "abort", workflow, instanceId: id, epoch: row.epoch });
      await this.#tell(tx, { kind: "ready" });
      const status = row.status === "paused" || row.status === "queued" ? "queued" : "waiting";
      const patch = {
        rollback,
        epoch: row.epoch + 1,
        owner: null,
        leaseUntil: null,
        pausedAt: null,
        readyAt: now,
        priority: 0,
      };
      return { status, patch, history: [] };
    });
    if (local) (local as InstanceRun).rollback(rollback);
    else if (status !== undefined) {
      this.#worker.abortRunOf(row);
      this.#worker.pump();
    }
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
      if (plan.wipe === "from")
        await tx.instances.rewind(workflow, id, {
          steps: plan.delete,
          afterEventId: plan.historyAfterEventId,
        });
      else await tx.instances.rewind(workflow, id);
      await this.#tell(tx, { kind: "abort", workflow, instanceId: id, epoch: row.epoch });
      await this.#tell(tx, { kind: "ready" });
      const patch = row.rollback ? { ...plan.patch, rollback: null } : plan.patch;
      return { status: "queued" as const, patch, history: plan.history };
    });
    // Only runs of the epoch the restart replaced: a claim after it may have started a new run.
    this.#worker.abortRunOf(row);
    this.#worker.pump();
  }

  async sendEvent(workflow: string, id: string, event: { type: string; payload?: unknown }): Promise<void> {
    if (typeof event !== "object" || event === null)
      throw new WorkflowError("body", "sendEvent needs { type, payload }");
    const type = validateEventType(event.type);
    const payload = encodeInput(event.payload ?? null, `Payload of event "${type}"`);
    this.#o.definition(workflow);
    const now = this.#clock.now();
    // A parked instance waiting for this type is claimed by the same transaction when a slot is
    // free, so it resumes without a separate claim. Workers sharing the store count everyone's
    // running instances first, under the claim lock (taken before the row's lock, as claims do).
    const canStart = this.#worker.reserveSlot();
    let claimed: InstanceRow | undefined;
    try {
      await this.#transaction(async (tx) => {
        claimed = undefined;
        const canClaim = canStart && (this.#o.exclusive || (await this.#roomForParked(tx, workflow, id)));
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
          owner: this.#o.workerId,
          leaseUntil: now + this.#o.leaseMs,
          readyAt: null,
          updatedAt: now,
        };
        if (await tx.instances.update(workflow, id, patch, guard)) claimed = { ...row, ...patch };
      });
    } catch (e) {
      if (canStart) this.#worker.releaseSlot();
      throw e;
    }
    if (claimed) this.#worker.startRun(claimed, now, true);
    else {
      if (canStart) this.#worker.releaseSlot();
      this.#worker.held(workflow, id)?.notifyEvent(type);
    }
    this.#o.changed(workflow, id, claimed?.status);
    this.#worker.pump();
  }

  /**
   * With a shared store: whether `sendEvent` may claim the instance if it turns out to be a parked
   * waiter. Only then is the claim lock taken (before the row's lock, as everywhere) and everyone's
   * running instances counted; events for running or owned instances skip it.
   */
  async #roomForParked(tx: StoreTx, workflow: string, id: string): Promise<boolean> {
    const peek = await tx.instances.get(workflow, id);
    if (peek?.status !== "waiting" || peek.owner !== null) return false;
    return (await tx.queue.countRunning({ lockClaims: true })) < this.#o.maxConcurrent;
  }

  async delete(workflow: string, id: string): Promise<void> {
    this.#o.definition(workflow);
    const deleted = await this.#deleteOne(workflow, id);
    if (!deleted) throw notFound(workflow, id);
    this.#worker.abortRunOf(deleted);
    this.#o.changed(workflow, id);
  }

  /** Deletes up to 100 instances; reports each missing one instead of failing the batch. */
  async deleteBatch(
    workflow: string,
    ids: string[],
  ): Promise<{ deleted: { id: string }[]; errors: { id: string; code: number; message: string }[] }> {
    this.#o.definition(workflow);
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
        if (removed) this.#worker.abortRunOf(removed);
      } else errors.push({ id, code: 10400, message: "workflows.api.error.instance.not_found" });
    }
    return { deleted, errors };
  }

  /** Deletes one instance, telling the worker that holds it; returns the row it deleted. */
  #deleteOne(workflow: string, id: string): Promise<InstanceRow | undefined> {
    return this.#transaction(async (tx) => {
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
    this.#o.definition(workflow);
    const now = this.#clock.now();
    let read: InstanceRow | undefined;
    let entries: NewHistoryEntry[] = [];
    const status = await this.#transaction(async (tx) => {
      entries = [];
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
      entries = d.history.map(
        (type) => ({ workflow, instanceId: id, type, timestamp: now }) as NewHistoryEntry,
      );
      await tx.history.append(entries);
      return d.status;
    });
    if (entries.length > 0) this.#o.telemetry()?.stored?.(entries, { createdAt: read!.createdAt });
    if (status !== undefined) this.#o.changed(workflow, id, status);
    return { status, row: read! };
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
