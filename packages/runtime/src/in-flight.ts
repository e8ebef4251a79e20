/**
 * A count of work in flight (a run's step callbacks, its store writes, its waits). The count is
 * raised only by `during`, for exactly as long as one piece of work runs, and lowered however that
 * work ends (a value, a throw, an early return inside it), so no branch of the caller can leave it
 * unbalanced.
 */
export class InFlight {
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** Runs `work` counted in flight. */
  async during<T>(work: () => Promise<T>): Promise<T> {
    this.#count++;
    try {
      return await work();
    } finally {
      this.#count--;
    }
  }
}
