/**
 * Scale-out: a worker that dies (SIGKILL) or stalls past its lease (SIGSTOP … SIGCONT) in the middle of
 * step callbacks. Its instances are taken over by the other workers once the lease expires and
 * finish; no step whose outcome was committed runs again; the stalled worker's late writes are refused
 * (fencing), so the stored outcome is the taker's.
 */
import { deserialize } from "node:v8";
import { afterEach, describe, expect, it } from "vitest";
import { type CallRecord, postgresUrl, Scene, sleep, storedSteps } from "./harness.ts";

const base = postgresUrl("the scale-out tests");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

const LEASE = 1500;
const key = (c: { instance: string; step: string }) => `${c.instance}/${c.step}`;

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

/**
 * Every stored `do` outcome came from a recorded execution, it is the last execution of that step to
 * start (no committed step ran again), and each step's completion is in the history once.
 */
async function expectCommittedOnce(scene: Scene, calls: CallRecord[]) {
  const ends = new Map(calls.filter((c) => c.phase === "end").map((c) => [c.nonce!, c]));
  const starts = new Map<string, CallRecord[]>();
  for (const c of calls) if (c.phase === "start") starts.set(key(c), [...(starts.get(key(c)) ?? []), c]);
  const steps = await storedSteps(scene);
  for (const [k, s] of steps) {
    expect(s.status, k).toBe("succeeded");
    const { nonce } = deserialize(s.result!) as { nonce: string };
    const producer = ends.get(nonce);
    expect(producer && key(producer), k).toBe(k);
    const lastStart = Math.max(...starts.get(k)!.map((c) => c.at));
    // The producer started last (ties at ms resolution are the same execution's start).
    const producerStart = starts
      .get(k)!
      .find((c) => c.pid === producer!.pid && c.attempt === producer!.attempt)!;
    expect(producerStart.at, `${k}: an execution started after the committed one`).toBe(lastStart);
  }
  const completed = await scene.query<{ k: string; n: string }>(
    // A packed row (several entries of one step) holds its entries' types in its data.
    `SELECT h.instance_id || '/' || h.step_name AS k, COUNT(*) AS n FROM $S.history h
     LEFT JOIN LATERAL jsonb_array_elements(CASE WHEN h.span IS NOT NULL THEN h.data END) e ON true
     WHERE COALESCE(e->>0, h.type) = 'step_completed' GROUP BY 1`,
  );
  expect(completed.length).toBe(steps.size);
  for (const c of completed) expect(Number(c.n), c.k).toBe(1);
  return steps;
}

describe.skipIf(!base)("scale-out: a worker dies or stalls", () => {
  it("SIGKILL in the middle of step callbacks: its instances are taken over after lease expiry and finish", async () => {
    scene = new Scene(base!);
    const api = await scene.start("api", { worker: false });
    const w1 = await scene.start("w1", { leaseMs: LEASE });
    const N = 60;
    const items = Array.from({ length: N }, (_, i) => ({ id: `k${i}`, params: { n: i, delayMs: 300 } }));
    await api.request({ cmd: "createMany", workflow: "three", items });
    // w1 alone claims everything; once its callbacks are under way, it dies and the others start.
    await waitUntil("w1 is inside step callbacks", () =>
      scene!.calls().some((c) => c.worker === "w1" && c.step === "two" && c.phase === "start"),
    );
    await w1.kill();
    const killedAt = Date.now();
    const others = await Promise.all(["w2", "w3"].map((n) => scene!.start(n, { leaseMs: LEASE })));

    expect(await scene.waitAllFinal(N, 60_000)).toEqual({ complete: N });
    const calls = scene.calls();
    const interrupted = calls.filter(
      (s) =>
        s.worker === "w1" &&
        s.phase === "start" &&
        !calls.some((e) => e.phase === "end" && e.pid === s.pid && key(e) === key(s)),
    );
    expect(interrupted.length, "w1 was killed inside callbacks").toBeGreaterThan(0);
    const steps = await expectCommittedOnce(scene, calls);
    // Every interrupted step ran again on another worker, no earlier than the lease allowed.
    for (const s of interrupted) {
      const rerun = calls.filter((c) => c.phase === "start" && key(c) === key(s) && c.worker !== "w1");
      expect(rerun.length, key(s)).toBeGreaterThan(0);
      expect(Math.min(...rerun.map((c) => c.at))).toBeGreaterThanOrEqual(killedAt + (LEASE * 2) / 3 - 100);
      expect(steps.get(key(s))?.status).toBe("succeeded");
    }
    const rows = await scene.query<{ id: string; output: Buffer }>("SELECT id, output FROM $S.instances");
    for (const r of rows) {
      const out = deserialize(r.output) as { result: number; by: string };
      expect(out.result).toBe((Number(r.id.slice(1)) + 1) * 2 + 3);
    }
    for (const w of others) expect(w.engineLogs, w.config.name).toEqual([]);
  }, 60_000);

  it("a worker stalled past its lease (SIGSTOP/SIGCONT): taken over, and its late writes are refused", async () => {
    scene = new Scene(base!);
    const api = await scene.start("api", { worker: false });
    const w1 = await scene.start("w1", { leaseMs: LEASE });
    const N = 5;
    const items = Array.from({ length: N }, (_, i) => ({ id: `s${i}`, params: { n: i, delayMs: 800 } }));
    await api.request({ cmd: "createMany", workflow: "three", items });
    const inOne = () =>
      scene!.calls().filter((c) => c.worker === "w1" && c.step === "one" && c.phase === "start");
    await waitUntil("w1 runs every step one", () => inOne().length === N);
    w1.signal("SIGSTOP");
    const stoppedAt = Date.now();
    const w2 = await scene.start("w2", { leaseMs: LEASE });
    expect(await scene.waitAllFinal(N, 30_000)).toEqual({ complete: N });
    const before = await scene.query<{ id: string; output: Buffer; epoch: string }>(
      "SELECT id, output, epoch FROM $S.instances ORDER BY id",
    );
    // w1 wakes up: its callbacks of step one finish and it tries to commit them.
    w1.signal("SIGCONT");
    await waitUntil(
      "w1 finished its stalled callbacks",
      () =>
        scene!.calls().filter((c) => c.worker === "w1" && c.step === "one" && c.phase === "end").length === N,
    );
    await sleep(LEASE); // time for its commits, heartbeats and claim passes to land if they could
    const calls = scene.calls();
    const steps = await expectCommittedOnce(scene, calls);
    const w1Nonces = new Set(calls.filter((c) => c.worker === "w1" && c.phase === "end").map((c) => c.nonce));
    for (const [k, s] of steps) {
      const { nonce } = deserialize(s.result!) as { nonce: string };
      expect(w1Nonces.has(nonce), `${k} is w1's late write`).toBe(false);
    }
    // Taken over only after the lease ran out, and nothing changed once w1 woke up.
    const firstW2 = Math.min(...calls.filter((c) => c.worker === "w2").map((c) => c.at));
    expect(firstW2).toBeGreaterThanOrEqual(stoppedAt + (LEASE * 2) / 3 - 100);
    const after = await scene.query<{ id: string; output: Buffer; epoch: string }>(
      "SELECT id, output, epoch FROM $S.instances ORDER BY id",
    );
    expect(after).toEqual(before);
    for (const r of after) expect((deserialize(r.output) as { by: string }).by).toBe("w2");
    expect(calls.filter((c) => c.worker === "w1" && c.step !== "one")).toEqual([]);
    expect(await scene.statuses()).toEqual({ complete: N });
    expect(w2.engineLogs).toEqual([]);
  }, 60_000);
});
