import { afterEach, describe, expect, it } from "vitest";
import { type PyServer, startPyServer, until } from "./support.ts";

/**
 * Worker protocol v1 (SPEC §11.3) from a scripted fake worker: real HTTP against a real server and
 * SQLite file, no Python needed.
 */
let s: PyServer | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(`${s!.url}/api/v1${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function register(workflows = [{ name: "hello", class_name: "Hello" }], protocol = 1) {
  const r = await call("POST", "/workers", {
    language: "python",
    sdk: "cairn-py/1",
    protocol,
    workflows,
    concurrency: 4,
  });
  expect(r.status).toBe(201);
  return r.body.result.worker_id as string;
}

async function pollOne(wid: string) {
  for (;;) {
    const r = await call("POST", `/workers/${wid}/poll`, { free: 1 });
    expect(r.status).toBe(200);
    if (r.body.result.tasks.length > 0) return r.body.result.tasks[0];
  }
}

function taskClient(wid: string, task: any) {
  let seq = 0;
  return {
    send: (op: string, fields: Record<string, unknown> = {}, at = { seq: ++seq, epoch: task.epoch }) =>
      call("POST", `/workers/${wid}/tasks/${task.task_id}`, { ...at, op, ...fields }),
    get seq() {
      return seq;
    },
  };
}

const status = async (id: string) => (await s!.cairn.runtime.status("hello", id)) as any;

describe("worker protocol v1", () => {
  it("registers, hands a task, runs steps by command and finishes", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register();
    await s.cairn.runtime.create("hello", { id: "i1", params: { who: "py" } });
    const task = await pollOne(wid);
    expect(task).toMatchObject({
      kind: "run",
      workflow: "hello",
      class_name: "Hello",
      instance: { id: "i1", params: { who: "py" } },
      event: { payload: { who: "py" }, instanceId: "i1", workflowName: "hello" },
      steps: [],
    });
    const t = taskClient(wid, task);
    const started = await t.send("step", { name: "greet", count: 1, config: {} });
    expect(started.body.result.reply.run).toMatchObject({ attempt: 1, config: { retries: { limit: 5 } } });
    const done = await t.send("attempt", {
      name: "greet",
      count: 1,
      attempt: 1,
      ok: true,
      value: "hi py",
      cpu_ms: 12.5,
    });
    expect(done.body.result.reply).toEqual({ value: "hi py" });
    expect((await t.send("log", { level: "info", message: "hello from python" })).status).toBe(200);
    expect((await t.send("finish", { ok: true, output: { said: "hi py" } })).body.result.reply).toEqual({
      ok: true,
    });
    const st = await until(async () =>
      (await status("i1")).status === "complete" ? status("i1") : undefined,
    );
    expect(st.output).toEqual({ said: "hi py" });
    expect(s.logs).toEqual([expect.objectContaining({ instanceId: "i1", message: "hello from python" })]);
    const steps = await s.cairn.store.steps.list("hello", "i1");
    expect(steps.map((r) => [r.name, r.status, r.attempts])).toEqual([["greet", "succeeded", 1]]);
    // The worker's own CPU time of the attempt is stored, not the server's while it waited (SPEC §12.2).
    const history = await s.cairn.store.history.list("hello", "i1");
    const end = history.find((e) => e.type === "attempt_completed");
    expect(end?.data).toMatchObject({ attempt: 1, cpuTimeMs: 12.5 });
  });

  it("refuses a stale epoch with 409 and writes nothing; a repeated seq gets the first reply", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register();
    await s.cairn.runtime.create("hello", { id: "i2" });
    const task = await pollOne(wid);
    const t = taskClient(wid, task);
    const stale = await t.send("step", { name: "a", count: 1 }, { seq: 1, epoch: task.epoch - 1 });
    expect(stale.status).toBe(409);
    expect(stale.body.errors[0].code).toBe("lease.lost");
    expect(await s.cairn.store.steps.list("hello", "i2")).toEqual([]);
    const unknownTask = await call("POST", `/workers/${wid}/tasks/t-nope`, {
      seq: 1,
      epoch: 0,
      op: "log",
      level: "info",
      message: "x",
    });
    expect(unknownTask.status).toBe(409);

    const first = await t.send("step", { name: "a", count: 1 }, { seq: 1, epoch: task.epoch });
    const again = await t.send("step", { name: "a", count: 1 }, { seq: 1, epoch: task.epoch });
    expect(again.body.result).toEqual(first.body.result);
    const v1 = await t.send(
      "attempt",
      { name: "a", count: 1, attempt: 1, ok: true, value: 1 },
      { seq: 2, epoch: task.epoch },
    );
    const v2 = await t.send(
      "attempt",
      { name: "a", count: 1, attempt: 1, ok: true, value: 99 },
      { seq: 2, epoch: task.epoch },
    );
    expect(v2.body.result).toEqual({ seq: 2, reply: { value: 1 } });
    expect(v1.body.result).toEqual(v2.body.result);
    const steps = await s.cairn.store.steps.list("hello", "i2");
    expect(steps.map((r) => [r.name, r.attempts])).toEqual([["a", 1]]);
    const hist = await s.cairn.store.history.list("hello", "i2");
    expect(hist.filter((e) => e.type === "attempt_completed").length).toBe(1);

    const badBody = await call("POST", `/workers/${wid}/tasks/${task.task_id}`, {
      seq: 3,
      epoch: task.epoch,
      op: "jump",
    });
    expect(badBody.status).toBe(400);
    const unknownWorker = await call("POST", "/workers/w-nope/poll", { free: 1 });
    expect(unknownWorker.status).toBe(404);
    expect(unknownWorker.body.errors[0].code).toBe("worker.not_found");
  });

  it("retries by the engine's decision, then fails for good on a NonRetryableError", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register();
    await s.cairn.runtime.create("hello", { id: "i3" });
    const t = taskClient(wid, await pollOne(wid));
    const config = { retries: { limit: 3, delay: 10, backoff: "constant" } };
    expect((await t.send("step", { name: "flaky", count: 1, config })).body.result.reply.run.attempt).toBe(1);
    const r1 = await t.send("attempt", {
      name: "flaky",
      count: 1,
      attempt: 1,
      ok: false,
      error: { name: "ValueError", message: "no" },
    });
    expect(r1.body.result.reply.retry.attempt).toBe(2);
    const r2 = await t.send("attempt", {
      name: "flaky",
      count: 1,
      attempt: 2,
      ok: false,
      error: { name: "NonRetryableError", message: "stop", non_retryable: true },
    });
    expect(r2.body.result.reply.error).toEqual({ name: "NonRetryableError", message: "stop" });
    const rows = await s.cairn.store.steps.list("hello", "i3");
    expect(rows.map((r) => [r.status, r.attempts, r.error?.name])).toEqual([
      ["failed", 2, "NonRetryableError"],
    ]);
    await t.send("finish", { ok: false, error: { name: "NonRetryableError", message: "stop" } });
    await until(async () => (await status("i3")).status === "errored");
  });

  it("a sleep and an event wait: buffered event delivered, short sleep answered done", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register();
    await s.cairn.runtime.create("hello", { id: "i4" });
    await s.cairn.runtime.sendEvent("hello", "i4", { type: "go", payload: { n: 1 } });
    const t = taskClient(wid, await pollOne(wid));
    expect((await t.send("sleep", { name: "nap", count: 1, duration: 20 })).body.result.reply).toEqual({
      done: true,
    });
    const w = await t.send("wait", { name: "w", count: 1, type: "go", timeout: "1 hour" });
    expect(w.body.result.reply.event).toMatchObject({ payload: { n: 1 }, type: "go" });
    expect(typeof w.body.result.reply.event.timestamp).toBe("number");
  });

  it("a long sleep suspends the task; the replay is a new task with the stored outcomes", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register();
    await s.cairn.runtime.create("hello", { id: "i5" });
    const task = await pollOne(wid);
    const t = taskClient(wid, task);
    await t.send("step", { name: "a", count: 1 });
    await t.send("attempt", { name: "a", count: 1, attempt: 1, ok: true, value: { x: 1 } });
    expect(
      (await t.send("wait", { name: "w", count: 1, type: "go", timeout: "1 hour" })).body.result.reply,
    ).toEqual({
      suspend: "event",
    });
    expect((await t.send("heartbeat", { running: [] })).status).toBe(409);
    await until(async () => (await status("i5")).status === "waiting");
    await s.cairn.runtime.sendEvent("hello", "i5", { type: "go", payload: 7 });
    const replay = await pollOne(wid);
    expect(replay.task_id).not.toBe(task.task_id);
    expect(replay.steps).toEqual([{ kind: "do", name: "a", count: 1, outcome: "ok", value: { x: 1 } }]);
    const r = taskClient(wid, replay);
    const ev = await r.send("wait", { name: "w", count: 1, type: "go", timeout: "1 hour" });
    expect(ev.body.result.reply.event.payload).toBe(7);
    // A second occurrence of "a" after the stored first one: the engine counts it 2.
    expect((await r.send("step", { name: "a", count: 2 })).body.result.reply.run.attempt).toBe(1);
    await r.send("attempt", { name: "a", count: 2, attempt: 1, ok: true, value: 2 });
    await r.send("finish", { ok: true, output: "done" });
    await until(async () => (await status("i5")).status === "complete");
    const rows = await s.cairn.store.steps.list("hello", "i5");
    expect(rows.map((x) => `${x.kind}:${x.name}:${x.count}`).sort()).toEqual([
      "do:a:1",
      "do:a:2",
      "waitForEvent:w:1",
    ]);
  });

  it("a worker that vanishes mid-attempt: the attempt fails, another worker retries it", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }], leaseMs: 300 });
    const w1 = await register();
    await s.cairn.runtime.create("hello", { id: "i6" });
    const t1 = taskClient(w1, await pollOne(w1));
    const config = { retries: { limit: 2, delay: 10, backoff: "constant" } };
    expect((await t1.send("step", { name: "long", count: 1, config })).body.result.reply.run.attempt).toBe(1);
    // w1 goes silent. A second worker gets the task again.
    const w2 = await register();
    const task2 = await pollOne(w2);
    const t2 = taskClient(w2, task2);
    const again = await t2.send("step", { name: "long", count: 1, config });
    expect(again.body.result.reply.run.attempt).toBe(2);
    // The vanished worker's late report is refused and changes nothing.
    const late = await t1.send("attempt", { name: "long", count: 1, attempt: 1, ok: true, value: "late" });
    expect(late.status).toBe(404);
    await t2.send("attempt", { name: "long", count: 1, attempt: 2, ok: true, value: "fresh" });
    await t2.send("finish", { ok: true, output: "fresh" });
    await until(async () => (await status("i6")).status === "complete");
    const rows = await s.cairn.store.steps.list("hello", "i6");
    expect(rows.map((r) => [r.status, r.attempts])).toEqual([["succeeded", 2]]);
    const st = await status("i6");
    expect(st.output).toBe("fresh");
  });

  it("a step asked for twice in one replay is nondeterministic: the instance errors", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register();
    await s.cairn.runtime.create("hello", { id: "i7" });
    const t = taskClient(wid, await pollOne(wid));
    await t.send("step", { name: "a", count: 1 });
    await t.send("attempt", { name: "a", count: 1, attempt: 1, ok: true, value: 1 });
    const again = await t.send("step", { name: "a", count: 1 });
    expect(again.status).toBe(409);
    expect(again.body.errors[0].code).toBe("step.nondeterministic");
    const st = await until(async () => {
      const x = await status("i7");
      return x.status === "errored" ? x : undefined;
    });
    expect(st.error.message).toContain('Step "a-1" (step) was requested twice in one replay');
  });

  it("refuses a registration for an unknown workflow or class", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const r = await call("POST", "/workers", {
      language: "python",
      sdk: "cairn-py/1",
      protocol: 1,
      workflows: [{ name: "hello", class_name: "Other" }],
      concurrency: 1,
    });
    expect(r.status).toBe(404);
    expect(r.body.errors[0].message).toContain("Other");
    const bad = await call("POST", "/workers", { language: "python", protocol: 2 });
    expect(bad.status).toBe(400);
  });
});

describe("worker protocol 2", () => {
  it("negotiates the version; one it does not speak is a clear error", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const body = { language: "python", sdk: "cairn-py/9", workflows: [], concurrency: 1 };
    for (const protocol of [1, 2]) {
      const r = await call("POST", "/workers", { ...body, protocol });
      expect(r.status).toBe(201);
      expect(r.body.result.protocol).toBe(protocol);
    }
    const r = await call("POST", "/workers", { ...body, protocol: 3 });
    expect(r.status).toBe(400);
    expect(r.body.errors[0]).toMatchObject({ code: "protocol.unsupported" });
    expect(r.body.errors[0].message).toContain(
      "Worker protocol 3 is not spoken by this server (it speaks 1, 2)",
    );
  });

  it("commits carried by the next command are stored before it is answered; op commit sends them alone", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register(undefined, 2);
    await s.cairn.runtime.create("hello", { id: "c1" });
    const task = await pollOne(wid);
    const t = taskClient(wid, task);
    expect((await t.send("step", { name: "a", count: 1, config: {} })).body.result.reply.run.attempt).toBe(1);
    const commitA = { name: "a", count: 1, attempt: 1, value: { n: 1 } };
    const b = await t.send("step", { name: "b", count: 1, config: {}, commits: [commitA] });
    expect(b.body.result.reply.run.attempt).toBe(1);
    const stored = async (name: string) =>
      (await s!.cairn.store.steps.list("hello", "c1")).find((r) => r.name === name);
    expect(await stored("a")).toMatchObject({ status: "succeeded", attempts: 1 });
    // A repeated seq (the network failed) is answered the same and commits nothing twice.
    const again = await t.send(
      "step",
      { name: "b", count: 1, config: {}, commits: [commitA] },
      { seq: 2, epoch: task.epoch },
    );
    expect(again.body.result).toEqual(b.body.result);
    const alone = await t.send("commit", { commits: [{ name: "b", count: 1, attempt: 1, value: "B" }] });
    expect(alone.body.result.reply).toEqual({ ok: true });
    expect(await stored("b")).toMatchObject({ status: "succeeded", attempts: 1 });
    await t.send("finish", { ok: true, output: "done" });
    const st = await until(async () =>
      (await status("c1")).status === "complete" ? status("c1") : undefined,
    );
    expect(st.output).toBe("done");
    const history = await s.cairn.store.history.list("hello", "c1");
    expect(history.filter((e) => e.type === "step_completed")).toHaveLength(2);
  });

  it("a carried commit the engine does not take as reported: 409, and the run is replayed by a new task", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register(undefined, 2);
    await s.cairn.runtime.create("hello", { id: "c2" });
    const first = await pollOne(wid);
    const t = taskClient(wid, first);
    await t.send("step", { name: "big", count: 1, config: { retries: { limit: 1, delay: 1 } } });
    // Over the 1 MiB step output limit: the engine fails the attempt (and retries it).
    const huge = "x".repeat(1_100_000);
    const r = await t.send("finish", {
      ok: true,
      output: "never",
      commits: [{ name: "big", count: 1, attempt: 1, value: huge }],
    });
    expect(r.status).toBe(409);
    expect(r.body.errors[0]).toMatchObject({ code: "lease.lost" });
    expect(r.body.errors[0].message).toContain('Step "big-1" attempt 1 was not committed as reported');
    // The old task is gone; a new one replays from the store, where the step is not done.
    expect((await t.send("heartbeat", { running: [] })).status).toBe(409);
    const second = await pollOne(wid);
    expect(second.task_id).not.toBe(first.task_id);
    expect(second.steps).toEqual([]);
    const t2 = taskClient(wid, second);
    const run = await t2.send("step", { name: "big", count: 1, config: { retries: { limit: 1, delay: 1 } } });
    expect(run.body.result.reply.run.attempt).toBe(2);
    expect(
      (await t2.send("attempt", { name: "big", count: 1, attempt: 2, ok: true, value: "small" })).body.result
        .reply,
    ).toEqual({ value: "small" });
    await t2.send("finish", { ok: true, output: "ok" });
    const st = await until(async () =>
      (await status("c2")).status === "complete" ? status("c2") : undefined,
    );
    expect(st.output).toBe("ok");
    const errs = (await s.cairn.store.history.list("hello", "c2")).filter(
      (e) => e.type === "attempt_errored",
    );
    expect((errs[0]!.data as any).error.message).toContain("output is too large");
  });

  it("a short sleep is answered wait_ms, then wake is done; a long one suspends; protocol 1 holds the request", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register(undefined, 2);
    await s.cairn.runtime.create("hello", { id: "z1" });
    const t = taskClient(wid, await pollOne(wid));
    const short = (await t.send("sleep", { name: "nap", count: 1, duration: 200 })).body.result.reply;
    expect(short.wait_ms).toBeGreaterThan(0);
    expect(short.wait_ms).toBeLessThanOrEqual(200);
    expect((await t.send("wake", { name: "nap", count: 1, kind: "sleep" })).body.result.reply).toEqual({
      done: true,
    });
    const long = await t.send("sleep", { name: "nap", count: 2, duration: "1 hour" });
    expect(long.body.result.reply).toEqual({ suspend: "sleep" });

    const v1 = await register();
    await s.cairn.runtime.create("hello", { id: "z2" });
    const t1 = taskClient(v1, await pollOne(v1));
    expect((await t1.send("sleep", { name: "nap", count: 1, duration: 100 })).body.result.reply).toEqual({
      done: true,
    });
  });

  it("a retry's short backoff is answered at once with wait_ms; wake gives the next attempt to run", async () => {
    s = await startPyServer({ workflows: [{ name: "hello", className: "Hello" }] });
    const wid = await register(undefined, 2);
    await s.cairn.runtime.create("hello", { id: "rt1" });
    const t = taskClient(wid, await pollOne(wid));
    const config = { retries: { limit: 2, delay: 300, backoff: "constant" } };
    expect((await t.send("step", { name: "s", count: 1, config })).body.result.reply.run.attempt).toBe(1);
    const failed = await t.send("attempt", {
      name: "s",
      count: 1,
      attempt: 1,
      ok: false,
      error: { name: "Error", message: "boom" },
    });
    const retry = failed.body.result.reply.retry;
    expect(retry.attempt).toBe(2);
    expect(retry.wait_ms).toBeGreaterThan(0);
    expect(retry.wait_ms).toBeLessThanOrEqual(300);
    const run = (await t.send("wake", { name: "s", count: 1, kind: "do" })).body.result.reply;
    expect(run.run.attempt).toBe(2);
    const ok = await t.send("attempt", { name: "s", count: 1, attempt: 2, ok: true, value: "second" });
    expect(ok.body.result.reply).toEqual({ value: "second" });
    const [row] = await s.cairn.store.steps.list("hello", "rt1");
    expect(row).toMatchObject({ status: "succeeded", attempts: 2 });
  });
});
