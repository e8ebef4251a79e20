/**
 * What can go wrong in a store, as a small closed set of codes shared by every store:
 *
 * - `conflict`: a unique constraint refused a write;
 * - `retry`: the operation ran into a concurrent one (a serialization failure, a deadlock, a file
 *   locked past the busy timeout); it did nothing and may be retried;
 * - `not_migrated`: the schema or its tables are missing; call `migrate()`;
 * - `schema_too_new`: the schema was migrated by a newer Cairn; upgrade Cairn;
 * - `invalid_value`: the database cannot store a value (e.g. a NUL character in PostgreSQL text, a
 *   value larger than SQLite's limit);
 * - `unavailable`: the database cannot be reached, read or written (the server is down or closed the
 *   connection; the file cannot be opened, is read-only, or its disk is full);
 * - `closed`: the store was closed;
 * - `query`: any other error the database reported (see `cause`).
 */
export type StoreErrorCode =
  | "conflict"
  | "retry"
  | "not_migrated"
  | "schema_too_new"
  | "invalid_value"
  | "unavailable"
  | "closed"
  | "query";

/** The error a store throws for a failure of its database; the driver's error, if any, is its `cause`. */
export class StoreError extends Error {
  override name = "StoreError";
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  /** Whether `e` is a store error (of `code`, when given), from any store. */
  static is(e: unknown, code?: StoreErrorCode): e is StoreError {
    return e instanceof StoreError && (code === undefined || e.code === code);
  }
}
