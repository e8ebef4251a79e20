/**
 * The queries a worker runs over and over (claims, the next wake-up, step commits, loads) seek
 * through an index: none scans the instances table, whose size grows with parked instances.
 */
import type { DatabaseSync } from "node:sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { sql } from "./sql.ts";
import { openSqliteStore, type SqliteStore } from "./sqlite-store.ts";

const store: SqliteStore = await openSqliteStore({ path: ":memory:" });
afterAll(() => store.close());
const db = (store as unknown as { db: DatabaseSync }).db;

/** The plan's steps that read the instances table without an index. */
function scans(text: string, params: (string | number)[]): string[] {
  const plan = db.prepare(`EXPLAIN QUERY PLAN ${text}`).all(...params) as { detail: string }[];
  return plan
    .map((p) => p.detail)
    .filter(
      (d) => /^SCAN instances(?! USING)/.test(d) || /SCAN instances USING INDEX instances_ready\b/.test(d),
    );
}

describe("the worker's queries seek, they do not scan", () => {
  const queries: [string, string, (string | number)[]][] = [
    ["claim candidates: expired leases", sql.claimExpired, [1, "o", 10]],
    ["claim candidates: ready", sql.claimReady, [1, 1, 10]],
    ["claim one", sql.claimOne, ["o", 1, 1, 1, "w", "i", 1, 1, 1, "o"]],
    ["nextReadyAt", sql.nextReadyAt, []],
    ["countRunning", sql.countRunning, []],
    ["countDue", sql.countDue, [1]],
    ["fenceOf", sql.fenceOf, ["w", "i"]],
    ["hasWaiter", sql.hasWaiter, ["w", "i", "t"]],
    ["renewLeases", sql.renewLeases, [1, "o"]],
  ];
  for (const [name, text, params] of queries)
    it(name, () => {
      expect(scans(text, params)).toEqual([]);
    });

  it("a claim among many parked instances reads only the due ones", async () => {
    const parked = Array.from({ length: 2000 }, (_, i) => ({
      workflow: "w",
      id: `p${i}`,
      params: new Uint8Array([0]),
      createdAt: 1,
      status: "waiting" as const,
      readyAt: 1_000_000 + i,
    }));
    await store.instances.insertMany([...parked, { ...parked[0]!, id: "due", readyAt: 5 }]);
    const claimed = await store.queue.claim({ owner: "o", now: 10, limit: 10, leaseMs: 1000 });
    expect(claimed.map((r) => r.id)).toEqual(["due"]);
    expect(await store.queue.nextReadyAt()).toBe(1_000_000);
  });
});
