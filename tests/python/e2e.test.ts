import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type PyServer, startPyServer, until } from "./support.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const ENTRY = join(ROOT, "tests/python/fixtures/flows.py");
const python = process.env.CAIRN_PYTHON ?? "python3";
const found = spawnSync(python, ["-c", "import sys; print(sys.version_info >= (3, 10))"], {
  encoding: "utf8",
});
const havePython = found.status === 0 && found.stdout.trim() === "True";
if (!havePython) {
  if (process.env.CAIRN_REQUIRE_PYTHON === "1")
    throw new Error(`${python} ≥ 3.10 is required (CAIRN_REQUIRE_PYTHON=1)`);
  console.log(`Skipping the Python end-to-end tests: no ${python} ≥ 3.10`);
}

const WORKFLOWS = [
  "Hello",
  "Diamond",
  "Timing",
  "Flaky",
  "Sleeper",
  "Waiter",
  "Killable",
  "BadInput",
  "Legacy",
  "Three",
  "Lingers",
  "Scheduled",
].map((c) => ({ name: c.toLowerCase(), className: c, binding: c.toUpperCase() }));

let s: PyServer | undefined;
const children: ChildProcess[] = [];
let marks = "";
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
  await s?.close();
  s = undefined;
});

function worker(url: string, extra: Record<string, string> = {}): ChildProcess {
  const child = spawn(python, ["-m", "cairn_worker", ENTRY, "--server", url], {
    env: {
      ...process.env,
      PYTHONPATH: join(ROOT, "python"),
      CAIRN_TEST_MARKS: marks,
      CAIRN_WORKFLOWS: JSON.stringify(
        WORKFLOWS.map((w) => ({ name: w.name, class_name: w.className, binding: w.binding })),
      ),
      ...extra,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(child);
  return child;
}

async function start(options: Parameters<typeof startPyServer>[0] | object = {}) {
  marks = mkdtempSync(join(tmpdir(), "cairn-py-marks-"));
  s = await startPyServer({ workflows: WORKFLOWS, ...options });
  return s;
}

async function finished(workflow: string, id: string) {
  return until(async () => {
    const st = (await s!.cairn.runtime.status(workflow, id)) as any;
    return ["complete", "errored", "terminated"].includes(st.status) ? st : undefined;
  });
}

const lines = (name: string) => {
  try {
    return readFileSync(join(marks, name), "utf8").trim().split("\n").map(Number);
  } catch {
    return [];
  }
};

describe.skipIf(!havePython)("Python workflows end to end (real python3)", () => {
  it("hello workflow completes; print() reaches the log with the instance id", async () => {
    await start();
    worker(s!.url);
    await s!.cairn.runtime.create("hello", { id: "h1", params: { who: "py" } });
    const st = await finished("hello", "h1");
    expect(st.status).toBe("complete");
    expect(st.output).toEqual({ hello: "py", attempt: 1 });
    await until(() => s!.logs.find((l) => l.message === "greeting py"));
    expect(s!.logs.find((l) => l.message === "greeting py")).toMatchObject({
      instanceId: "h1",
      workflow: "hello",
    });
  });

  it("protocol 2: one command per step, each outcome stored before the next callback runs; a short sleep waits in the worker", async () => {
    const commands: string[] = [];
    await start({
      onRequest: (r: { method: string; path: string }) => {
        if (r.method === "POST" && r.path.includes("/tasks/")) commands.push(r.path);
      },
    });
    // A flush deadline no test run can reach, so the count below is exact.
    worker(s!.url, { CAIRN_TEST_DB: s!.dbPath, CAIRN_COMMIT_FLUSH_MS: "60000" });
    await s!.cairn.runtime.create("three", { id: "t1" });
    const st = await finished("three", "t1");
    expect(st.output).toEqual({ one: 1, one_was: "succeeded", two_was: "succeeded" });
    // sleep · wake · step one · step two (+ one's commit) · step three (+ two's) · finish (+ three's);
    // protocol 1 needed a step and an attempt command for each step, and held the sleep's request.
    expect(commands).toHaveLength(6);
    const rows = await s!.cairn.store.steps.list("three", "t1");
    expect(rows.map((r) => [r.name, r.status, r.attempts])).toEqual([
      ["short", "succeeded", 0],
      ["one", "succeeded", 1],
      ["two", "succeeded", 1],
      ["three", "succeeded", 1],
    ]);
    // The short sleep stayed in memory: the run never parked, so one task (no replay) did it all.
    expect(new Set(commands.map((p) => p.split("/tasks/")[1])).size).toBe(1);
  });

  it("protocol 2: a held commit that no command takes soon is sent alone", async () => {
    await start();
    worker(s!.url);
    await s!.cairn.runtime.create("lingers", { id: "l1" });
    await until(() => lines("lingering").length === 1);
    // The run is still in user code (an hour-long asyncio.sleep), yet its step is stored.
    const row = await until(async () => {
      const r = (await s!.cairn.store.steps.list("lingers", "l1")).find((x) => x.name === "first");
      return r?.status === "succeeded" ? r : undefined;
    });
    expect(row.attempts).toBe(1);
    expect(((await s!.cairn.runtime.status("lingers", "l1")) as any).status).toBe("running");
  });

  it("a diamond runs each node once; history has one entry per node", async () => {
    await start();
    worker(s!.url);
    await s!.cairn.runtime.create("diamond", { id: "d1" });
    const st = await finished("diamond", "d1");
    expect(st.output).toBe(6);
    for (const n of ["a", "b", "c", "d"]) expect(lines(n)).toHaveLength(1);
    const hist = await s!.cairn.store.history.list("diamond", "d1");
    const started = hist.filter((e) => e.type === "step_completed").map((e) => e.step!.name);
    expect(started.sort()).toEqual(["a", "b", "c", "d"]);
  });

  it("concurrent=True overlaps the dependencies; False runs them in parameter order", async () => {
    await start();
    worker(s!.url);
    await s!.cairn.runtime.create("timing", { id: "par", params: { concurrent: true } });
    await s!.cairn.runtime.create("timing", { id: "seq", params: { concurrent: false } });
    const par = (await finished("timing", "par")).output;
    const seq = (await finished("timing", "seq")).output;
    // Overlap: each started before the other ended. Sequential: b started after a ended.
    expect(par.a[0]).toBeLessThan(par.b[1]);
    expect(par.b[0]).toBeLessThan(par.a[1]);
    expect(seq.b[0]).toBeGreaterThanOrEqual(seq.a[1]);
  });

  it("retries by the engine's config, then a NonRetryableError fails the step for good", async () => {
    await start();
    worker(s!.url);
    await s!.cairn.runtime.create("flaky", { id: "f1" });
    const st = await finished("flaky", "f1");
    expect(st.output).toEqual({ caught: "giving up" });
    const [row] = await s!.cairn.store.steps.list("flaky", "f1");
    expect(row).toMatchObject({ status: "failed", attempts: 3, error: { name: "NonRetryableError" } });
    const errored = (await s!.cairn.store.history.list("flaky", "f1")).filter(
      (e) => e.type === "attempt_errored",
    );
    expect(errored.map((e) => (e.data as any).error.name)).toEqual([
      "ValueError",
      "ValueError",
      "NonRetryableError",
    ]);
  });

  it("a buffered event is delivered to wait_for_event", async () => {
    await start();
    await s!.cairn.runtime.create("waiter", { id: "w1" });
    await s!.cairn.runtime.sendEvent("waiter", "w1", { type: "approved", payload: { by: "ada" } });
    worker(s!.url);
    const st = await finished("waiter", "w1");
    expect(st.output).toEqual({ by: "ada", type: "approved", tz: "UTC" });
  });

  it("a 10-minute sleep suspends, survives a server restart, resumes under the fake clock; except Exception does not swallow it", async () => {
    const { FakeClock } = await import("cairnjs");
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    await start({ clock });
    const dbPath = s!.dbPath;
    const port = Number(new URL(s!.url).port);
    const py = worker(s!.url);
    await s!.cairn.runtime.create("sleeper", { id: "s1" });
    await until(
      async () => ((await s!.cairn.runtime.status("sleeper", "s1")) as any).status === "waiting" || undefined,
    );
    const rows = await s!.cairn.store.steps.list("sleeper", "s1");
    expect(rows.find((r) => r.name === "nap")?.status).toBe("sleeping");
    await s!.close();
    const later = new FakeClock(Date.UTC(2026, 0, 1, 0, 11));
    s = await startPyServer({ workflows: WORKFLOWS, dbPath, clock: later, port } as never);
    const st = await finished("sleeper", "s1");
    expect(st.output).toBe("woke");
    expect(lines("before")).toHaveLength(1);
    expect(py.exitCode).toBe(null);
  });

  it("an hourly schedule creates a Python instance whose event carries schedule { cron, scheduledTime }", async () => {
    const { FakeClock } = await import("cairnjs");
    const clock = new FakeClock(Date.UTC(2026, 0, 1, 0, 59));
    await start({ clock, schedules: { scheduled: ["0 * * * *"] } });
    worker(s!.url);
    await clock.advance(60_000, () => s!.cairn.runtime.whenIdle());
    const slot = Date.UTC(2026, 0, 1, 1);
    const st = await finished("scheduled", `0 * * * *#${slot}`);
    expect(st).toMatchObject({ status: "complete", output: { cron: "0 * * * *", scheduledTime: slot } });
    // An instance created by hand has no schedule on its event.
    await s!.cairn.runtime.create("scheduled", { id: "by-hand" });
    expect((await finished("scheduled", "by-hand")).output).toBe(null);
  });

  it("SIGKILL of the worker mid-attempt: a new worker retries the attempt, finished nodes do not rerun", async () => {
    await start({ leaseMs: 600 });
    const first = worker(s!.url);
    await s!.cairn.runtime.create("killable", { id: "k1" });
    await until(() => readdirSync(marks).some((f) => f.startsWith("long-1-")));
    first.kill("SIGKILL");
    worker(s!.url);
    const st = await finished("killable", "k1");
    expect(st.status).toBe("complete");
    expect(st.output).toBe("first then long on attempt 2");
    expect(lines("first")).toHaveLength(1);
    const row = (await s!.cairn.store.steps.list("killable", "k1")).find((r) => r.name === "long");
    expect(row).toMatchObject({ status: "succeeded", attempts: 2 });
    const errs = (await s!.cairn.store.history.list("killable", "k1")).filter(
      (e) => e.type === "attempt_errored",
    );
    expect((errs[0]!.data as any).error.name).toBe("WorkflowTimeoutError");
  });

  it("bad input: unexpected parameter, cycle, non-JSON result, failing dependency, double await", async () => {
    await start();
    worker(s!.url);
    for (const kind of ["unexpected", "cycle", "not_json", "failing_dep", "double"])
      await s!.cairn.runtime.create("badinput", { id: kind, params: { kind } });
    const unexpected = await finished("badinput", "unexpected");
    expect(unexpected.error).toMatchObject({
      name: "TypeError",
      message: "Received unexpected parameter nope",
    });
    const cycle = await finished("badinput", "cycle");
    expect(cycle.error).toMatchObject({ name: "TypeError", message: "Dependency cycle: p -> q -> p" });
    const notJson = await finished("badinput", "not_json");
    expect(notJson.status).toBe("errored");
    expect(notJson.error.message).toContain('step "odd-1" returned a value which is not JSON serialisable');
    const dep = await finished("badinput", "failing_dep");
    expect(dep.output).toEqual({ type_error: "bad" });
    const hist = await s!.cairn.store.history.list("badinput", "failing_dep");
    expect(hist.some((e) => e.type === "step_started" && e.step?.name === "after")).toBe(false);
    const double = await finished("badinput", "double");
    expect(double.output).toBe("ok");
    const counts = (await s!.cairn.store.steps.list("badinput", "double")).map((r) => r.count).sort();
    expect(counts).toEqual([1, 2]);
    for (const id of ["unexpected", "cycle"])
      expect(await s!.cairn.store.steps.list("badinput", id)).toEqual([]);
  });

  it("legacy mode: depends matched in order; a count mismatch raises TypeError", async () => {
    await start();
    worker(s!.url, { CAIRN_COMPATIBILITY_DATE: "2025-10-01" });
    await s!.cairn.runtime.create("legacy", { id: "l1" });
    const st = await finished("legacy", "l1");
    expect(st.output).toEqual({
      value: 21,
      error: "Step has 1 non-ctx parameter(s) but no 'depends' list provided",
    });
  });

  it("serves HTTP requests with Default.fetch, which creates an instance through its binding", async () => {
    await start({ fetch: true });
    worker(s!.url);
    const res = await fetch(`${s!.url}/start`);
    expect(res.headers.get("x-py")).toBe("1");
    const id = (await res.text()).replace("started ", "");
    const st = await finished("hello", id);
    expect(st.output).toEqual({ hello: "fetch", attempt: 1 });
  });
});
