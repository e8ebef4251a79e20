/**
 * Scale-out: `maxConcurrent` is one limit for all the workers sharing a store. The number of running
 * instances, sampled every few milliseconds from a connection of the test's own, never exceeds it.
 */
import { deserialize } from "node:v8";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene } from "./harness.ts";

const base = postgresUrl("the scale-out tests");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

/**
 * Samples, every few milliseconds from a connection of the test's own, how many instances use a
 * concurrency slot (`running` or `waitingForPause`) until `stop()`, which returns the samples.
 */
function sampleRunning(scene: Scene): { stop(): Promise<number[]> } {
  let stopped = false;
  const samples: number[] = [];
  const done = (async () => {
    const client = await scene.db.connect();
    try {
      while (!stopped) {
        const r = await client.query(
          `SELECT COUNT(*) AS n FROM "${scene.schema}".instances WHERE status IN ('running', 'waitingForPause')`,
        );
        samples.push(Number(r.rows[0].n));
        await new Promise((res) => setTimeout(res, 3));
      }
    } finally {
      client.release();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      return samples;
    },
  };
}

describe.skipIf(!base)("scale-out: the concurrency limit", () => {
  it("is never exceeded across 3 workers (sampled)", async () => {
    scene = new Scene(base!);
    const LIMIT = 5;
    const api = await scene.start("api", { worker: false });
    const workers = await Promise.all(
      ["w1", "w2", "w3"].map((n) => scene!.start(n, { maxConcurrent: LIMIT, hotWaitThreshold: 1000 })),
    );
    const three = Array.from({ length: 60 }, (_, i) => ({ id: `c${i}`, params: { n: i, delayMs: 20 } }));
    const sampler = sampleRunning(scene);
    await api.request({ cmd: "createMany", workflow: "three", items: three });
    const statuses = await scene.waitAllFinal(60, 60_000);
    const samples = await sampler.stop();
    expect(statuses).toEqual({ complete: 60 });
    const max = Math.max(...samples);
    console.log(`${samples.length} samples of running instances, max ${max} (limit ${LIMIT})`);
    expect(samples.length).toBeGreaterThan(100);
    expect(max).toBeLessThanOrEqual(LIMIT);
    expect(max, "the limit was reached, so it was what held instances back").toBe(LIMIT);
    // Every worker ran some: the limit is shared, not given to one worker.
    const rows = await scene.query<{ output: Buffer }>("SELECT output FROM $S.instances");
    const by = new Set(rows.map((r) => (deserialize(r.output) as { by: string }).by));
    expect([...by].sort()).toEqual(["w1", "w2", "w3"]);
    for (const w of [api, ...workers]) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 60_000);

  it("holds when workers create instances themselves and start the ones they have room for", async () => {
    scene = new Scene(base!);
    const LIMIT = 4;
    const workers = await Promise.all(
      ["w1", "w2", "w3"].map((n) => scene!.start(n, { maxConcurrent: LIMIT, hotWaitThreshold: 1000 })),
    );
    const sampler = sampleRunning(scene);
    await Promise.all(
      workers.map((w, k) =>
        w.request({
          cmd: "createEach",
          workflow: "three",
          items: Array.from({ length: 15 }, (_, i) => ({
            id: `${w.config.name}-${i}`,
            params: { n: k, delayMs: 30 },
          })),
        }),
      ),
    );
    const statuses = await scene.waitAllFinal(45, 60_000);
    const samples = await sampler.stop();
    expect(statuses).toEqual({ complete: 45 });
    expect(Math.max(...samples)).toBeLessThanOrEqual(LIMIT);
    // Started at creation by the creating worker: the first claim is the insert (epoch 1), and the
    // creator ran it. Others waited for a slot and went to whichever worker claimed them.
    const rows = await scene.query<{ id: string; epoch: string; output: Buffer }>(
      "SELECT id, epoch, output FROM $S.instances",
    );
    const direct = rows.filter(
      (r) => Number(r.epoch) === 1 && r.id.startsWith(`${(deserialize(r.output) as { by: string }).by}-`),
    );
    expect(direct.length, "instances started by the worker that created them").toBeGreaterThan(0);
    expect(direct.length, "no more started at once than the limit allows").toBeLessThan(45);
    for (const w of workers) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 60_000);

  it("holds when a worker's sendEvent wakes parked waiters", async () => {
    scene = new Scene(base!);
    const LIMIT = 3;
    const api = await scene.start("api", { worker: false });
    const workers = await Promise.all(
      ["w1", "w2", "w3"].map((n) => scene!.start(n, { maxConcurrent: LIMIT, hotWaitThreshold: 100 })),
    );
    const waiters = Array.from({ length: 15 }, (_, i) => ({ id: `e${i}`, params: {} }));
    await api.request({ cmd: "createMany", workflow: "waiter", items: waiters });
    // Every waiter parked (evicted to the store, no owner) before the events come.
    for (let t = 0; ; t++) {
      const [r] = await scene.query<{ n: string }>(
        "SELECT COUNT(*) AS n FROM $S.instances WHERE status = 'waiting' AND owner IS NULL",
      );
      if (Number(r!.n) === 15) break;
      if (t > 3000) throw new Error("the waiters did not park");
      await new Promise((res) => setTimeout(res, 10));
    }
    const sampler = sampleRunning(scene);
    const three = Array.from({ length: 30 }, (_, i) => ({ id: `t${i}`, params: { n: i, delayMs: 30 } }));
    await api.request({ cmd: "createMany", workflow: "three", items: three });
    await Promise.all(
      waiters.map((w, i) =>
        workers[i % 3]!.request({
          cmd: "sendEvent",
          workflow: "waiter",
          instance: w.id,
          type: "go",
          payload: { for: w.id },
        }),
      ),
    );
    const statuses = await scene.waitAllFinal(45, 60_000);
    const samples = await sampler.stop();
    expect(statuses).toEqual({ complete: 45 });
    expect(Math.max(...samples)).toBeLessThanOrEqual(LIMIT);
    const rows = await scene.query<{ id: string; output: Buffer }>(
      "SELECT id, output FROM $S.instances WHERE id LIKE 'e%'",
    );
    for (const r of rows) expect((deserialize(r.output) as { got: string }).got).toBe(r.id);
    for (const w of [api, ...workers]) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 60_000);

  it("holds for instances waking from hot waits in memory: they take a slot or give theirs up", async () => {
    scene = new Scene(base!);
    const LIMIT = 5;
    const api = await scene.start("api", { worker: false });
    const workers = await Promise.all(
      ["w1", "w2", "w3"].map((n) => scene!.start(n, { maxConcurrent: LIMIT, hotWaitThreshold: 1000 })),
    );
    const sampler = sampleRunning(scene);
    // Sleepers wake in memory (150 ms is below the hot-wait threshold) while others keep the slots busy.
    const sleepers = Array.from({ length: 20 }, (_, i) => ({ id: `s${i}`, params: { sleepMs: 150 } }));
    const three = Array.from({ length: 40 }, (_, i) => ({ id: `t${i}`, params: { n: i, delayMs: 20 } }));
    await api.request({ cmd: "createMany", workflow: "sleeper", items: sleepers });
    await api.request({ cmd: "createMany", workflow: "three", items: three });
    const statuses = await scene.waitAllFinal(60, 60_000);
    const samples = await sampler.stop();
    expect(statuses).toEqual({ complete: 60 });
    const max = Math.max(...samples);
    console.log(`${samples.length} samples with hot sleepers, max ${max} (limit ${LIMIT})`);
    expect(samples.length).toBeGreaterThan(50);
    expect(max).toBeLessThanOrEqual(LIMIT);
    // Each sleeper slept at least its 150 ms, whether it woke in memory or was claimed again.
    const rows = await scene.query<{ id: string; output: Buffer }>(
      "SELECT id, output FROM $S.instances WHERE id LIKE 's%'",
    );
    for (const r of rows) {
      const out = deserialize(r.output) as { asked: number; woke: number };
      expect(out.woke - out.asked, r.id).toBeGreaterThanOrEqual(150);
    }
    for (const w of [api, ...workers]) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 60_000);
});
