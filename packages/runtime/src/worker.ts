import { ACTIVE_STATUSES, type Clock, type TimerHandle, type WorkflowClass } from "@cairn/core";
import type { InstanceRow, Store, StoreMessage } from "@cairn/store";
import { InstanceRun, type RunHost } from "./run.ts";

export interface WorkerOptions {
  store: Store;
  clock: Clock;
  host: RunHost;
  workerId: string;
  /** `false` for a client only: it never claims nor runs instances. */
  enabled: boolean;
  maxConcurrent: number;
  /** Alone on its store: takes over what a previous process left, renews no leases. */
  exclusive: boolean;
  leaseMs: number;
  /** How often to look for work written by other processes; `undefined` for never. */
  pollMs: number | undefined;
  /** The class of a workflow this process knows, or `undefined`. */
  classOf(workflow: string): WorkflowClass | undefined;
  /** Tells the workflow's definition of a run about to start (`WorkflowDefinition.onRun`). */
  onRun(workflow: string, run: InstanceRun): void;
  log(message: string, error: unknown): void;
}

const keyOf = (workflow: string, id: string) => `${workflow}\u0000${id}`;

/**
 * The worker side of a runtime: claims runnable instances from the store while slots are free, runs
 * them in memory (`InstanceRun`), wakes up when the next one is due, renews the leases of what it runs
 * (on stores shared by workers), and listens to the store for work and commands other processes send.
 */
