import { existsSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { cleanDirs, tempDir, turns } from "../test/helpers.ts";
import { DurableObject } from "./durable-object.ts";
import { createObjectHost, type ObjectHost } from "./host.ts";
import { MAX_VALUE_BYTES } from "./limits.ts";
import { splitStatements } from "./sql-split.ts";

class Store extends DurableObject {
  sql(query: string, ...bindings: unknown[]) {
    const c = this.ctx.storage.sql.exec(query, ...bindings);
    return { rows: c.toArray(), columns: c.columnNames, written: c.rowsWritten, read: c.rowsRead };
  }
  raw(query: string) {
    return [...this.ctx.storage.sql.exec(query).raw()];
  }
  one(query: string) {
    return this.ctx.storage.sql.exec(query).one();
  }
  iterate(query: string) {
    const out: unknown[] = [];
    for (const row of this.ctx.storage.sql.exec(query)) out.push(row);
    return out;
  }
  size() {
    return this.ctx.storage.sql.databaseSize;
  }
  async put(key: string | Record<string, unknown>, value?: unknown) {
    if (typeof key === "string") await this.ctx.storage.put(key, value);
    else await this.ctx.storage.put(key);
  }
  get(key: string | string[]) {
    return this.ctx.storage.get(key as string);
  }
  del(key: string | string[]) {
    return this.ctx.storage.delete(key as string);
  }
  list(options?: Record<string, unknown>) {
    return this.ctx.storage.list(options);
  }
  kv(op: "get" | "put" | "delete" | "list", key?: string, value?: unknown) {
    const kv = this.ctx.storage.kv;
    if (op === "get") return kv.get(key!);
    if (op === "put") return kv.put(key!, value);
    if (op === "delete") return kv.delete(key!);
    return [...kv.list({ prefix: key })];
  }
  txSync(fail: boolean) {
    this.ctx.storage.transactionSync(() => {
      this.ctx.storage.sql.exec("INSERT INTO t (x) VALUES (?)", "in-tx");
      this.ctx.storage.kv.put("tx", 1);
      if (fail) throw new Error("undo");
    });
  }
  async tx(mode: "ok" | "throw" | "rollback") {
    return this.ctx.storage.transaction(async (txn) => {
      await txn.put("async", mode);
      if (mode === "throw") throw new Error("undo async");
      if (mode === "rollback") txn.rollback();
      return mode;
    });
  }
  async wipe() {
    await this.ctx.storage.deleteAll();
  }
}

let host: ObjectHost | undefined;
afterEach(async () => {
  await host?.close();
  host = undefined;
  cleanDirs();
});

function open(dir = tempDir()) {
  host = createObjectHost({ dir, objects: [{ binding: "STORE", class: Store }] });
  return { host, ns: host.namespaces.STORE!, dir };
}

const stub = (name = "a") => host!.namespaces.STORE!.getByName(name) as any;

describe("sql.exec", () => {
  it("creates tables, binds values, returns cursors, and keeps one SQLite file per object", async () => {
    const { dir } = open();
    const s = stub();
    await s.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT, b BLOB)");
    const ins = await s.sql(
      "INSERT INTO t (x, b) VALUES (?, ?), (?, ?)",
      "one",
      new Uint8Array([1, 2]),
      "two",
      null,
    );
    expect(ins.written).toBe(2);
    const sel = await s.sql("SELECT id, x, b FROM t ORDER BY id");
    expect(sel.columns).toEqual(["id", "x", "b"]);
    expect(sel.rows[0].x).toBe("one");
    expect(sel.rows[0].b).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(sel.rows[0].b)]).toEqual([1, 2]);
    expect(sel.rows[1].b).toBeNull();
    expect(sel.read).toBe(2);
    expect(await s.raw("SELECT x FROM t ORDER BY id")).toEqual([["one"], ["two"]]);
    expect(await s.iterate("SELECT id FROM t ORDER BY id")).toEqual([{ id: 1 }, { id: 2 }]);
    expect(await s.one("SELECT count(*) AS n FROM t")).toEqual({ n: 2 });
    expect(await s.size()).toBeGreaterThan(0);
    const file = join(dir, "Store", `${host!.namespaces.STORE!.idFromName("a")}.sqlite`);
    expect(existsSync(file)).toBe(true);
    await turns();
    const db = new DatabaseSync(file, { readOnly: true });
    expect(
      db
        .prepare("SELECT x FROM t ORDER BY id")
        .all()
        .map((r: any) => r.x),
    ).toEqual(["one", "two"]);
    db.close();
  });

  it("runs several statements in one exec and returns the last one's rows", async () => {
    open();
    const r = await stub().sql(
      "CREATE TABLE a (x); CREATE TABLE b (y); INSERT INTO a VALUES (1); -- comment; \n SELECT 'a;b' AS s, x FROM a;",
    );
    expect(r.rows).toEqual([{ s: "a;b", x: 1 }]);
  });

  it("fails clearly on SQL errors, with the query, and leaves the object and its data intact", async () => {
    open();
    const s = stub();
    await s.sql("CREATE TABLE t (x TEXT UNIQUE)");
    await s.sql("INSERT INTO t VALUES ('a')");
    await expect(s.sql("SELECT * FROM nope")).rejects.toThrow(
      /no such table: nope.*query: SELECT \* FROM nope/,
    );
    await expect(s.sql("INSERT INTO t VALUES ('a')")).rejects.toThrow(/UNIQUE constraint failed/);
    await expect(s.one("SELECT * FROM t WHERE x = 'zz'")).rejects.toThrow(
      "Expected exactly one result from SQL query, but got no results.",
    );
    await expect(s.sql("BEGIN TRANSACTION")).rejects.toThrow(/please use the state.storage.transaction\(\)/);
    await expect(s.sql("SELECT * FROM _cf_KV")).rejects.toThrow(/access to _cf_KV.* is prohibited/);
    await expect(s.sql("PRAGMA journal_mode = DELETE")).rejects.toThrow(/PRAGMA journal_mode is not allowed/);
    await expect(s.sql("SELECT ?", { x: 1 })).rejects.toThrow(
      /binding 1 must be a string, number, ArrayBuffer or null/,
    );
    expect((await s.sql("SELECT x FROM t")).rows).toEqual([{ x: "a" }]);
  });

  it("refuses statements over 100 KB; objects that never touch storage make no file", async () => {
    const { dir } = open();
    await expect(stub().sql(`SELECT '${"x".repeat(110 * 1024)}'`)).rejects.toThrow(
      /the SQL statement is \d+ bytes; the limit is 102400/,
    );
    expect((await stub().sql("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    await host!.namespaces
      .STORE!.getByName("untouched")
      .fetch("http://do/")
      .catch(() => {});
    const id = host!.namespaces.STORE!.idFromName("untouched").toString();
    expect(existsSync(join(dir, "Store", `${id}.sqlite`))).toBe(false);
  });

  it("splits statements around quotes, comments and trigger bodies", () => {
    expect(
      splitStatements(
        "CREATE TRIGGER tr AFTER INSERT ON a BEGIN UPDATE b SET y = CASE WHEN 1 THEN 2 END; DELETE FROM c; END; SELECT ';'; /* ; */",
      ),
    ).toEqual([
      "CREATE TRIGGER tr AFTER INSERT ON a BEGIN UPDATE b SET y = CASE WHEN 1 THEN 2 END; DELETE FROM c; END",
      "SELECT ';'",
    ]);
  });
});

describe("key-value storage", () => {
  it("gets, puts, deletes single keys and arrays of keys with structured-clone values", async () => {
    open();
    const s = stub();
    await s.put("a", { n: 1, when: new Date(0), m: new Map([[1, 2]]) });
    const a = await s.get("a");
    expect(a.when).toBeInstanceOf(Date);
    expect(a.m.get(1)).toBe(2);
    await s.put({ b: 2, c: 3 });
    expect(await s.get(["c", "b", "zz"])).toEqual(
      new Map([
        ["b", 2],
        ["c", 3],
      ]),
    );
    expect(await s.del("a")).toBe(true);
    expect(await s.del("a")).toBe(false);
    expect(await s.del(["b", "c", "zz"])).toBe(2);
    expect(await s.get("a")).toBeUndefined();
  });

  it("lists with prefix, start, startAfter, end, limit and reverse", async () => {
    open();
    const s = stub();
    await s.put({ "a:1": 1, "a:2": 2, "a:3": 3, b: 4, c: 5 });
    const keys = async (o: Record<string, unknown>) => [...(await s.list(o)).keys()];
    expect(await keys({})).toEqual(["a:1", "a:2", "a:3", "b", "c"]);
    expect(await keys({ prefix: "a:" })).toEqual(["a:1", "a:2", "a:3"]);
    expect(await keys({ start: "a:2", end: "c" })).toEqual(["a:2", "a:3", "b"]);
    expect(await keys({ startAfter: "a:2" })).toEqual(["a:3", "b", "c"]);
    expect(await keys({ reverse: true, limit: 2 })).toEqual(["c", "b"]);
    expect(await keys({ prefix: "a:", reverse: true, limit: 1 })).toEqual(["a:3"]);
    await expect(s.list({ limit: 0 })).rejects.toThrow(/limit must be a positive whole number/);
  });

  it("has a synchronous kv API over the same data", async () => {
    open();
    const s = stub();
    await s.kv("put", "x:1", "one");
    expect(await s.get("x:1")).toBe("one");
    expect(await s.kv("get", "x:1")).toBe("one");
    expect(await s.kv("list", "x:")).toEqual([["x:1", "one"]]);
    expect(await s.kv("delete", "x:1")).toBe(true);
    expect(await s.kv("get", "x:1")).toBeUndefined();
  });

  it("refuses values over the limit, unclonable values and long keys, keeping the data", async () => {
    open();
    const s = stub();
    await s.put("keep", 1);
    await expect(s.put("big", "x".repeat(MAX_VALUE_BYTES + 10))).rejects.toThrow(
      /Values cannot be larger than 2097152 bytes/,
    );
    await expect(s.put("k".repeat(3000), 1)).rejects.toThrow(/Keys cannot be larger than 2048 bytes/);
    expect(await s.get("keep")).toBe(1);
    expect(await s.get("big")).toBeUndefined();
  });

  it("separate objects have separate storage", async () => {
    open();
    await stub("a").put("k", "a");
    await stub("b").put("k", "b");
    expect(await stub("a").get("k")).toBe("a");
    expect(await stub("b").get("k")).toBe("b");
    expect(await stub("c").get("k")).toBeUndefined();
  });
});

describe("transactions", () => {
  it("transactionSync commits or undoes SQL and KV together", async () => {
    open();
    const s = stub();
    await s.sql("CREATE TABLE t (x TEXT)");
    await expect(s.txSync(true)).rejects.toThrow("undo");
    expect((await s.sql("SELECT * FROM t")).rows).toEqual([]);
    expect(await s.kv("get", "tx")).toBeUndefined();
    await s.txSync(false);
    expect((await s.sql("SELECT * FROM t")).rows).toEqual([{ x: "in-tx" }]);
    expect(await s.kv("get", "tx")).toBe(1);
  });

  it("transaction() commits, undoes on throw, and undoes on rollback()", async () => {
    open();
    const s = stub();
    await expect(s.tx("throw")).rejects.toThrow("undo async");
    expect(await s.get("async")).toBeUndefined();
    expect(await s.tx("rollback")).toBe("rollback");
    expect(await s.get("async")).toBeUndefined();
    expect(await s.tx("ok")).toBe("ok");
    expect(await s.get("async")).toBe("ok");
  });

  it("deleteAll removes keys and tables", async () => {
    open();
    const s = stub();
    await s.sql("CREATE TABLE t (x)");
    await s.put("k", 1);
    await s.wipe();
    expect(await s.get("k")).toBeUndefined();
    expect((await s.sql("SELECT name FROM sqlite_master WHERE name = 't'")).rows).toEqual([]);
  });

  it("keeps data across a reopen of the host", async () => {
    const { dir } = open();
    await stub().sql("CREATE TABLE t (x)");
    await stub().sql("INSERT INTO t VALUES (42)");
    await stub().put("k", "v");
    await host!.close();
    open(dir);
    expect((await stub().sql("SELECT x FROM t")).rows).toEqual([{ x: 42 }]);
    expect(await stub().get("k")).toBe("v");
  });
});
