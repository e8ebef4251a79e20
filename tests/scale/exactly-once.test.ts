/**
 * Scale-out: three worker processes share one PostgreSQL schema. 2,000 instances created by an
 * API-only process (`worker: false`) each run to completion exactly once, and every step callback
 * runs exactly once across the workers (recorded in side files, independently of Cairn).
 */
import { deserialize } from "node:v8";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene, storedSteps } from "./harness.ts";

const base = postgresUrl("the scale-out tests");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

describe.skipIf(!base)("scale-out: work shared by worker processes", () => {
  it("3 workers share 2,000 instances: each completes once, each step callback runs once", async () => {
    scene = new Scene(base!);
    // Leases long enough that a loaded machine never lets one lapse: this test is about sharing work,
    // not takeover (tests/scale/takeover.test.ts), and a lapsed lease legitimately re-runs a callback.
    const api = await scene.start("api", { worker: false, leaseMs: 15_000 });
    const workers = await Promise.all(["w1", "w2", "w3"].map((n) => scene!.start(n, { leaseMs: 15_000 })));
    const N = 2000;
    const items = Array.from({ length: N }, (_, i) => ({ id: `i${i}`, params: { n: i } }));
    await api.request({ cmd: "createMany", workflow: "three", items }, 60_000);
    const statuses = await scene.waitAllFinal(N, 90_000);
    expect(statuses).toEqual({ complete: N });

    // Outputs are right, and each instance completed exactly once.
    const rows = await scene.query<{ id: string; output: Buffer }>("SELECT id, output FROM $S.instances");
    const byWorker = new Map<string, number>();
    for (const r of rows) {
      const out = deserialize(r.output) as { result: number; by: string };
      const n = Number(r.id.slice(1));
      expect(out.result, r.id).toBe((n + 1) * 2 + 3);
      byWorker.set(out.by, (byWorker.get(out.by) ?? 0) + 1);
    }
    const completions = await scene.query<{ instance_id: string; n: string }>(
      "SELECT instance_id, COUNT(*) AS n FROM $S.history WHERE type = 'workflow_completed' GROUP BY instance_id",
    );
    expect(completions.length).toBe(N);
    for (const c of completions) expect(Number(c.n), c.instance_id).toBe(1);
    // The work was shared: every worker completed some instances, the API-only process none.
    expect([...byWorker.keys()].sort()).toEqual(["w1", "w2", "w3"]);
    console.log(`instances completed per worker: ${JSON.stringify(Object.fromEntries(byWorker))}`);

    // Each step callback ran exactly once, and its execution is the stored outcome.
    const calls = scene.calls();
    const starts = new Map<string, number>();
    for (const c of calls)
      if (c.phase === "start")
        starts.set(`${c.instance}/${c.step}`, (starts.get(`${c.instance}/${c.step}`) ?? 0) + 1);
    expect(starts.size).toBe(N * 3);
    const twice = [...starts].filter(([, n]) => n > 1).map(([k]) => k);
    if (twice.length > 0)
      console.log(
        `ran more than once: ${twice.length}`,
        calls.filter((c) => twice.slice(0, 3).includes(`${c.instance}/${c.step}`)),
      );
    for (const [key, n] of starts) expect(n, key).toBe(1);
    const ends = new Map(calls.filter((c) => c.phase === "end").map((c) => [c.nonce!, c]));
    const steps = await storedSteps(scene);
    expect(steps.size).toBe(N * 3);
    for (const [key, s] of steps) {
      expect(s.status, key).toBe("succeeded");
      const { nonce } = deserialize(s.result!) as { nonce: string };
      expect(`${ends.get(nonce)?.instance}/${ends.get(nonce)?.step}`, key).toBe(key);
    }
    for (const w of [api, ...workers]) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 120_000);
});
