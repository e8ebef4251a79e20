/**
 * Durable Objects shared by workers on PostgreSQL (SPEC §13.7): one worker holds an object at a
 * time; another takes it over with its data once the first lets it go; alarms of objects nobody
 * holds fire on a worker that is still up.
 */

import { join } from "node:path";
import { createCairn, DurableObject } from "cairnjs";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene, sleep } from "./harness.ts";

const base = postgresUrl("the Durable Objects scale-out test");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

class Counter extends DurableObject {
  add(n: number): number {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS counts (k TEXT PRIMARY KEY, n INTEGER)");
    // A table without a primary key too: its rows reach the next worker through snapshots.
    sql.exec("CREATE TABLE IF NOT EXISTS journal (line TEXT)");
    sql.exec("INSERT INTO journal VALUES (?)", `add ${n}`);
    sql.exec("INSERT INTO counts VALUES ('n', ?) ON CONFLICT (k) DO UPDATE SET n = n + excluded.n", n);
    return this.read().n;
  }
  read(): { n: number; journal: string[]; kv: unknown } {
    const sql = this.ctx.storage.sql;
    return {
      n: Number(sql.exec("SELECT n FROM counts").one().n),
      journal: sql
        .exec("SELECT line FROM journal ORDER BY rowid")
        .toArray()
        .map((r) => String(r.line)),
      kv: this.ctx.storage.kv.get("alarmed") ?? null,
    };
  }
  async wakeIn(ms: number): Promise<void> {
    await this.ctx.storage.setAlarm(Date.now() + ms);
  }
  async alarm(): Promise<void> {
    this.add(100);
    this.ctx.storage.kv.put("alarmed", true);
  }
}

describe.skipIf(!base)("Durable Objects on PostgreSQL, shared by workers", () => {
  it("one worker holds an object; the next takes it over with its data, and a free object's alarm fires on a worker still up", async () => {
    scene = new Scene(base!);
    const open = (name: string) =>
      createCairn({
        store: scene!.url,
        objects: [{ binding: "COUNTER", class: Counter }],
        objectsDir: join(scene!.dir, name),
        workerId: name,
        objectLeaseMs: 300,
      });
    const a = await open("a");
    const b = await open("b");
    try {
      const onA = (a.env as any).COUNTER.getByName("c");
      const onB = (b.env as any).COUNTER.getByName("c");
      expect(onA.id.toString()).toBe(onB.id.toString());
      expect(await onA.add(2)).toBe(2);
      expect(await onA.add(3)).toBe(5);
      // a keeps renewing its hold, so b gives up with a clear error.
      await expect(onB.read()).rejects.toThrow(/is held by worker a .*does not forward requests/);

      // Unloaded (here: a closes), the object is free at once and b has everything a shipped.
      await a.close();
      expect(await onB.read()).toEqual({ n: 5, journal: ["add 2", "add 3"], kv: null });
      expect(await onB.add(1)).toBe(6);
      await onB.wakeIn(200);
    } finally {
      await a.close();
      await b.close();
    }
    // b is gone with the alarm set; a worker that is up fires it, with the data b wrote.
    const c = await open("c");
    try {
      const onC = (c.env as any).COUNTER.getByName("c");
      for (let i = 0; ; i++) {
        const rows = await scene.query<{ alarm_at: string | null }>("SELECT alarm_at FROM $S.do_objects");
        if (rows[0]?.alarm_at === null) break;
        if (i > 200) throw new Error("the alarm never ran");
        await sleep(50);
      }
      expect(await onC.read()).toEqual({ n: 106, journal: ["add 2", "add 3", "add 1", "add 100"], kv: true });
    } finally {
      await c.close();
    }
  }, 60_000);
});
