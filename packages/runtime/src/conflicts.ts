import { StoreError } from "@cairn/store";

/** How many times in all a command's transaction runs when the database keeps aborting it. */
export const CONFLICT_ATTEMPTS = 5;

/**
 * Runs `op` (one store transaction) again when the store aborted it for a concurrent one: a
 * PostgreSQL deadlock or serialization failure, an SQLite file locked past its busy timeout (store
 * error `retry`, which promises the transaction did nothing). Up to `attempts` runs in all, a short
 * random pause apart that doubles each time, so two commands that deadlocked do not meet again; the
 * last error is thrown as it is. `op` must start from scratch each time (it reads what it decides
 * from inside the transaction).
 */
export async function retryConflicts<T>(op: () => Promise<T>, attempts = CONFLICT_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (attempt >= attempts || !StoreError.is(e, "retry")) throw e;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 4 * 2 ** attempt));
    }
  }
}
