import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreError } from "@cairn/store";
import { afterAll, describe, expect, it } from "vitest";
import { mapSqliteError } from "./errors.ts";
import { sqlite } from "./node-sqlite.ts";
import { openSqliteStore, SqliteStore } from "./sqlite-store.ts";

const dir = mkdtempSync(join(tmpdir(), "cairn-sqlite-errors-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The error SQLite throws for `run`, mapped. */
function mapped(run: () => unknown): unknown {
  try {
    run();
  } catch (e) {
    return mapSqliteError(e);
  }
  throw new Error("expected SQLite to throw");
}

describe("mapSqliteError", () => {
  it("maps a missing table to not_migrated, keeping SQLite's message and error", () => {
    const db = new (sqlite().DatabaseSync)(":memory:");
    const e = mapped(() => db.prepare("SELECT * FROM instances").all());
    expect(StoreError.is(e, "not_migrated")).toBe(true);
    expect((e as Error).message).toMatch(/run migrate\(\).*no such table: instances/);
    expect((e as Error).cause).toMatchObject({ code: "ERR_SQLITE_ERROR" });
    db.close();
  });

  it("maps a duplicate key to conflict", () => {
    const db = new (sqlite().DatabaseSync)(":memory:");
    db.exec(
      "CREATE TABLE t (k TEXT PRIMARY KEY); CREATE TABLE u (k TEXT UNIQUE); INSERT INTO t VALUES ('a');",
    );
    db.exec("INSERT INTO u VALUES ('a')");
    expect(
      StoreError.is(
        mapped(() => db.exec("INSERT INTO t VALUES ('a')")),
        "conflict",
      ),
    ).toBe(true);
    expect(
      StoreError.is(
        mapped(() => db.exec("INSERT INTO u VALUES ('a')")),
        "conflict",
      ),
    ).toBe(true);
    db.exec("CREATE TABLE n (k TEXT NOT NULL)");
    expect(
      StoreError.is(
        mapped(() => db.exec("INSERT INTO n VALUES (NULL)")),
        "query",
      ),
    ).toBe(true);
    db.close();
  });

  it("maps a file locked by another connection past the busy timeout to retry", () => {
    const path = join(dir, "locked.db");
    const a = new (sqlite().DatabaseSync)(path);
    const b = new (sqlite().DatabaseSync)(path);
    a.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (k INTEGER)");
    b.exec("PRAGMA busy_timeout = 0");
    a.exec("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)");
    const e = mapped(() => b.exec("BEGIN IMMEDIATE"));
    expect(StoreError.is(e, "retry")).toBe(true);
    a.exec("ROLLBACK");
    a.close();
    b.close();
  });

  it("maps a file that cannot be opened to unavailable", () => {
    const e = mapped(() => new (sqlite().DatabaseSync)(join(dir, "missing-dir", "x.db")));
    expect(StoreError.is(e, "unavailable")).toBe(true);
  });

  it("maps a closed database to closed", () => {
    const db = new (sqlite().DatabaseSync)(":memory:");
    db.close();
    expect(
      StoreError.is(
        mapped(() => db.exec("SELECT 1")),
        "closed",
      ),
    ).toBe(true);
  });

  it("returns other errors unchanged", () => {
    const mine = new Error("from the caller");
    expect(mapSqliteError(mine)).toBe(mine);
    expect(mapSqliteError("text")).toBe("text");
    const already = new StoreError("retry", "x");
    expect(mapSqliteError(already)).toBe(already);
  });
});

describe("the SQLite store's errors", () => {
  it("are StoreErrors: a store whose schema was never migrated", async () => {
    const store = new SqliteStore({ path: join(dir, "unmigrated", "cairn.db") });
    try {
      const e = await store.instances.get("orders", "a").catch((error: unknown) => error);
      expect(StoreError.is(e, "not_migrated")).toBe(true);
      const written = await store.instances
        .insertMany([{ workflow: "orders", id: "a", params: new Uint8Array(), createdAt: 1 }])
        .catch((error: unknown) => error);
      expect(StoreError.is(written, "not_migrated")).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("are StoreErrors: a closed store, and a schema newer than this Cairn", async () => {
    const path = join(dir, "newer", "cairn.db");
    const store = await openSqliteStore({ path });
    store.db.exec("INSERT INTO cairn_migrations (version, name, applied_at) VALUES (999, 'future', 0)");
    await store.close();
    const closed = await store.transaction(async () => 1).catch((e: unknown) => e);
    expect(StoreError.is(closed, "closed")).toBe(true);
    expect((closed as Error).message).toBe("The Cairn store is closed");
    const newer = await openSqliteStore({ path }).catch((e: unknown) => e);
    expect(StoreError.is(newer, "schema_too_new")).toBe(true);
    expect((newer as Error).message).toMatch(/schema version 999, newer than this version of Cairn/);
  });

  it("leaves errors thrown inside a transaction as they are", async () => {
    const store = await openSqliteStore({ path: ":memory:" });
    try {
      const mine = new Error("mine");
      await expect(store.transaction(async () => Promise.reject(mine))).rejects.toBe(mine);
    } finally {
      await store.close();
    }
  });
});
