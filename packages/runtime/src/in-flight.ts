/**
 * A count of work in flight (a run's step callbacks, its store writes, its waits). The count is
 * raised only by `during`, for exactly as long as one piece of work runs, and lowered however that
 * work ends (a value, a throw, an early return inside it), so no branch of the caller can leave it
 * unbalanced.
 */
export class InFlight {
  #count = 0;
  #idle?: { promise: Promise<void>; resolve: () => void };

  get count(): number {
    return this.#count;
  }

  /** Resolves once nothing is in flight (at once when nothing is). */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    if (!this.#idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#idle = { promise, resolve };
    }
    return this.#idle.promise;
  }

  /** Runs `work` counted in flight. */
  async during<T>(work: () => Promise<T>): Promise<T> {
    this.#count++;
    try {
      return await work();
    } finally {
      this.#count--;
      if (this.#count === 0 && this.#idle) {
        this.#idle.resolve();
        this.#idle = undefined;
      }
    }
  }
}
