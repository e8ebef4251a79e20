import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StoreMessage } from "@cairn/store";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore, type SqliteStore } from "./sqlite-store.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function twoConnections() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-channel-"));
  const path = join(dir, "cairn.db");
  const a = await openSqliteStore({ path, channel: true });
  const b = await openSqliteStore({ path, channel: true });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanup.push(() => a.close());
  cleanup.push(() => b.close());
  return { a, b, path };
}

async function received(store: SqliteStore) {
  const messages: StoreMessage[] = [];
  const stop = await store.listen!((m) => messages.push(m));
  cleanup.push(stop);
  return messages;
}

const turn = () => new Promise((r) => setTimeout(r, 20));

describe("the SQLite channel (connections to one file in one process)", () => {
  it("delivers what a committed transaction notifies to every listener of the file, as LISTEN does", async () => {
    const { a, b } = await twoConnections();
    const atA = await received(a);
    const atB = await received(b);
    await a.transaction(async (tx) => {
      await tx.notify!({ kind: "ready", sender: "a" });
      await tx.notify!({ kind: "event", workflow: "w", instanceId: "i", eventType: "t", sender: "a" });
    });
    for (let i = 0; i < 50 && (atA.length < 2 || atB.length < 2); i++) await turn();
    const sent = [
      { kind: "ready", sender: "a" },
      { kind: "event", workflow: "w", instanceId: "i", eventType: "t", sender: "a" },
    ];
    // Listeners skip their own messages by `sender`, as on PostgreSQL.
    expect(atB).toEqual(sent);
    expect(atA).toEqual(sent);
  });

  it("sends nothing for a transaction that fails, alone or grouped with others", async () => {
    const { a, b } = await twoConnections();
    const atB = await received(b);
    const failing = (n: number) =>
      a.transaction(async (tx) => {
        await tx.notify!({ kind: "ready", sender: `failed-${n}` });
        throw new Error("no");
      });
    await expect(failing(1)).rejects.toThrow("no");
    // Grouped: requested in the same turn, committed together, each in its own savepoint.
    const grouped = [failing(2), a.transaction(async (tx) => tx.notify!({ kind: "ready", sender: "kept" }))];
    await Promise.allSettled(grouped);
    await a.transaction(async (tx) => tx.notify!({ kind: "ready", sender: "last" }));
    for (let i = 0; i < 50 && atB.length < 2; i++) await turn();
    expect(atB.map((m) => m.sender)).toEqual(["kept", "last"]);
  });

  it("is off by default: a store without it neither notifies nor listens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-channel-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = await openSqliteStore({ path: join(dir, "cairn.db") });
    cleanup.push(() => store.close());
    expect(store.listen).toBeUndefined();
    expect(await store.transaction(async (tx) => tx.notify)).toBeUndefined();
  });
});
