import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { MIGRATIONS } from "./migrations.ts";
import { openSqliteStore } from "./sqlite-store.ts";

const dir = mkdtempSync(join(tmpdir(), "cairn-sqlite-migrations-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = 1_767_225_600_000;

describe("upgrading a SQLite store", () => {
  it("keeps the history of a version 6 store and numbers new entries after it", async () => {
    const path = join(dir, "v6", "cairn.db");
    mkdirSync(join(dir, "v6"));
    const old = new DatabaseSync(path);
    old.exec(
      "CREATE TABLE cairn_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
    for (const m of MIGRATIONS.filter((x) => x.version <= 6)) {
      old.exec(m.sql);
      old.prepare("INSERT INTO cairn_migrations VALUES (?, ?, 0)").run(m.version, m.name);
    }
    const insert = old.prepare(
      "INSERT INTO history (workflow, instance_id, type, timestamp, step_kind, step_name, step_count, data) VALUES ('w', 'a', ?, ?, ?, ?, ?, ?)",
    );
    insert.run("workflow_running", T0, null, null, null, null);
    insert.run("step_started", T0 + 1, "do", "x", 1, JSON.stringify({ config: { retries: { limit: 0 } } }));
    insert.run("step_completed", T0 + 2, "do", "x", 1, null);
    old.close();

    const store = await openSqliteStore({ path });
    try {
      const before = await store.history.list("w", "a");
      expect(before.map((e) => [e.eventId, e.type])).toEqual([
        [1, "workflow_running"],
        [2, "step_started"],
        [3, "step_completed"],
      ]);
      expect(before[1]!.data).toEqual({ config: { retries: { limit: 0 } } });
      const y = { kind: "do" as const, name: "y", count: 1 };
      await store.history.append([
        {
          workflow: "w",
          instanceId: "a",
          type: "attempt_started",
          timestamp: T0 + 3,
          step: y,
          data: { attempt: 1 },
        },
        { workflow: "w", instanceId: "a", type: "step_completed", timestamp: T0 + 4, step: y },
        { workflow: "w", instanceId: "a", type: "workflow_completed", timestamp: T0 + 4 },
      ]);
      const after = await store.history.list("w", "a");
      expect(after.map((e) => [e.eventId, e.type])).toEqual([
        [1, "workflow_running"],
        [2, "step_started"],
        [3, "step_completed"],
        [4, "attempt_started"],
        [5, "step_completed"],
        [6, "workflow_completed"],
      ]);
      // The two entries of step y are one row.
      expect(store.db.prepare("SELECT COUNT(*) AS n FROM history").get()).toEqual({ n: 5 });
      expect(await store.history.metrics("w", T0 + 2, T0 + 3, 10)).toEqual([
        {
          type: "step_completed",
          instanceId: "a",
          stepName: "x",
          timestamp: T0 + 2,
          cpuTimeMs: null,
          wallTimeMs: null,
        },
        {
          type: "attempt_started",
          instanceId: "a",
          stepName: "y",
          timestamp: T0 + 3,
          cpuTimeMs: null,
          wallTimeMs: null,
        },
      ]);
    } finally {
      await store.close();
    }
  });
});

describe("the page cache", () => {
  it("is 16 MiB unless asked, and refuses a size that is not a whole number of MiB from 1 to 4096", async () => {
    const dflt = await openSqliteStore({ path: join(dir, "cache-default", "cairn.db") });
    const big = await openSqliteStore({ path: join(dir, "cache-big", "cairn.db"), cacheSizeMiB: 128 });
    try {
      expect(dflt.db.prepare("PRAGMA cache_size").get()).toEqual({ cache_size: -16 * 1024 });
      expect(big.db.prepare("PRAGMA cache_size").get()).toEqual({ cache_size: -128 * 1024 });
    } finally {
      await dflt.close();
      await big.close();
    }
    for (const bad of [0, -1, 1.5, 5000, "16", Number.NaN])
      await expect(
        openSqliteStore({ path: join(dir, "cache-bad", "cairn.db"), cacheSizeMiB: bad as number }),
      ).rejects.toThrow(/cacheSizeMiB must be a whole number of MiB from 1 to 4096, got/);
  });
});
