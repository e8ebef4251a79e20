import {
  type Clock,
  deserializeError,
  FakeClock,
  parseDuration,
  stepKeyString,
  WorkflowError,
  WorkflowTimeoutError,
} from "@cairn/core";
import type { Runtime, RuntimeHooks } from "@cairn/runtime";
import type { Store } from "@cairn/store";
import { InstanceModifications } from "./modifier.ts";

/** What the testing helpers need of a Cairn (the object `createCairn` returns). */
export interface CairnLike {
  readonly env: Record<string, unknown>;
  readonly runtime: Runtime;
  readonly store: Store;
  close(): Promise<void>;
}

/** A workflow introspection session (`introspectWorkflow`), as the harness sees it. */
export interface Session {
  readonly binding: string;
  /** Called before each instance of the workflow is stored; sets up its modifications. */
  beforeCreate(id: string): Promise<void>;
}

const keyOf = (workflow: string, id: string) => `${workflow}\u0000${id}`;

/**
 * The state behind one test Cairn: the fake clock, the modifications of each introspected instance,
 * the introspection sessions, and the waiters that wake on the runtime's change notifications.
 *
 * Invariants: the clock only moves through `moveClock` (one move at a time); every asynchronous piece
 * of work the harness starts is tracked, so `runUntilIdle` waits for it too.
 */
export class Harness {
  readonly clock: Clock;
  readonly autoAdvance: boolean;
  readonly sessions = new Map<string, Session>();
  #cairn?: CairnLike;
  readonly #mods = new Map<string, InstanceModifications>();
  readonly #watchers = new Map<string, Set<() => void>>();
  readonly #background = new Set<Promise<unknown>>();
  readonly #log: (message: string, error: unknown) => void;
  #unsubscribe?: () => void;
  #clockChain: Promise<void> = Promise.resolve();
  #waiting = 0;
  /** Real step callbacks running now (not mocked attempts): the clock never jumps while one runs. */
  #callbacks = 0;
  #looping = false;
  #closed = false;

  /** `autoAdvance` needs a `FakeClock`; with any other clock time passes by itself. */
  constructor(clock: Clock, autoAdvance: boolean, log?: (message: string, error: unknown) => void) {
    this.clock = clock;
    this.autoAdvance = autoAdvance && clock instanceof FakeClock;
    this.#log = log ?? ((message, error) => console.error(message, error));
  }

  /** Closed itself, or its Cairn's runtime was closed. */
  get closed(): boolean {
    return this.#closed || (this.#cairn?.runtime.closed ?? false);
  }

  get cairn(): CairnLike {
    if (!this.#cairn) throw new Error("[WorkflowIntrospector] The test Cairn is still starting");
    return this.#cairn;
  }

  attach(cairn: CairnLike): void {
    this.#cairn = cairn;
    this.#unsubscribe = cairn.runtime.onChange((workflow, id, status) => this.#changed(workflow, id, status));
  }

  // ---- modifications and the hooks that apply them ------------------------------------------

  modsOf(workflow: string, id: string, create: true): InstanceModifications;
  modsOf(workflow: string, id: string, create?: false): InstanceModifications | undefined;
  modsOf(workflow: string, id: string, create = false): InstanceModifications | undefined {
    const key = keyOf(workflow, id);
    let mods = this.#mods.get(key);
    if (!mods && create) this.#mods.set(key, (mods = new InstanceModifications()));
    return mods;
  }

  forget(workflow: string, id: string): void {
    this.#mods.delete(keyOf(workflow, id));
  }

  readonly hooks: RuntimeHooks = {
    beforeCreate: async ({ workflow, id }) => {
      await this.sessions.get(workflow)?.beforeCreate(id);
    },
    wrapStep: async (info, next) => {
      const outcome = this.modsOf(info.workflow, info.instanceId)?.attemptOutcome(
        stepKeyString(info.step),
        info.attempt,
      );
      if (!outcome) return this.#callback(next);
      if (outcome.kind === "error") throw deserializeError(outcome.error);
      if (outcome.kind === "timeout")
        throw new WorkflowTimeoutError(`Execution timed out after ${parseDuration(info.config.timeout)}ms`);
      return outcome.value;
    },
    adjustWait: (info, ms) => {
      const mods = this.modsOf(info.workflow, info.instanceId);
      if (!mods) return ms;
      const key = stepKeyString(info.step);
      if (info.reason === "sleep") return mods.disableAllSleeps || mods.sleeps.has(key) ? 0 : ms;
      if (info.reason === "retry") return mods.disableAllRetryDelays || mods.retryDelays.has(key) ? 0 : ms;
      return mods.eventTimeouts.has(key) ? 0 : ms;
    },
  };

  /** Runs a real step callback, counted so that `autoAdvance` waits for it before moving the clock. */
  async #callback(next: () => Promise<unknown>): Promise<unknown> {
    this.#callbacks++;
    try {
      return await next();
    } finally {
      this.#callbacks--;
      if (this.#callbacks === 0) setImmediate(() => this.#kick());
    }
  }

  /**
   * Sends the events `mockEvent` queued for an instance, once it exists. Sent events are kept: when a
   * restart has wiped them from the store (`restarted`), they are sent again, so mocks survive
   * `restart()` as on Cloudflare. Calls for one instance run one after the other.
   */
  flushEvents(workflow: string, id: string, restarted = false): Promise<void> {
    const mods = this.modsOf(workflow, id);
    if (!mods || this.closed) return Promise.resolve();
    if (mods.events.length === 0 && !(restarted && mods.sentEvents.length > 0)) return Promise.resolve();
    const run = mods.flushing.then(async () => {
      if (this.closed) return;
      const row = await this.cairn.store.instances.get(workflow, id);
      if (!row) return;
      if (restarted) {
        // Mocked events the store no longer has (a restart deleted them) are due again.
        const stored = new Map<string, number>();
        for (const e of await this.cairn.store.events.list(workflow, id))
          stored.set(e.type, (stored.get(e.type) ?? 0) + 1);
        const kept: typeof mods.sentEvents = [];
        for (const event of mods.sentEvents) {
          const n = stored.get(event.type) ?? 0;
          if (n > 0) {
            stored.set(event.type, n - 1);
            kept.push(event);
          } else mods.events.push(event);
        }
        mods.sentEvents.splice(0, mods.sentEvents.length, ...kept);
      }
      for (const event of mods.events.splice(0)) {
        try {
          await this.cairn.runtime.sendEvent(workflow, id, event);
          mods.sentEvents.push(event);
        } catch (e) {
          // The instance ended or went away before the event could be delivered: nothing waits for it.
          if (!WorkflowError.is(e)) throw e;
        }
      }
    });
    mods.flushing = run.catch(() => {});
    return this.track(run);
  }

  // ---- change notifications and waiters -----------------------------------------------------

  /** Calls `fn` after every stored change of the instance; returns the unsubscribe function. */
  watch(workflow: string, id: string, fn: () => void): () => void {
    const key = keyOf(workflow, id);
    let set = this.#watchers.get(key);
    if (!set) this.#watchers.set(key, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.#watchers.get(key) === set) this.#watchers.delete(key);
    };
  }

