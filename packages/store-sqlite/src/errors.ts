import { StoreError, type StoreErrorCode } from "@cairn/store";

/** SQLite's primary result codes that Cairn tells apart (https://sqlite.org/rescode.html). */
const SQLITE_ERROR = 1;
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_TOOBIG = 18;
const SQLITE_CONSTRAINT = 19;
const SQLITE_NOTADB = 26;
/** Extended codes of SQLITE_CONSTRAINT: a primary key or unique index refused the row. */
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;
const SQLITE_CONSTRAINT_UNIQUE = 2067;

/**
 * Maps an error from `node:sqlite` to a `StoreError`, as `mapPostgresError` does for `pg`; anything
 * else (including errors that are already mapped, and errors thrown by callers' code) is returned
 * unchanged. The message keeps SQLite's, after what it means for Cairn.
 */
export function mapSqliteError(e: unknown): unknown {
  if (e instanceof StoreError || !(e instanceof Error)) return e;
  const { code, errcode } = e as { code?: unknown; errcode?: unknown };
  if (code === "ERR_INVALID_STATE" && /database is not open/.test(e.message))
    return new StoreError("closed", `The Cairn store is closed: ${e.message}`, { cause: e });
  if (code !== "ERR_SQLITE_ERROR" || typeof errcode !== "number") return e;
  const at = (c: StoreErrorCode, text: string) => new StoreError(c, `${text}: ${e.message}`, { cause: e });
  switch (errcode & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return at("retry", "The SQLite database stayed locked by another connection; retry");
    case SQLITE_CONSTRAINT:
      if (errcode === SQLITE_CONSTRAINT_PRIMARYKEY || errcode === SQLITE_CONSTRAINT_UNIQUE)
        return at("conflict", "A row with that key already exists");
      return at("query", "SQLite error");
    case SQLITE_TOOBIG:
      return at("invalid_value", "SQLite cannot store this value");
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
      return at("unavailable", "The SQLite database cannot be read or written");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return at("query", "The SQLite file is damaged or not a Cairn database");
    case SQLITE_ERROR:
      if (/^no such (table|column)/.test(e.message))
        return at("not_migrated", "The Cairn schema is missing tables; run migrate()");
  }
  return at("query", "SQLite error");
}
