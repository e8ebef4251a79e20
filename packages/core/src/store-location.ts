/**
 * Where a store lives, as given by a user: a SQLite file path, `":memory:"`, or a PostgreSQL URL.
 * Anything else that looks like a URL (`mysql://…`, `sqlite://…`, `file:…`) is refused, so a typo
 * never becomes a SQLite file named after it.
 */
export type StoreLocation =
  | { kind: "sqlite"; path: string }
  | { kind: "memory" }
  | { kind: "postgres"; url: string };

/** `postgres://` or `postgresql://`, any case. */
const POSTGRES = /^postgres(ql)?:\/\//i;
/** A URL scheme of two or more letters (one letter is a Windows drive, `C:\…`). */
const SCHEME = /^([a-z][a-z0-9+.-]+):/i;

/**
 * Reads a store location; throws a `TypeError` naming the value and what is accepted.
 *
 * ```ts
 * parseStoreLocation("./cairn.db");            // { kind: "sqlite", path: "./cairn.db" }
 * parseStoreLocation("postgres://db/app");     // { kind: "postgres", url: "postgres://db/app" }
 * parseStoreLocation("mysql://x");             // throws: unsupported store "mysql://x" …
 * ```
 */
export function parseStoreLocation(value: string): StoreLocation {
  if (typeof value !== "string" || value.trim() === "")
    throw new TypeError('store must be a SQLite file path, ":memory:" or a postgres:// URL');
  if (value === ":memory:") return { kind: "memory" };
  if (POSTGRES.test(value)) return { kind: "postgres", url: value };
  const scheme = SCHEME.exec(value)?.[1];
  if (scheme !== undefined)
    throw new TypeError(
      `unsupported store "${value}": "${scheme}:" is not a store Cairn knows; ` +
        'use a SQLite file path (e.g. ./cairn.db), ":memory:" or postgres://user@host/db',
    );
  return { kind: "sqlite", path: value };
}

/** How a store is shown to people: the SQLite path, "in memory", or the PostgreSQL host and database (no password). */
export function describeStoreLocation(location: StoreLocation): string {
  if (location.kind === "memory") return "in memory (:memory:)";
  if (location.kind === "sqlite") return `SQLite ${location.path}`;
  try {
    const url = new URL(location.url);
    const schema = url.searchParams.get("schema");
    return `PostgreSQL ${url.host}${url.pathname}${schema ? ` (schema ${schema})` : ""}`;
  } catch {
    return "PostgreSQL";
  }
}
