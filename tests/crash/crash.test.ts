/**
 * Crash safety: opening the same store after the process died resumes every unfinished instance.
 *
 * Each test runs workflows in a child process (`worker.ts`), SIGKILLs it at a chosen point (found by
 * the JSON lines it prints), reads what is durable in the SQLite file, then opens the same store in a
 * new process and checks that every instance finishes with the right output, that no step whose
 * outcome was stored runs its callback again or changes its result, and that nothing is lost.
 */
import { deserialize } from "node:v8";
import { afterEach, describe, expect, it } from "vitest";
import {
  type CallRecord,
  calls,
  cleanUp,
  type Snapshot,
  snapshot,
  starts,
  stepId,
  tempDir,
  Worker,
} from "./harness.ts";

afterEach(cleanUp);

const linearOutput = (n: number) => (n + 1) * 2 + 3;

/** Each stored step outcome appears once in the history: outcomes are recorded exactly once. */
function expectOutcomesOnce(snap: Snapshot): void {
  const seen = new Map<string, number>();
  for (const h of snap.history)
    if (
      h.step &&
      ["step_completed", "step_errored", "sleep_completed", "wait_completed", "wait_timed_out"].includes(
        h.type,
      )
    )
      seen.set(`${h.type} ${h.step}`, (seen.get(`${h.type} ${h.step}`) ?? 0) + 1);
  for (const [key, n] of seen) expect(n, key).toBe(1);
  for (const s of snap.steps.values())
    if (s.kind === "do" && s.status === "succeeded")
      expect(seen.get(`step_completed ${stepId(s.instance, s.kind, s.name, s.count)}`)).toBe(1);
}

/** The nonce a stored `do` result carries (each callback execution makes a fresh one). */
function storedNonce(snap: Snapshot, instance: string, step: string): string {
  const s = snap.steps.get(stepId(instance, "do", step));
  expect(s?.status, `${instance}/${step}`).toBe("succeeded");
  return (deserialize(s!.result!) as { nonce: string }).nonce;
}

/** The stored result came from a callback execution that finished in generation `gen`. */
function expectResultFrom(
  records: CallRecord[],
  snap: Snapshot,
  instance: string,
  step: string,
  gen: number,
): void {
  const nonce = storedNonce(snap, instance, step);
  const producer = records.find((r) => r.phase === "end" && r.nonce === nonce);
  expect(producer, `a callback of ${instance}/${step} produced the stored result`).toMatchObject({
    instance,
    step,
    gen,
  });
}

