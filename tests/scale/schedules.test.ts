/**
 * Schedules across workers (SPEC §9.4): two worker processes share one PostgreSQL schema and a clock
 * sped up 60 times (one minute a second, the same for both). Every minute slot of `triggers.crons`
 * calls `scheduled()` exactly once across the two (recorded in a side file, independently of Cairn),
 * none is missed while they run, and every slot of the workflow's schedule creates one instance.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene, sleep } from "./harness.ts";
import type { ScheduledRecord } from "./worker.ts";

const base = postgresUrl("the scale-out schedule tests");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

const MINUTE = 60_000;

describe.skipIf(!base)("scale-out: schedules", () => {
  it("two PostgreSQL workers fire each slot once", async () => {
    scene = new Scene(base!);
    const scheduledPath = join(scene.dir, "scheduled.jsonl");
    const fast = { start: Date.UTC(2026, 0, 1, 0, 0, 30), epoch: Date.now(), speed: 60 };
    const config = { fast, schedules: ["* * * * *"], crons: ["* * * * *"], scheduledPath, leaseMs: 15_000 };
    await Promise.all(["w1", "w2"].map((n) => scene!.start(n, config)));
    const records = (): ScheduledRecord[] =>
      existsSync(scheduledPath)
        ? readFileSync(scheduledPath, "utf8")
            .split("\n")
            .filter((l) => l.trim())
            .map((l) => JSON.parse(l) as ScheduledRecord)
        : [];
    // Wait (in real time) for six slots after the first one fired.
    const deadline = Date.now() + 60_000;
    while (new Set(records().map((r) => r.scheduledTime)).size < 6) {
      if (Date.now() > deadline) throw new Error(`only ${records().length} scheduled() calls so far`);
      await sleep(100);
    }
    await Promise.all(scene.workers.map((w) => w.request({ cmd: "close" })));

    const calls = records();
    const slots = [...new Set(calls.map((r) => r.scheduledTime))].sort((a, b) => a - b);
    expect(calls).toHaveLength(slots.length);
    for (const [i, slot] of slots.entries()) {
      expect(slot % MINUTE).toBe(0);
      if (i > 0) expect(slot - slots[i - 1]!, "no slot is missed").toBe(MINUTE);
    }
    expect(calls.every((c) => c.cron === "* * * * *")).toBe(true);

    const rows = await scene.query<{ id: string; n: string }>(
      "SELECT i.id, (SELECT COUNT(*) FROM $S.history h WHERE h.workflow = i.workflow AND h.instance_id = i.id AND h.type = 'workflow_queued') AS n FROM $S.instances i WHERE i.workflow = 'report' ORDER BY i.id",
    );
    const instanceSlots = rows.map((r) => Number(r.id.split("#")[1])).sort((a, b) => a - b);
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
    for (const [i, slot] of instanceSlots.entries())
      if (i > 0) expect(slot - instanceSlots[i - 1]!).toBe(MINUTE);
    expect(instanceSlots.length).toBeGreaterThanOrEqual(slots.length - 1);
    // Each workflow slot's callback ran once across both workers.
    const recorded = scene.calls().filter((c) => c.step === "record" && c.phase === "start");
    expect(recorded.map((c) => c.instance).sort()).toEqual(
      [...new Set(recorded.map((c) => c.instance))].sort(),
    );
  }, 90_000);
});
