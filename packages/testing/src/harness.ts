import {
  deserializeError,
  type FakeClock,
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
  readonly clock: FakeClock;
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
  #looping = false;
  closed = false;

  constructor(clock: FakeClock, autoAdvance: boolean, log?: (message: string, error: unknown) => void) {
    this.clock = clock;
    this.autoAdvance = autoAdvance;
    this.#log = log ?? ((message, error) => console.error(message, error));
  }

  get cairn(): CairnLike {
    if (!this.#cairn) throw new Error("[WorkflowIntrospector] The test Cairn is still starting");
    return this.#cairn;
  }

  attach(cairn: CairnLike): void {
    this.#cairn = cairn;
    this.#unsubscribe = cairn.runtime.onChange((workflow, id) => this.#changed(workflow, id));
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
      if (!outcome) return next();
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

  /** Sends the events `mockEvent` queued for an instance, once it exists. */
  flushEvents(workflow: string, id: string): Promise<void> {
    const mods = this.modsOf(workflow, id);
    if (!mods || mods.events.length === 0 || this.closed) return Promise.resolve();
    return this.track(
      (async () => {
        const row = await this.cairn.store.instances.get(workflow, id);
        if (!row) return;
        for (const event of mods.events.splice(0)) {
          try {
            await this.cairn.runtime.sendEvent(workflow, id, event);
          } catch (e) {
            // The instance ended or went away before the event could be delivered: nothing waits for it.
            if (!WorkflowError.is(e)) throw e;
          }
        }
      })(),
    );
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

  #changed(workflow: string, id: string): void {
    if (this.closed) return;
    void this.flushEvents(workflow, id);
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
    const ms = parseDuration(duration, "advanceTime");
    return this.moveClock(() => ms);
  }

  /** Moves the clock by the amount `by()` computes when the move starts; moves never overlap. */
  moveClock(by: () => number): Promise<void> {
    const move = this.#clockChain.then(() =>
      this.clock.advance(Math.max(0, by()), () => this.runUntilIdle()),
    );
    this.#clockChain = move.catch(() => {});
    return move;
  }

  /**
   * With `autoAdvance`, while an introspector waits and nothing else can happen, time jumps to the next
   * timer: the test sees what real time would bring, at once.
   */
  #kick(): void {
    if (!this.autoAdvance || this.#looping || this.#waiting === 0 || this.closed) return;
    this.#looping = true;
    void this.#autoAdvance()
      .catch((e) => this.#log("Cairn testing helpers: could not advance time", e))
      .finally(() => {
        this.#looping = false;
        if (this.#waiting > 0 && this.clock.nextDue() !== undefined) this.#kick();
      });
  }

  async #autoAdvance(): Promise<void> {
    while (this.#waiting > 0 && !this.closed) {
      await this.runUntilIdle();
      if (this.#waiting === 0 || this.closed) return;
      if (this.clock.nextDue() === undefined) return;
      await this.moveClock(() => (this.clock.nextDue() ?? this.clock.now()) - this.clock.now());
    }
  }

  /**
   * Ends every session, stops waking waiters, and forgets the instances' modifications. Stored
   * instances are left alone (disposing an introspector is what deletes its instance).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sessions.clear();
    this.#unsubscribe?.();
    this.#watchers.clear();
    this.#mods.clear();
    await Promise.allSettled([...this.#background]);
  }
}