describe("crash safety", () => {
  it("a step killed inside its callback runs again after restart (at least once) and the instance completes", async () => {
    const dir = tempDir();
    const w1 = await Worker.start({ dir, gen: 1, block: ["b"] });
    await w1.request({ cmd: "create", workflow: "linear", instance: "i1", params: { n: 5 } });
    await w1.waitFor((e) => e.event === "callback-blocked" && e.instance === "i1" && e.step === "b");
    await w1.kill();

    const before = snapshot(dir);
    expect(before.instances.get("i1")?.status).toBe("running");
    expect(before.steps.get(stepId("i1", "do", "a"))?.status).toBe("succeeded");
    expect(before.steps.has(stepId("i1", "do", "b"))).toBe(false);

    const w2 = await Worker.start({ dir, gen: 2 });
    const { results } = await w2.request({ cmd: "waitFinal", workflow: "linear", ids: ["i1"] });
    expect(results.i1).toMatchObject({ status: "complete", output: { result: linearOutput(5) } });

    const after = snapshot(dir);
    const records = calls(dir);
    expect(starts(records, "i1", "a")).toEqual([1]);
    expect(starts(records, "i1", "b")).toEqual([1, 2]);
    expect(starts(records, "i1", "c")).toEqual([2]);
    expect(after.steps.get(stepId("i1", "do", "a"))!.result).toEqual(
      before.steps.get(stepId("i1", "do", "a"))!.result,
    );
    expectResultFrom(records, after, "i1", "a", 1);
    expectResultFrom(records, after, "i1", "b", 2);
    expect(results.i1.output.nonces).toEqual(["a", "b", "c"].map((s) => storedNonce(after, "i1", s)));
    expectOutcomesOnce(after);
  });

  it("a step killed right after its outcome is durable never runs again and keeps its stored result", async () => {
    const dir = tempDir();
    const w1 = await Worker.start({ dir, gen: 1, freezeOnCommit: { instance: "i2", step: "b" } });
    w1.send({ cmd: "create", workflow: "linear", instance: "i2", params: { n: 7 } });
    const committed = await w1.waitFor((e) => e.event === "step-committed" && e.instance === "i2");
    await w1.kill();

    const before = snapshot(dir);
    const b = before.steps.get(stepId("i2", "do", "b"))!;
    expect(b.status).toBe("succeeded");
    expect(b.result!.toString("base64")).toBe(committed.result);
    expect(
      before.history.filter((h) => h.type === "step_completed" && h.step === stepId("i2", "do", "b")),
    ).toHaveLength(1);
    // Killed before anything after the commit ran.
    expect(before.steps.has(stepId("i2", "do", "c"))).toBe(false);
    expect(starts(calls(dir), "i2", "c")).toEqual([]);

    const w2 = await Worker.start({ dir, gen: 2 });
    const { results } = await w2.request({ cmd: "waitFinal", workflow: "linear", ids: ["i2"] });
    expect(results.i2).toMatchObject({ status: "complete", output: { result: linearOutput(7) } });

    const after = snapshot(dir);
    const records = calls(dir);
    expect(starts(records, "i2", "a")).toEqual([1]);
    expect(starts(records, "i2", "b")).toEqual([1]);
    expect(starts(records, "i2", "c")).toEqual([2]);
    expect(after.steps.get(stepId("i2", "do", "b"))!.result).toEqual(b.result);
    expect(results.i2.output.nonces[1]).toBe(storedNonce(before, "i2", "b"));
    expectResultFrom(records, after, "i2", "b", 1);
    expectOutcomesOnce(after);
  });

  it("a sleep interrupted by a crash ends at its original wake time", async () => {
    const dir = tempDir();
    const w1 = await Worker.start({ dir, gen: 1, hotWaitThreshold: 100 });
    await w1.request({ cmd: "create", workflow: "sleeper", instance: "i3", params: { n: 1, sleep: 3000 } });
    // Evicted: the sleep is stored and the instance left to the store with its wake-up time.
    await w1.waitFor(
      (e) => e.event === "status" && e.instance === "i3" && e.status === "waiting" && e.readyAt !== null,
    );
    await w1.kill();

    const before = snapshot(dir);
    const nap = before.steps.get(stepId("i3", "sleep", "nap"))!;
    expect(nap.status).toBe("sleeping");
    const wakeAt = nap.wakeAt!;
    expect(before.instances.get("i3")).toMatchObject({ status: "waiting", readyAt: wakeAt });

    // Stay down for most of the sleep: a sleep restarted from zero would end ≥ 2 s late.
    await new Promise((r) => setTimeout(r, Math.max(0, wakeAt - 1000 - Date.now())));
    const restartedAt = Date.now();
    const w2 = await Worker.start({ dir, gen: 2, hotWaitThreshold: 100 });
    const { results } = await w2.request({ cmd: "waitFinal", workflow: "sleeper", ids: ["i3"] });
    expect(results.i3).toMatchObject({ status: "complete", output: { result: 4 } });

    const after = snapshot(dir);
    const napHistory = after.history.filter((h) => h.step === stepId("i3", "sleep", "nap"));
    expect(napHistory.map((h) => h.type)).toEqual(["sleep_started", "sleep_completed"]);
    expect(napHistory[0]!.data).toMatchObject({ wakeAt });
    const completedAt = napHistory[1]!.timestamp;
    expect(completedAt).toBeGreaterThanOrEqual(wakeAt);
    expect(completedAt).toBeLessThan(restartedAt + 3000 - 500);
    const bStarted = after.steps.get(stepId("i3", "do", "b"))!.startedAt;
    expect(bStarted).toBeGreaterThanOrEqual(wakeAt);
    const records = calls(dir);
    expect(starts(records, "i3", "a")).toEqual([1]);
    expect(starts(records, "i3", "b")).toEqual([2]);
    expectOutcomesOnce(after);
  });

  // KNOWN ENGINE BUG (remove `.fails` once fixed): a hot wait (a sleep or retry delay at or below
  // hotWaitThreshold) stores the instance as `waiting` while it keeps its owner and lease and has no
  // `ready_at`. After a crash, `claim` takes over only `running`/`waitingForPause` instances with an
  // expired lease, and a `waiting` one only with a `ready_at`: the instance is never resumed.
  // Fix: add 'waiting' to the takeover branch of `claim` in packages/store-sqlite/src/sql.ts.
  it("an instance killed during a hot sleep (below hotWaitThreshold) resumes and completes", async () => {
    const dir = tempDir();
    const w1 = await Worker.start({ dir, gen: 1, hotWaitThreshold: 5000 });
    await w1.request({ cmd: "create", workflow: "sleeper", instance: "h1", params: { n: 1, sleep: 1000 } });
    await w1.waitFor((e) => e.event === "status" && e.instance === "h1" && e.status === "waiting");
    await w1.kill();
    expect(snapshot(dir).instances.get("h1")).toMatchObject({ status: "waiting", readyAt: null });

    const w2 = await Worker.start({ dir, gen: 2, hotWaitThreshold: 5000 });
    const { results } = await w2.request({
      cmd: "waitFinal",
      workflow: "sleeper",
      ids: ["h1"],
      timeoutMs: 2500,
    });
    expect(results.h1).toMatchObject({ status: "complete", output: { result: 4 } });
    expect(starts(calls(dir), "h1", "a")).toEqual([1]);
  });

  describe("pause", () => {
    it("an instance killed while waitingForPause is paused after restart, and resume completes it", async () => {
      const dir = tempDir();
      const w1 = await Worker.start({ dir, gen: 1, block: ["b"] });
      await w1.request({ cmd: "create", workflow: "linear", instance: "p1", params: { n: 3 } });
      await w1.waitFor((e) => e.event === "callback-blocked" && e.instance === "p1" && e.step === "b");
      expect(await w1.request({ cmd: "pause", workflow: "linear", instance: "p1" })).toMatchObject({
        status: "waitingForPause",
      });
      await w1.kill();
      expect(snapshot(dir).instances.get("p1")?.status).toBe("waitingForPause");

      const w2 = await Worker.start({ dir, gen: 2 });
      // The new process takes the instance over and completes the pause: nothing new starts.
      await w2.waitFor((e) => e.event === "status" && e.instance === "p1" && e.status === "paused");
      await w2.request({ cmd: "idle" });
      expect(await w2.request({ cmd: "status", workflow: "linear", instance: "p1" })).toMatchObject({
        status: "paused",
      });
      expect(starts(calls(dir), "p1", "b")).toEqual([1]);

      await w2.request({ cmd: "resume", workflow: "linear", instance: "p1" });
      const { results } = await w2.request({ cmd: "waitFinal", workflow: "linear", ids: ["p1"] });
      expect(results.p1).toMatchObject({ status: "complete", output: { result: linearOutput(3) } });
      const records = calls(dir);
      expect(starts(records, "p1", "a")).toEqual([1]);
      expect(starts(records, "p1", "b")).toEqual([1, 2]);
      expect(starts(records, "p1", "c")).toEqual([2]);
      expectOutcomesOnce(snapshot(dir));
    });

    it("an instance killed while paused stays paused after restart, and resume completes it", async () => {
      const dir = tempDir();
      const w1 = await Worker.start({ dir, gen: 1, block: ["b"] });
      await w1.request({ cmd: "create", workflow: "linear", instance: "p2", params: { n: 4 } });
      await w1.waitFor((e) => e.event === "callback-blocked" && e.instance === "p2" && e.step === "b");
      const from = w1.events.length;
      expect(await w1.request({ cmd: "pause", workflow: "linear", instance: "p2" })).toMatchObject({
        status: "waitingForPause",
      });
      // The running callback finishes and is stored; then the instance is paused.
      await w1.request({ cmd: "release", instance: "p2", step: "b" });
      await w1.waitFor((e) => e.event === "status" && e.instance === "p2" && e.status === "paused", { from });
      await w1.kill();
      const before = snapshot(dir);
      expect(before.instances.get("p2")?.status).toBe("paused");
      expect(before.steps.get(stepId("p2", "do", "b"))?.status).toBe("succeeded");

      const w2 = await Worker.start({ dir, gen: 2 });
      await w2.request({ cmd: "idle" });
      expect(await w2.request({ cmd: "status", workflow: "linear", instance: "p2" })).toMatchObject({
        status: "paused",
      });
      expect(calls(dir).filter((r) => r.gen === 2)).toEqual([]);

      await w2.request({ cmd: "resume", workflow: "linear", instance: "p2" });
      const { results } = await w2.request({ cmd: "waitFinal", workflow: "linear", ids: ["p2"] });
      expect(results.p2).toMatchObject({ status: "complete", output: { result: linearOutput(4) } });
      const after = snapshot(dir);
      const records = calls(dir);
      expect(starts(records, "p2", "a")).toEqual([1]);
      expect(starts(records, "p2", "b")).toEqual([1]);
      expect(starts(records, "p2", "c")).toEqual([2]);
      expect(after.steps.get(stepId("p2", "do", "b"))!.result).toEqual(
        before.steps.get(stepId("p2", "do", "b"))!.result,
      );
      expectOutcomesOnce(after);
    });
  });

  describe("waiting for an event", () => {
    it("an instance killed while waiting gets the event sent after restart", async () => {
      const dir = tempDir();
      const w1 = await Worker.start({ dir, gen: 1 });
      await w1.request({ cmd: "create", workflow: "waiter", instance: "i4", params: { n: 2 } });
      await w1.waitFor(
        (e) => e.event === "status" && e.instance === "i4" && e.status === "waiting" && e.owner === null,
      );
      await w1.kill();
      expect(snapshot(dir).steps.get(stepId("i4", "waitForEvent", "approval"))?.status).toBe("waiting");

      const w2 = await Worker.start({ dir, gen: 2 });
      await w2.request({ cmd: "idle" });
      expect(await w2.request({ cmd: "status", workflow: "waiter", instance: "i4" })).toMatchObject({
        status: "waiting",
      });
      await w2.request({
        cmd: "sendEvent",
        workflow: "waiter",
        instance: "i4",
        type: "approve",
        payload: { by: "ana" },
      });
      const { results } = await w2.request({ cmd: "waitFinal", workflow: "waiter", ids: ["i4"] });
      expect(results.i4).toMatchObject({
        status: "complete",
        output: { result: "ana:3", payload: { by: "ana" } },
      });

      const records = calls(dir);
      expect(starts(records, "i4", "a")).toEqual([1]);
      expect(starts(records, "i4", "b")).toEqual([2]);
      expectOutcomesOnce(snapshot(dir));
    });

    it("an event sent while waiting, just before the crash, is not lost", async () => {
      const dir = tempDir();
      const w1 = await Worker.start({ dir, gen: 1 });
      await w1.request({ cmd: "create", workflow: "waiter", instance: "i5", params: { n: 4 } });
      await w1.waitFor(
        (e) => e.event === "status" && e.instance === "i5" && e.status === "waiting" && e.owner === null,
      );
      // The worker freezes as soon as sendEvent has resolved: the instance never sees the event.
      await w1.request({
        cmd: "sendEvent",
        workflow: "waiter",
        instance: "i5",
        type: "approve",
        payload: { by: "bo" },
        freeze: true,
      });
      await w1.kill();
      const before = snapshot(dir);
      expect(before.events).toEqual([{ instance: "i5", type: "approve", consumedBy: null }]);
      expect(before.steps.get(stepId("i5", "waitForEvent", "approval"))?.status).toBe("waiting");

      const w2 = await Worker.start({ dir, gen: 2 });
      const { results } = await w2.request({ cmd: "waitFinal", workflow: "waiter", ids: ["i5"] });
      expect(results.i5).toMatchObject({
        status: "complete",
        output: { result: "bo:5", payload: { by: "bo" } },
      });
      const after = snapshot(dir);
      expect(after.events).toEqual([
        { instance: "i5", type: "approve", consumedBy: "waitForEvent:1:approval" },
      ]);
      expect(starts(calls(dir), "i5", "a")).toEqual([1]);
      expectOutcomesOnce(after);
    });

    it("an event sent before the wait is reached, then a crash inside an earlier step, is not lost", async () => {
      const dir = tempDir();
      const w1 = await Worker.start({ dir, gen: 1, block: ["a"] });
      await w1.request({ cmd: "create", workflow: "waiter", instance: "i6", params: { n: 9 } });
      await w1.waitFor((e) => e.event === "callback-blocked" && e.instance === "i6");
      await w1.request({
        cmd: "sendEvent",
        workflow: "waiter",
        instance: "i6",
        type: "approve",
        payload: { by: "cy" },
      });
      await w1.kill();
      expect(snapshot(dir).events).toEqual([{ instance: "i6", type: "approve", consumedBy: null }]);

      const w2 = await Worker.start({ dir, gen: 2 });
      const { results } = await w2.request({ cmd: "waitFinal", workflow: "waiter", ids: ["i6"] });
      expect(results.i6).toMatchObject({
        status: "complete",
        output: { result: "cy:10", payload: { by: "cy" } },
      });
      expect(starts(calls(dir), "i6", "a")).toEqual([1, 2]);
      expectOutcomesOnce(snapshot(dir));
    });
  });
  it("many instances in flight, killed twice at random moments, all complete exactly once", async () => {
    const N = 200;
    const ids = Array.from({ length: N }, (_, n) => `f${n}`);
    const randomInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
    // At least 1,040 callbacks finish in a run without crashes (5 steps, plus a retry for every fifth).
    // CAIRN_CRASH_KILL_AFTER="k1,k2" replays a reported run.
    const killAfter = process.env.CAIRN_CRASH_KILL_AFTER?.split(",").map(Number) ?? [
      randomInt(1, 1000),
      randomInt(1, 500),
    ];
    console.log(`fan-out crash test: SIGKILL after ${killAfter.join(", then ")} finished callbacks`);
    const dir = tempDir();
    const durable: Snapshot[] = [];

    for (const [i, k] of killAfter.entries()) {
      const w = await Worker.start({ dir, gen: i + 1 });
      // Killed only once the creation is acknowledged (durable); instances start running meanwhile.
      if (i === 0)
        await w.request({
          cmd: "createMany",
          workflow: "fanout",
          items: ids.map((id, n) => ({ id, params: { n } })),
        });
      w.send({ cmd: "waitFinal", workflow: "fanout", ids, tag: "all" });
      let finished = 0;
      await w.waitFor((e) => (e.event === "callback-finished" && ++finished === k) || e.tag === "all", {
        timeoutMs: 20_000,
      });
      await w.kill();
      durable.push(snapshot(dir));
    }
    expect(durable[0]!.instances.size).toBe(N);

    const last = await Worker.start({ dir, gen: killAfter.length + 1 });
    const { results } = await last.request(
      { cmd: "waitFinal", workflow: "fanout", ids, timeoutMs: 15_000 },
      20_000,
    );
    const final = snapshot(dir);
    const records = calls(dir);
    const problems: string[] = [];
    const startGens = new Map<string, number[]>();
    const producedNonces = new Set<string>();
    for (const r of records) {
      if (r.phase === "start")
        startGens.set(`${r.instance}/${r.step}`, [
          ...(startGens.get(`${r.instance}/${r.step}`) ?? []),
          r.gen,
        ]);
      else producedNonces.add(r.nonce!);
    }
    for (const [n, id] of ids.entries()) {
      const { status, output } = results[id];
      if (status !== "complete" || output.sum !== 6 * n || output.flaky !== n + 1000)
        problems.push(
          `${id} ended ${JSON.stringify(results[id])} (before: ${durable.map((d) => d.instances.get(id)?.status).join(", ")})`,
        );
      else {
        const stored = ["x1", "x2", "x3", "sum", "flaky"].map((s) => storedNonce(final, id, s));
        if (JSON.stringify(output.nonces) !== JSON.stringify(stored))
          problems.push(`${id}: output nonces differ from stored results`);
      }
    }
    // A step whose outcome was durable at a kill never ran its callback again, and kept its result.
    for (const [i, snap] of durable.entries())
      for (const [key, s] of snap.steps) {
        if (s.status !== "succeeded") continue;
        if (!final.steps.get(key)?.result?.equals(s.result!))
          problems.push(`${key}: stored result changed after kill ${i + 1}`);
        if (s.kind === "do" && startGens.get(`${s.instance}/${s.name}`)!.some((g) => g > i + 1))
          problems.push(`${key} ran again after it was stored (kill ${i + 1})`);
      }
    // Every stored result came from a real callback execution.
    for (const s of final.steps.values())
      if (
        s.kind === "do" &&
        s.status === "succeeded" &&
        !producedNonces.has(storedNonce(final, s.instance, s.name))
      )
        problems.push(`${s.instance}/${s.name}: stored result no callback produced`);
    expect(problems).toEqual([]);
    expectOutcomesOnce(final);
  }, 60_000);
});
