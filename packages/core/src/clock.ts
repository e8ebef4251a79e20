/**
 * Time is a dependency: the runtime and stores read time and set timers only through a Clock, so
 * tests move time instead of sleeping.
 */
export interface Clock {
  now(): number;
  /** Calls `fn` once after `ms`; the returned handle cancels it. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

export interface TimerHandle {
  cancel(): void;
}

/** The largest delay `setTimeout` accepts; longer timers re-arm. */
const MAX_TIMEOUT = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    let handle: ReturnType<typeof setTimeout>;
    const due = Date.now() + ms;
    const arm = (delay: number) => {
      handle = setTimeout(
        () => {
          const left = due - Date.now();
          if (left > 0) arm(left);
          else fn();
        },
        Math.min(Math.max(delay, 0), MAX_TIMEOUT),
      );
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

interface FakeTimer {
  due: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that only moves when told. `advance(ms)` fires due timers in order, letting the work each
 * one starts settle (promises and I/O callbacks) before the next fires.
 */
export class FakeClock implements Clock {
  #now: number;
  #timers: FakeTimer[] = [];
  #seq = 0;

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.#now = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = { due: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return {
      cancel: () => {
        const i = this.#timers.indexOf(timer);
        if (i >= 0) this.#timers.splice(i, 1);
      },
    };
  }

  /** Timers still pending, for tests that check nothing is left behind. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** When the next timer fires, if any. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers) if (min === undefined || t.due < min) min = t.due;
    return min;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number, settle: () => Promise<void> = settleIo): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#timers)
        if (t.due <= target && (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq)))
          next = t;
      if (!next) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.#now = Math.max(this.#now, next.due);
      next.fn();
      await settle();
    }
    this.#now = Math.max(this.#now, target);
    await settle();
  }

  /** Sets the time without firing timers in between (they fire on the next `advance`). */
  set(time: number | Date): void {
    this.#now = typeof time === "number" ? time : time.getTime();
  }
}

/** Lets pending promise chains and immediate callbacks run a few rounds. */
async function settleIo(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
