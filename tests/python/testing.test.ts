/**
 * The testing helpers (`@cairn/testing`, Cloudflare's `cloudflare:test` introspection) on Python
 * instances: a real Cairn on SQLite, a real `python3 -m cairn_worker`. Mocks are the engine's, so a
 * mocked step's callback never runs in Python, a disabled sleep or a mocked event answers the
 * worker's command at once.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { introspectWorkflow, introspectWorkflowInstance } from "@cairn/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type PyServer, startPyServer } from "./support.ts";

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
  console.log(`Skipping the Python testing-helper tests: no ${python} ≥ 3.10`);
}

const WORKFLOWS = ["Hello", "Sleeper", "Waiter", "Flaky"].map((c) => ({
  name: c.toLowerCase(),
  className: c,
  binding: c.toUpperCase(),
}));

let s: PyServer | undefined;
let child: ChildProcess | undefined;
let marks = "";
afterEach(async () => {
  if (child?.exitCode === null) child.kill("SIGKILL");
  await s?.close();
  s = undefined;
});

async function start(): Promise<PyServer & { env: Record<string, unknown> }> {
  marks = mkdtempSync(join(tmpdir(), "cairn-py-marks-"));
  s = await startPyServer({ workflows: WORKFLOWS });
  child = spawn(python, ["-m", "cairn_worker", ENTRY, "--server", s.url], {
    env: {
      ...process.env,
      PYTHONPATH: join(ROOT, "python"),
      PYTHONDONTWRITEBYTECODE: "1",
      CAIRN_TEST_MARKS: marks,
      CAIRN_WORKFLOWS: JSON.stringify(
        WORKFLOWS.map((w) => ({ name: w.name, class_name: w.className, binding: w.binding })),
      ),
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  return Object.assign(s, { env: s.cairn.env as Record<string, unknown> });
}

const marked = (name: string) => {
  try {
    return readFileSync(join(marks, name), "utf8").trim().split("\n").length;
  } catch {
    return 0;
  }
};

describe.skipIf(!havePython)("testing helpers on Python instances (real python3)", () => {
  it("mockStepResult: the Python callback never runs; waitForStepResult and getOutput see the mock", async () => {
    const { env, logs } = await start();
    const instance = await introspectWorkflowInstance(env.HELLO, "mocked");
    await instance.modify(async (m) => {
      await m.mockStepResult({ name: "greet" }, { hello: "mock", attempt: 0 });
    });
    await (env.HELLO as any).create({ id: "mocked", params: { who: "py" } });
    expect(await instance.waitForStepResult({ name: "greet" })).toEqual({ hello: "mock", attempt: 0 });
    await instance.waitForStatus("complete");
    expect(await instance.getOutput()).toEqual({ hello: "mock", attempt: 0 });
    expect(logs.filter((l) => l.message.startsWith("greeting"))).toEqual([]);
    await instance.dispose();
  });

  it("mockStepError with disableRetryDelays: the failed attempt is the mock, the retry runs in Python", async () => {
    const { env } = await start();
    const instance = await introspectWorkflowInstance(env.HELLO, "flaky-once");
    await instance.modify(async (m) => {
      await m.disableRetryDelays();
      await m.mockStepError({ name: "greet" }, new Error("injected"), 1);
    });
    await (env.HELLO as any).create({ id: "flaky-once", params: { who: "py" } });
    await instance.waitForStatus("complete");
    expect(await instance.getOutput()).toEqual({ hello: "py", attempt: 2 });
  });

  it("disableSleeps: a 10-minute Python sleep completes without moving the clock", async () => {
    const { env } = await start();
    const instance = await introspectWorkflowInstance(env.SLEEPER, "no-nap");
    await instance.modify(async (m) => {
      await m.disableSleeps();
    });
    await (env.SLEEPER as any).create({ id: "no-nap" });
    await instance.waitForStatus("complete");
    expect(await instance.getOutput()).toBe("woke");
    expect(marked("before")).toBe(1);
  });

  it("mockEvent and forceEventTimeout reach wait_for_event", async () => {
    const { env } = await start();
    const waiting = await introspectWorkflow(env.WAITER);
    await waiting.modify(async (m) => {
      await m.mockEvent({ type: "approved", payload: { by: "mock" } });
    });
    await (env.WAITER as any).create({ id: "ev-1" });
    const [first] = await waiting.get();
    await first!.waitForStatus("complete");
    expect(await first!.getOutput()).toEqual({ by: "mock", type: "approved", tz: "UTC" });
    await waiting.dispose();

    const timeout = await introspectWorkflowInstance(env.WAITER, "ev-2");
    await timeout.modify(async (m) => {
      await m.forceEventTimeout({ name: "approval" });
    });
    await (env.WAITER as any).create({ id: "ev-2" });
    await timeout.waitForStatus("errored");
    // The engine's wait timeout, as a TypeScript workflow gets it (SPEC §11.1: no Python type for it).
    expect(await timeout.getError()).toMatchObject({ message: expect.stringMatching(/timed out/) });
  });

  it("a Python NonRetryableError is what getOutput of the catching workflow shows", async () => {
    const { env } = await start();
    const instance = await introspectWorkflowInstance(env.FLAKY, "f1");
    await instance.modify(async (m) => {
      await m.disableRetryDelays();
    });
    await (env.FLAKY as any).create({ id: "f1" });
    await instance.waitForStatus("complete");
    expect(await instance.getOutput()).toEqual({ caught: "giving up" });
    await expect(instance.waitForStepResult({ name: "flaky" })).rejects.toThrow("giving up");
  });
});