  #changed(workflow: string, id: string, status?: string): void {
    if (this.closed) return;
    // "queued" after the start means a restart (or a resume): re-send mocked events it wiped.
    void this.flushEvents(workflow, id, status === "queued");
    const set = this.#watchers.get(keyOf(workflow, id));
    if (set) for (const fn of [...set]) fn();
    this.#kick();
  }

  /** Tracks work the harness started, so `runUntilIdle` waits for it; failures are logged. */
  track<T>(p: Promise<T>): Promise<T> {
    const tracked = p.catch((e) => {
      if (!this.closed) this.#log("Cairn testing helpers: a background check failed", e);
      return undefined as T;
    });
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
    return tracked;
  }

  /** An introspector started waiting (for a status or a step result). */
  waitStarted(): void {
    this.#waiting++;
    this.#kick();
  }

  waitEnded(): void {
    this.#waiting--;
  }

  // ---- time ---------------------------------------------------------------------------------

  /** Resolves when the runtime is idle and every check the helpers started has finished. */
  async runUntilIdle(): Promise<void> {
    if (!this.#cairn) return;
    for (;;) {
      await this.#cairn.runtime.whenIdle();
      if (this.#background.size === 0) return;
      await Promise.allSettled([...this.#background]);
    }
  }

  /** Moves the fake clock by `duration`, firing due timers in order and settling after each. */
  advanceTime(duration: number | string): Promise<void> {
    if (!(this.clock instanceof FakeClock))
      throw new TypeError("advanceTime needs a FakeClock (a Cairn made by createTestCairn)");
    const ms = parseDuration(duration, "advanceTime");
    return this.moveClock(() => ms);
  }

  /** Moves the clock by the amount `by()` computes when the move starts; moves never overlap. */
  moveClock(by: () => number): Promise<void> {
    const clock = this.clock as FakeClock;
    const move = this.#clockChain.then(() => clock.advance(Math.max(0, by()), () => this.runUntilIdle()));
    this.#clockChain = move.catch(() => {});
    return move;
  }

  /**
   * With `autoAdvance`, while an introspector waits and nothing else can happen, time jumps to the next
   * timer: the test sees what real time would bring, at once. Never while a step callback runs: it may
   * be waiting for real I/O, and a jump would time it out (the end of the callback kicks again).
   */
  #kick(): void {
    if (!this.autoAdvance || this.#looping || this.#waiting === 0 || this.closed) return;
    this.#looping = true;
    const clock = this.clock as FakeClock;
    void this.#autoAdvance(clock)
      .catch((e) => this.#log("Cairn testing helpers: could not advance time", e))
      .finally(() => {
        this.#looping = false;
        if (this.#waiting > 0 && this.#callbacks === 0 && clock.nextDue() !== undefined) this.#kick();
      });
  }

  async #autoAdvance(clock: FakeClock): Promise<void> {
    while (this.#waiting > 0 && !this.closed) {
      await this.runUntilIdle();
      if (this.#waiting === 0 || this.closed || this.#callbacks > 0) return;
      if (clock.nextDue() === undefined) return;
      await this.moveClock(() => (clock.nextDue() ?? clock.now()) - clock.now());
    }
  }

  /**
   * Ends every session, stops waking waiters, and forgets the instances' modifications. Stored
   * instances are left alone (disposing an introspector is what deletes its instance).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.sessions.clear();
    this.#unsubscribe?.();
    this.#watchers.clear();
    this.#mods.clear();
    await Promise.allSettled([...this.#background]);
  }
}
