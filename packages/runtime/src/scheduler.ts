import {
  type Clock,
  type CronExpression,
  decideSchedule,
  type NewHistoryEntry,
  scheduleInstanceId,
  type TimerHandle,
} from "@cairn/core";
import type { ScheduleKey, ScheduleRow, Store } from "@cairn/store";
import { encodeValue } from "./codec.ts";
import type { RuntimeHooks } from "./hooks.ts";

/** What a Worker's `scheduled(controller, env, ctx)` handler receives (Cloudflare's `ScheduledController`). */
export interface ScheduledController {
  readonly cron: string;
  readonly scheduledTime: number;
  readonly type: "scheduled";
  /** Cloudflare's: asks not to retry a failed run. Cairn never retries one, so it does nothing. */
  noRetry(): void;
}

/** The Worker's `scheduled()` handler as the runtime calls it, with the runtime's `env`. */
export type ScheduledHandler = (controller: ScheduledController, env: Record<string, unknown>) => unknown;

/** One schedule the scheduler follows. */
interface Entry {
  key: ScheduleKey;
  cron: CronExpression;
}

export interface SchedulerOptions {
  store: Store;
  clock: Clock;
  workerId: string;
  /** Each workflow's parsed `schedules`. */
  workflows: { name: string; schedules: CronExpression[] }[];
  /** `triggers.crons`, parsed, and the handler they call. */
  crons: CronExpression[];
  scheduled?: ScheduledHandler;
  /** What `scheduled()` gets as `env`. */
  env: Record<string, unknown>;
  hooks(): RuntimeHooks;
  /**
   * Told of each instance a schedule created, with the entries stored for it (the runtime tells its
   * listeners, its worker and its telemetry).
   */
  created(workflow: string, id: string, history: NewHistoryEntry[]): void;
  /** How soon to try again after the store failed. */
  retryMs: number;
  log(message: string, error: unknown): void;
}

/**
 * Fires schedules (SPEC §9.4): workflows' `schedules` create one instance per slot, `triggers.crons`
 * call the Worker's `scheduled()`. At start and at every slot it reads the stored rows, asks
 * `decideSchedule` (core) what is due, and claims each due slot with `schedules.advance`, one guarded
 * write that only one worker sharing the store wins; a workflow's instance is created in the same
 * transaction as the claim, with the deterministic id `"<cron>#<slot>"`. A `scheduled()` handler runs
 * after its claim commits, at most once, and is never retried.
 */