export class Worker {
  readonly #o: WorkerOptions;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #hot = new Map<string, InstanceRun>();
  #slots = 0;
  #pumping = false;
  #pumpAgain = false;
  #wake?: { at: number; timer: TimerHandle };
  #poll?: TimerHandle;
  #heartbeat?: TimerHandle;
  #unlisten?: () => Promise<void>;
  #started = false;
  #closed = false;

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#store = options.store;
    this.#clock = options.clock;
    if (!options.exclusive)
      options.host.takeSlot = (workflow, id, epoch) => this.#takeSlot(workflow, id, epoch);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** `RunHost.takeSlot`: counts every worker's running instances under the claim lock. */
  #takeSlot(workflow: string, id: string, epoch: number): Promise<"ok" | "full" | "fenced"> {
    return this.#store.transaction(async (tx) => {
      if ((await tx.queue.countRunning({ lockClaims: true })) >= this.#o.maxConcurrent) {
        const row = await tx.instances.get(workflow, id);
        return row?.epoch === epoch && row.owner === this.#o.workerId && ACTIVE_STATUSES.includes(row.status)
          ? "full"
          : "fenced";
      }
      const now = this.#clock.now();
      // Guarded by the owner too: a run that parked meanwhile left the row to the store (no owner),
      // and turning that row `running` would leave it to nobody.
      const guard = { epoch, statusIn: ["waiting"] as const, owner: this.#o.workerId };
      if (await tx.instances.update(workflow, id, { status: "running", updatedAt: now }, guard)) return "ok";
      // Not waiting any more: still ours if a pause is pending (it holds a slot already).
      const row = await tx.instances.get(workflow, id);
      return row?.epoch === epoch &&
        row.owner === this.#o.workerId &&
        (row.status === "running" || row.status === "waitingForPause")
        ? "ok"
        : "fenced";
    });
  }

  /** Begins claiming and running work. Opening a store again resumes every unfinished instance. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    if (!this.#o.enabled) return;
    if (this.#o.exclusive) await this.#store.queue.expireLeases();
    else this.#armHeartbeat();
    // A store shared with other processes, or with other threads of this one (the API's connection
    // to the same SQLite file), tells this worker about work they wrote.
    if (this.#store.listen)
      this.#unlisten = await this.#store.listen(
        (m) => this.#onMessage(m),
        (e) => this.#o.log("Cairn lost its notification channel; polling until it reconnects", e),
        () => void this.#catchUp(),
      );
    if (this.#o.pollMs !== undefined) this.#armPoll();
    this.pump();
  }

  /** Acts on a message from another process sharing the store. */
  #onMessage(m: StoreMessage): void {
    if (m.sender === this.#o.workerId || this.#closed) return;
    if (m.kind === "ready") {
      this.pump();
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
          this.#store.instances.get(run.workflow, run.id),
          this.#store.events.list(run.workflow, run.id),
        ]);
        if (!row) continue;
        if (row.status === "waitingForPause") run.pause();
        else if (run.pausing && (row.status === "running" || row.status === "waiting")) run.cancelPause();
        const unconsumed = new Map<string, number>();
        for (const e of events)
          if (e.consumedBy === null) unconsumed.set(e.type, (unconsumed.get(e.type) ?? 0) + 1);
        run.catchUpEvents(unconsumed);
      } catch (e) {
        this.#o.log(`Cairn could not catch up on messages for instance ${run.id}`, e);
      }
    }
  }

  /**
   * Stops claiming and aborts every run in memory without writing more; unfinished instances
   * continue when a worker opens the store again.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.timer.cancel();
    this.#poll?.cancel();
    this.#heartbeat?.cancel();
    await this.#unlisten?.();
    for (const run of this.#hot.values()) run.abort();
    if (this.#o.enabled && !this.#o.exclusive) await this.#store.queue.renewLeases(this.#o.workerId, 0);
  }

  /** See `Runtime.whenIdle`. */
  async whenIdle(): Promise<void> {
    for (let quiet = 0; quiet < 3; ) {
      await new Promise((r) => setImmediate(r));
      if (this.#busy()) {
        quiet = 0;
        continue;
      }
      const next =
        this.#o.enabled && !this.#closed && this.#slots < this.#o.maxConcurrent
          ? await this.#store.queue.nextReadyAt()
          : undefined;
      if (next !== undefined && next <= this.#clock.now()) {
        quiet = 0;
        this.pump();
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

  /**
   * Takes a slot for an instance this process is about to start itself, without a claim (a create
   * or an event that claims a parked waiter); false when it cannot run more. Give it back with
   * `releaseSlot` unless `startRun(…, reserved)` takes it over.
   */
  /** Runs in memory now, per workflow. */
  loaded(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const run of this.#hot.values())
      if (!run.ended) counts.set(run.workflow, (counts.get(run.workflow) ?? 0) + 1);
    return counts;
  }

  reserveSlot(): boolean {
    if (!this.#o.enabled || !this.#started || this.#closed || this.#slots >= this.#o.maxConcurrent)
      return false;
    this.#slots++;
    return true;
  }

  releaseSlot(): void {
    this.#slots--;
  }

  /** Runs a claimed instance in memory; `reserved` when its slot was taken by `reserveSlot`. */
  startRun(row: InstanceRow, claimedAt: number, reserved = false, fresh = false): void {
    if (!reserved) this.#slots++;
    const key = keyOf(row.workflow, row.id);
    const cls = this.#o.classOf(row.workflow);
    if (!cls) {
      // Stored by a process that knows this workflow; this one does not. Leave it to the store.
      this.#slots--;
      void this.#store.instances.update(
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
    const run = new InstanceRun(this.#o.host, cls, row, claimedAt);
    this.#hot.set(key, run);
    this.#o.onRun(row.workflow, run);
    run.start(fresh).catch((e) => {
      this.#o.log(`Cairn could not start instance ${row.id}`, e);
      run.abort();
    });
    void run.done.then(() => {
      if (this.#hot.get(key) === run) this.#hot.delete(key);
      this.#slots--;
      this.pump();
    });
  }

  /** The run in memory of an instance, whatever its epoch. */
  held(workflow: string, id: string): InstanceRun | undefined {
    return this.#hot.get(keyOf(workflow, id));
  }

  /**
   * The run in memory of the instance `row` describes, if it was claimed at `row`'s epoch or before:
   * the one a command that read `row` concerns. A run claimed after (or of a re-created instance) is
   * left alone.
   */
  runOf(row: InstanceRow): InstanceRun | undefined {
    const run = this.#hot.get(keyOf(row.workflow, row.id));
    return run && run.epoch <= row.epoch && run.createdAt === row.createdAt ? run : undefined;
  }

  /** Aborts the run of the instance a command that read `row` ended (terminate, restart, delete). */
  abortRunOf(row: InstanceRow): void {
    this.runOf(row)?.abort();
  }

  /** Claims runnable instances while slots are free; coalesces calls. */
  pump(): void {
    if (!this.#o.enabled || !this.#started || this.#closed) return;
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
        if (!this.#closed) this.#o.log("Cairn could not claim work", e);
      } finally {
        this.#pumping = false;
      }
    });
  }

  async #claimPass(): Promise<void> {
    for (;;) {
      if (this.#closed) return;
      const free = this.#o.maxConcurrent - this.#slots;
      if (free <= 0) return;
      const limit = Math.min(free, 512);
      const now = this.#clock.now();
      const options = { owner: this.#o.workerId, now, limit, leaseMs: this.#o.leaseMs };
      // Workers sharing a store hold maxConcurrent together: the claim counts everyone's instances.
      const rows = await this.#store.queue.claim(
        this.#o.exclusive ? options : { ...options, maxRunning: this.#o.maxConcurrent },
      );
      for (const row of rows) this.startRun(row, now);
      if (rows.length < limit) break;
    }
    const next = await this.#store.queue.nextReadyAt();
    this.#armWake(next);
  }

  #armWake(at: number | undefined): void {
    if (this.#closed || at === undefined) return;
    if (this.#wake && this.#wake.at <= at && this.#wake.at > this.#clock.now()) return;
    this.#wake?.timer.cancel();
    const timer = this.#clock.setTimer(
      () => {
        if (this.#wake?.timer === timer) this.#wake = undefined;
        this.pump();
      },
      Math.max(0, at - this.#clock.now()),
    );
    this.#wake = { at, timer };
  }

  #armPoll(): void {
    this.#poll = this.#clock.setTimer(() => {
      this.pump();
      if (!this.#closed) this.#armPoll();
    }, this.#o.pollMs!);
  }

  #armHeartbeat(): void {
    this.#heartbeat = this.#clock.setTimer(
      async () => {
        try {
          await this.#store.queue.renewLeases(this.#o.workerId, this.#clock.now() + this.#o.leaseMs);
        } catch (e) {
          this.#o.log("Cairn could not renew its leases", e);
        }
        if (!this.#closed) this.#armHeartbeat();
      },
      Math.floor(this.#o.leaseMs / 3),
    );
  }
}
