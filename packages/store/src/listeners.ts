/**
 * The listeners of a store's `onTransaction`: `report(startedAt)` after a transaction ends calls each
 * with its duration. A listener that throws is ignored (metrics never fail a write).
 */
export class TransactionListeners {
  readonly #listeners = new Set<(durationMs: number) => void>();

  add(listener: (durationMs: number) => void): () => void {
    const own = (ms: number) => listener(ms);
    this.#listeners.add(own);
    return () => {
      this.#listeners.delete(own);
    };
  }

  /** Whether anyone listens: stores skip reading the clock when nobody does. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  /** Reports a transaction that began at `startedAt` (`performance.now()`). */
  report(startedAt: number): void {
    const ms = performance.now() - startedAt;
    for (const l of this.#listeners)
      try {
        l(ms);
      } catch {
        // A listener's failure is its own.
      }
  }
}