export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #entries: Entry[];
  #timer: TimerHandle | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;
  #closed = true;
  /** Handler calls in flight, so `idle` can wait for them. */
  readonly #calls = new Set<Promise<unknown>>();

  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.#entries = [
      ...options.workflows.flatMap((w) =>
        w.schedules.map((cron) => ({
          key: { kind: "workflow" as const, name: w.name, cron: cron.cron },
          cron,
        })),
      ),
      ...options.crons.map((cron) => ({
        key: { kind: "trigger" as const, name: "", cron: cron.cron },
        cron,
      })),
    ];
  }

  /** Whether there is anything to schedule. */
  get empty(): boolean {
    return this.#entries.length === 0;
  }

  /** Fires what is due (a catch-up after downtime), then follows the slots. */
  start(): void {
    if (this.empty) return;
    this.#closed = false;
    this.tick();
  }

  /** Stops following the slots; resolves once a pass under way has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#ticking;
  }

  /** Looks at every schedule now (one pass at a time; a call during a pass runs another after it). */
  tick(): void {
    if (this.#closed) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = this.#pass()
      .catch((e) => {
        if (this.#closed) return;
        this.#o.log("Cairn could not fire schedules; trying again", e);
        this.#arm(this.#o.clock.now() + this.#o.retryMs);
      })
      .finally(() => {
        this.#ticking = undefined;
        if (this.#again) {
          this.#again = false;
          this.tick();
        }
      });
  }

  /** Resolves once no pass and no `scheduled()` call is in flight. */
  async idle(): Promise<void> {
    while (this.#ticking || this.#calls.size > 0) {
      await this.#ticking;
      await Promise.allSettled([...this.#calls]);
    }
  }

  /** Calls the `scheduled()` handler for `cron` now, without claiming a slot (`/__scheduled` in dev). */
  async fireNow(cron: string, scheduledTime = this.#o.clock.now()): Promise<void> {
    if (!this.#o.scheduled) throw new Error("the Worker has no scheduled() handler");
    await this.#o.scheduled(controller(cron, scheduledTime), this.#o.env);
  }

  async #pass(): Promise<void> {
    const now = this.#o.clock.now();
    const rows = new Map<string, ScheduleRow>();
    for (const r of await this.#o.store.schedules.list()) rows.set(keyString(r), r);
    let soonest: number | undefined;
    for (const entry of this.#entries) {
      if (this.#closed) return;
      const d = decideSchedule(entry.cron, rows.get(keyString(entry.key))?.lastAt, now);
      if (d.settle !== undefined) await this.#settle(entry, d.settle, d.fire, now);
      if (d.nextAt !== undefined && (soonest === undefined || d.nextAt < soonest)) soonest = d.nextAt;
    }
    if (soonest !== undefined) this.#arm(soonest);
  }

  #arm(at: number): void {
    if (this.#closed) return;
    this.#timer?.cancel();
    this.#timer = this.#o.clock.setTimer(
      () => {
        this.#timer = undefined;
        this.tick();
      },
      Math.max(0, at - this.#o.clock.now()),
    );
  }

  /** Claims the slot (moves `lastAt` to `settle`) and, when one is due, fires it. */
  async #settle(entry: Entry, settle: number, fire: number | undefined, now: number): Promise<void> {
    const { store } = this.#o;
    if (entry.key.kind === "trigger") {
      const won = await store.schedules.advance(entry.key, settle, now);
      if (won && fire !== undefined) this.#call(entry.cron.cron, fire);
      return;
    }
    const workflow = entry.key.name;
    if (fire === undefined) {
      await store.schedules.advance(entry.key, settle, now);
      return;
    }
    const id = scheduleInstanceId(entry.cron.cron, fire);
    let refused = false;
    try {
      await this.#o.hooks().beforeCreate?.({ workflow, id, params: undefined });
    } catch (e) {
      refused = true;
      this.#o.log(`Cairn: beforeCreate refused the scheduled instance "${id}" of workflow "${workflow}"`, e);
    }
    const history: NewHistoryEntry[] = [
      { workflow, instanceId: id, type: "workflow_queued", timestamp: now },
    ];
    const created = await store.transaction(async (tx) => {
      if (!(await tx.schedules.advance(entry.key, settle, now)) || refused) return false;
      // A deterministic id: a slot fired twice (it cannot be, but) finds the instance and adds nothing.
      const [inserted] = await tx.instances.insertMany([
        { workflow, id, params: encodeValue(undefined), createdAt: now },
      ]);
      if (!inserted) return false;
      await tx.history.append(history);
      if (tx.notify) await tx.notify({ kind: "ready", sender: this.#o.workerId });
      return true;
    });
    if (created) this.#o.created(workflow, id, history);
  }

  #call(cron: string, scheduledTime: number): void {
    const handler = this.#o.scheduled;
    if (!handler) return;
    const call = (async () => handler(controller(cron, scheduledTime), this.#o.env))()
      .catch((e) => this.#o.log(`Cairn: the scheduled() handler failed for cron "${cron}" (not retried)`, e))
      .finally(() => this.#calls.delete(call));
    this.#calls.add(call);
  }
}

function controller(cron: string, scheduledTime: number): ScheduledController {
  return { cron, scheduledTime, type: "scheduled", noRetry() {} };
}

function keyString(k: ScheduleKey): string {
  return `${k.kind}\u0000${k.name}\u0000${k.cron}`;
}
