import { StoreError, type StoreErrorCode } from "@cairn/store";

/** The codes of `StoreError` (see there); PostgreSQL's errors map to all of them. */
export type PostgresStoreErrorCode = StoreErrorCode;

/**
 * The `StoreError` the PostgreSQL store throws, with PostgreSQL's SQLSTATE; the driver's error, if
 * any, is its `cause`.
 */
export class PostgresStoreError extends StoreError {
  override name = "PostgresStoreError";
  /** PostgreSQL's SQLSTATE, when the server reported the error. */
  readonly sqlState: string | undefined;

  constructor(
    code: PostgresStoreErrorCode,
    message: string,
    options: { cause?: unknown; sqlState?: string } = {},
  ) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause });
    this.sqlState = options.sqlState;
  }

  static override is(e: unknown, code?: PostgresStoreErrorCode): e is PostgresStoreError {
    return e instanceof PostgresStoreError && (code === undefined || e.code === code);
  }
}

const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH"]);

/**
 * Maps an error from the `pg` driver to a `PostgresStoreError`; anything else (including errors that are
 * already mapped, other `StoreError`s, and errors thrown by callers' code) is returned unchanged.
 */
export function mapPostgresError(e: unknown): unknown {
  if (e instanceof StoreError || !(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string") {
    if (/Connection terminated|Client has encountered a connection error|not queryable/i.test(e.message))
      return new PostgresStoreError("unavailable", `PostgreSQL connection lost: ${e.message}`, { cause: e });
    return e;
  }
  if (NETWORK.has(code))
    return new PostgresStoreError("unavailable", `Cannot reach PostgreSQL: ${e.message}`, { cause: e });
  if (!/^[0-9A-Z]{5}$/.test(code)) return e;
  const at = (c: PostgresStoreErrorCode, text: string) =>
    new PostgresStoreError(c, `${text}: ${e.message}`, { cause: e, sqlState: code });
  switch (code) {
    case "23505":
      return at("conflict", "A row with that key already exists");
    case "40001":
    case "40P01":
      return at("retry", "PostgreSQL aborted the transaction because of a concurrent one; retry it");
    case "42P01":
    case "3F000":
      return at("not_migrated", "The Cairn schema is missing tables; run migrate()");
    case "22021":
    case "22P05":
    case "54000":
      return at("invalid_value", "PostgreSQL cannot store this value");
  }
  if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03")
    return at("unavailable", "PostgreSQL is unavailable");
  return at("query", "PostgreSQL error");
}
