/** Shipping an object's commits (SPEC §13.7): changesets, snapshots, restore, the output gate. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { cleanDirs, tempDir } from "../test/helpers.ts";
import { ObjectStorage, type ReplicatedEntry, restoreDatabase } from "./storage.ts";

afterEach(cleanDirs);

const noAlarms = { get: () => null, set: () => {}, delete: () => {} };

function open(
  path: string,
  replicate: (e: ReplicatedEntry) => Promise<void>,
  onCommitError?: (e: unknown) => void,
) {
  return new ObjectStorage({
    db: () => new DatabaseSync(path),
    alarms: noAlarms,
    replicate,
    ...(onCommitError ? { onCommitError } : {}),
  });
}

/** Every table's rows, in order, as plain objects. */
function contents(path: string): Record<string, unknown[]> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .all() as { name: string }[];
    return Object.fromEntries(
      tables.map(({ name }) => [
        name,
        db
          .prepare(`SELECT * FROM "${name}" ORDER BY 1`)
          .all()
          .map((r) => ({ ...r })),
      ]),
    );
  } finally {
    db.close();
  }
}

describe("replicated object storage", () => {
  it("ships the first commit whole, then changesets, and a snapshot after schema changes or writes a changeset cannot carry", async () => {
    const dir = tempDir();
    const path = join(dir, "a.sqlite");
    const shipped: ReplicatedEntry[] = [];
    const storage = open(path, async (e) => void shipped.push(e));
    const sql = (q: string, ...b: unknown[]) => storage.sql.exec(q, ...(b as never[])).toArray();

    sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)");
    sql("INSERT INTO items (name) VALUES ('a'), ('b')");
    await storage.put("k", { n: 1 });
    await storage.flush();
    sql("UPDATE items SET name = 'B' WHERE id = 2");
    sql("INSERT INTO items (name) VALUES ('c')");
    await storage.flush();
    await storage.delete("k");
    await storage.put("k2", new Map([["x", 1]]));
    await storage.flush();
    sql("CREATE TABLE log (line TEXT)");
    await storage.flush();
    sql("INSERT INTO items (name) VALUES ('d')");
    await storage.flush();
    // A table without a primary key: sessions do not record its rows.
    sql("INSERT INTO log VALUES ('one')");
    await storage.flush();
    sql("DELETE FROM items WHERE id = 1");
    await storage.flush();
    // A write that changes nothing ships nothing.
    sql("DELETE FROM items WHERE id = 99");
    await storage.flush();
    await storage.shipped();
    expect(shipped.map((e) => e.kind)).toEqual([
      "snapshot",
      "changeset",
      "changeset",
      "snapshot",
      "changeset",
      "snapshot",
      "changeset",
    ]);
    storage.close();

    const copy = join(dir, "copy.sqlite");
    restoreDatabase(
      copy,
      shipped.slice(shipped.lastIndexOf(shipped.findLast((e) => e.kind === "snapshot")!)),
    );
    expect(contents(copy)).toEqual(contents(path));
    // Given everything shipped, the last snapshot holds what came before it.
    const again = join(dir, "again.sqlite");
    restoreDatabase(again, shipped);
    expect(contents(again)).toEqual(contents(path));
    const reopened = open(copy, async () => {});
    expect(await reopened.get("k2")).toEqual(new Map([["x", 1]]));
    expect(await reopened.get("k")).toBeUndefined();
    expect(reopened.sql.exec("SELECT name FROM items ORDER BY id").toArray()).toEqual([
      { name: "B" },
      { name: "c" },
      { name: "d" },
    ]);
    reopened.close();
  });

  it("opens the output gate only once the commit is shipped, and a failed ship fails the commit", async () => {
    const path = join(tempDir(), "b.sqlite");
    let release!: () => void;
    let fail = false;
    const errors: unknown[] = [];
    const storage = open(
      path,
      (e) =>
        fail
          ? Promise.reject(new Error(`fenced: ${e.kind}`))
          : new Promise<void>((r) => {
              release = r;
            }),
      (e) => errors.push(e),
    );
    await storage.put("a", 1);
    let flushed = false;
    const gate = storage.flush().then(() => (flushed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(flushed).toBe(false);
    release();
    await gate;
    expect(flushed).toBe(true);

    fail = true;
    await storage.put("b", 2);
    await expect(storage.flush()).rejects.toThrow("fenced: changeset");
    expect(errors).toHaveLength(1);
    storage.discard();
  });

  it("refuses to restore a changeset that does not apply", () => {
    const dir = tempDir();
    const source = join(dir, "s.sqlite");
    const db = new DatabaseSync(source);
    db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a')");
    const session = db.createSession();
    db.exec("UPDATE t SET v = 'b' WHERE k = 1");
    const changeset = session.changeset();
    db.close();
    const empty = join(dir, "e.sqlite");
    const base = new DatabaseSync(empty);
    base.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
    base.close();
    const snapshot = new Uint8Array(readFileSync(empty));
    expect(() =>
      restoreDatabase(join(dir, "r.sqlite"), [
        { kind: "snapshot", bytes: snapshot },
        { kind: "changeset", bytes: changeset },
      ]),
    ).toThrow("changeset 1 of 1 does not apply");
  });
});
