import type { Clock } from "@cairn/core";

/**
 * Orders the step attempts that may be what killed the previous process (see `suspectLane` in
 * core): `alongside` ones run at once, side by side, except while an `alone` one runs; `alone` ones
 * run one at a time, once no `alongside` one is in flight. A turn that lasts longer than
 * `maxTurnMs` (a hung callback) lets the others go on anyway: nothing waits forever.
 */
export class SuspectLanes {
  readonly #clock: Clock;
  readonly #maxTurnMs: number;
  #alongside = 0;
  #drained?: { promise: Promise<void>; resolve: () => void };
  /** The end of the last `alone` turn handed out. */
  #last: Promise<void> = Promise.resolve();
  /** The `alone` turn running now, if any. */
  #current?: Promise<void>;

  constructor(clock: Clock, maxTurnMs: number) {
    this.#clock = clock;
    this.#maxTurnMs = maxTurnMs;
  }

  /** Waits until no `alone` turn runs, then registers an attempt; resolves to the function that ends it. */
  async alongside(): Promise<() => void> {
    while (this.#current) {
      const current = this.#current;
      await this.#within(current);
      if (this.#current === current) break; // hung past its time: go on
    }
    this.#alongside++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.#alongside === 0) {
        this.#drained?.resolve();
        this.#drained = undefined;
      }
    };
  }

  /** Waits for a turn to run alone; resolves to the function that ends it. */
  alone(): Promise<() => void> {
    const before = this.#last;
    let end!: () => void;
    const turn = new Promise<void>((r) => (end = r));
    this.#last = before.then(() => turn);
    return before.then(async () => {
      if (this.#alongside > 0) await this.#within(this.#whenDrained());
      this.#current = turn;
      const finish = () => {
        timer.cancel();
        if (this.#current === turn) this.#current = undefined;
        end();
      };
      const timer = this.#clock.setTimer(finish, this.#maxTurnMs);
      return finish;
    });
  }

  #whenDrained(): Promise<void> {
    if (!this.#drained) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#drained = { promise, resolve };
    }
    return this.#drained.promise;
  }

  /** `p`, or `maxTurnMs` from now, whichever comes first. */
  #within(p: Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.#clock.setTimer(resolve, this.#maxTurnMs);
      void p.then(() => {
        timer.cancel();
        resolve();
      });
    });
  }
}
