/**
 * Scale-out wake-ups: events reach the right instance whichever worker holds it (in memory on another
 * worker, or parked in the store), timers wake instances whichever worker put them to sleep (even a
 * dead one), and a dropped LISTEN connection degrades to polling without losing a wake-up.
 */
import { deserialize } from "node:v8";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene, sleep } from "./harness.ts";

const base = postgresUrl("the scale-out tests");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 40_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

async function outputs(scene: Scene, prefix: string) {
  const rows = await scene.query<{ id: string; status: string; output: Buffer | null }>(
    "SELECT id, status, output FROM $S.instances WHERE id LIKE $1 ORDER BY id",
    [`${prefix}%`],
  );
  return rows.map((r) => ({ id: r.id, status: r.status, out: r.output && (deserialize(r.output) as any) }));
}

/** Instances of `prefix` that are waiting in memory on some worker (status waiting, owned). */
async function heldWaiting(scene: Scene, prefix: string): Promise<{ id: string; owner: string }[]> {
  return scene.query(
    "SELECT id, owner FROM $S.instances WHERE id LIKE $1 AND status = 'waiting' AND owner IS NOT NULL",
    [`${prefix}%`],
  );
}

const listeners = (scene: Scene) =>
  scene.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE query = $1 AND state = 'idle'", [
    `LISTEN "cairn_${scene.schema}"`,
  ]);

describe.skipIf(!base)("scale-out: events and timers across workers", () => {
  it("events wake the right instance, held in memory by another worker or parked in the store", async () => {
    await scene?.dispose();
    scene = new Scene(base!);
    const api = await scene.start("api", { worker: false });
    // A 10 s hot-wait threshold: waits with an 8 s timeout stay in memory, 1-hour ones are parked. A
    // worker holds at most 12 instances, so the 30 hot waiters are spread over the three.
    const workers = await Promise.all(
      ["w1", "w2", "w3"].map((n) => scene!.start(n, { hotWaitThreshold: 10_000, maxConcurrent: 12 })),
    );
    const hot = Array.from({ length: 30 }, (_, i) => ({ id: `hot${i}`, params: { timeout: "8 seconds" } }));
    const parked = Array.from({ length: 30 }, (_, i) => ({
      id: `park${i}`,
      params: { delayMs: (i % 4) * 50 },
    }));
    await api.request({ cmd: "createMany", workflow: "waiter", items: hot });
    await waitUntil(
      "every hot waiter is held in memory",
      async () => (await heldWaiting(scene!, "hot")).length === 30,
    );
    const holders = new Set((await heldWaiting(scene, "hot")).map((r) => r.owner.split("-")[0]));
    expect(holders.size, "hot waiters are spread over workers").toBe(3);
    // Parked ones get their event at once: while running step a on some worker, queued, or parked.
    await api.request({ cmd: "createMany", workflow: "waiter", items: parked });
    await Promise.all(
      [...hot, ...parked].map((x) =>
        api.request({
          cmd: "sendEvent",
          workflow: "waiter",
          instance: x.id,
          type: "go",
          payload: { for: x.id },
        }),
      ),
    );
    await scene.waitAllFinal(60, 30_000);
    for (const o of [...(await outputs(scene, "hot")), ...(await outputs(scene, "park"))]) {
      expect(o.status, o.id).toBe("complete");
      expect(o.out.got, o.id).toBe(o.id);
    }
    const timedOut = await scene.query("SELECT * FROM $S.history WHERE type = 'wait_timed_out'");
    expect(timedOut).toEqual([]);
    for (const w of [api, ...workers]) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 90_000);

  it("timers wake sleeping instances on any worker, including ones put to sleep by a worker that died", async () => {
    scene = new Scene(base!);
    const api = await scene.start("api", { worker: false });
    const w1 = await scene.start("w1", { hotWaitThreshold: 100 });
    const N = 30;
    const items = Array.from({ length: N }, (_, i) => ({
      id: `z${i}`,
      params: { sleepMs: 1000 + (i % 5) * 100 },
    }));
    await api.request({ cmd: "createMany", workflow: "sleeper", items });
    await waitUntil("w1 parked every sleeper", async () => {
      const rows = await scene!.query(
        "SELECT 1 FROM $S.instances WHERE status = 'waiting' AND owner IS NULL",
      );
      return rows.length === N;
    });
    await w1.kill(); // its in-process wake-up timer dies with it
    const others = await Promise.all(["w2", "w3"].map((n) => scene!.start(n, { hotWaitThreshold: 100 })));
    expect(await scene.waitAllFinal(N, 30_000)).toEqual({ complete: N });
    for (const o of await outputs(scene, "z")) {
      const due = o.out.asked + 1000 + (Number(o.id.slice(1)) % 5) * 100;
      expect(o.out.woke, o.id).toBeGreaterThanOrEqual(due);
      expect(["w2", "w3"]).toContain(o.out.by);
    }
    for (const w of others) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 90_000);

  it("a dropped LISTEN connection degrades to polling without losing wake-ups", async () => {
    scene = new Scene(base!);
    const api = await scene.start("api", { worker: false });
    const workers = await Promise.all(
      ["w1", "w2"].map((n) => scene!.start(n, { hotWaitThreshold: 10_000, pollMs: 200 })),
    );
    await waitUntil("both workers listen", async () => (await listeners(scene!)).length === 2);
    const hot = Array.from({ length: 20 }, (_, i) => ({ id: `hot${i}`, params: { timeout: "8 seconds" } }));
    await api.request({ cmd: "createMany", workflow: "waiter", items: hot });
    await waitUntil(
      "every hot waiter is held in memory",
      async () => (await heldWaiting(scene!, "hot")).length === 20,
    );

    // Kill both listening backends, then (before they reconnect) send the events and create more work.
    const killed = await listeners(scene);
    for (const { pid } of killed) await scene.query("SELECT pg_terminate_backend($1)", [pid]);
    await Promise.all(
      hot.map((x) =>
        api.request({
          cmd: "sendEvent",
          workflow: "waiter",
          instance: x.id,
          type: "go",
          payload: { for: x.id },
        }),
      ),
    );
    const fresh = Array.from({ length: 20 }, (_, i) => ({ id: `new${i}`, params: { n: i } }));
    await api.request({ cmd: "createMany", workflow: "three", items: fresh });

    await scene.waitAllFinal(40, 30_000);
    for (const o of await outputs(scene, "hot")) {
      expect(o.status, o.id).toBe("complete");
      expect(o.out.got, o.id).toBe(o.id);
    }
    for (const o of await outputs(scene, "new")) expect(o.status, o.id).toBe("complete");
    expect(await scene.query("SELECT * FROM $S.history WHERE type = 'wait_timed_out'")).toEqual([]);
    // Both noticed the loss, and listen again on new connections.
    for (const w of workers)
      expect(w.engineLogs.map((e) => e.message)).toContain(
        "Cairn lost its notification channel; polling until it reconnects",
      );
    await waitUntil("both workers listen again", async () => {
      const now = await listeners(scene!);
      return now.length === 2 && now.every((l) => !killed.some((k) => k.pid === l.pid));
    });
  }, 90_000);
});
