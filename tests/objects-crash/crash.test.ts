/**
 * Crash safety of Durable Objects: a process is SIGKILLed right after answering; a new process on
 * the same directory finds every write that was answered, and alarms due meanwhile fire.
 */
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { cleanUp, tempDir as makeTempDir, startChild } from "../support/children.ts";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "child.ts");
const start = (dir: string) => startChild(CHILD, [dir]);
const tempDir = () => makeTempDir("cairn-objects-crash-");

afterEach(cleanUp);

describe("SIGKILL", () => {
  it("loses no write that was answered, on one object or many at once", async () => {
    const dir = tempDir();
    const first = await start(dir);
    // One object, sequential writes; the process dies right after the 25th answer.
    for (let n = 1; n <= 25; n++)
      expect(await (await fetch(`${first.base}/write?obj=seq&n=${n}`)).text()).toBe(`ok ${n}`);
    // Many objects at once: every answer that arrived before the kill must be durable.
    const answered: string[] = [];
    const inflight = Array.from({ length: 40 }, (_, i) =>
      fetch(`${first.base}/write?obj=o${i % 8}&n=${i}`)
        .then(async (r) => {
          if ((await r.text()) === `ok ${i}`) answered.push(`o${i % 8}/${i}`);
          if (answered.length === 20) first.proc.kill("SIGKILL");
        })
        .catch(() => {}),
    );
    await Promise.all(inflight);
    await first.kill();
    expect(answered.length).toBeGreaterThanOrEqual(20);

    const second = await start(dir);
    const read = async (obj: string) =>
      (await fetch(`${second.base}/read?obj=${obj}`)).json() as Promise<any>;
    const seq = await read("seq");
    expect(seq.rows).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(seq.keys.length).toBe(25);
    for (const a of answered) {
      const [obj, n] = a.split("/");
      const state = await read(obj!);
      expect(state.rows).toContain(Number(n));
      expect(state.keys).toContain(`k${n}`);
    }
  }, 60_000);

  it("alarms set before the kill fire after the restart, for objects not otherwise used", async () => {
    const dir = tempDir();
    const first = await start(dir);
    expect(await (await fetch(`${first.base}/alarm?obj=soon&in=400`)).text()).toBe("set");
    expect(await (await fetch(`${first.base}/alarm?obj=later&in=1500`)).text()).toBe("set");
    await first.kill();
    await new Promise((r) => setTimeout(r, 600));
    const second = await start(dir);
    expect((await second.next("alarm")).obj).toBe("soon");
    expect((await second.next("alarm")).obj).toBe("later");
    // An alarm is done once its outcome is recorded (a kill before that runs it again: at least once).
    const pending = () => {
      const db = new DatabaseSync(join(dir, "objects.db"), { readOnly: true });
      try {
        return Number(
          (db.prepare("SELECT count(*) AS n FROM do_objects WHERE alarm_at IS NOT NULL").get() as any).n,
        );
      } finally {
        db.close();
      }
    };
    for (let i = 0; i < 200 && pending() > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(pending()).toBe(0);
    await second.kill();
    const third = await start(dir);
    const state = (await (await fetch(`${third.base}/read?obj=soon`)).json()) as any;
    expect(state.alarmed).toBe(true);
    // Alarms that ran are not run again.
    await new Promise((r) => setTimeout(r, 300));
    expect(third.events.filter((e) => e.event === "alarm")).toEqual([]);
  }, 60_000);
});
