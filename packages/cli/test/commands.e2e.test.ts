/**
 * End to end: the built `cairn` binary against a real engine served in this process:
 * `restart --from-step-name` across step kinds, `resume` of a finished instance, and payloads
 * from files and standard input.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@cairn/client";
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import { createApi, startServer } from "@cairn/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, buildCli, type CliResult, cairn, NODE, waitFor } from "./helpers.ts";

/** A step.do and a sleep share the name "nap"; "rest" is only a sleep; then an event wait. */
class Kinds extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("nap", async () => "prepared");
    await step.sleep("nap", 10);
    await step.sleep("rest", 10);
    const e = await step.waitForEvent<unknown>("approval", { type: "approved", timeout: "1 hour" });
    return { params: event.payload, event: e.payload };
  }
}

class Quick extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>) {
    return event.payload;
  }
}

let engine: Cairn;
let server: { url: string; close(): Promise<void> };
let env: Record<string, string>;
let api: ReturnType<typeof createClient>;
let dir: string;

beforeAll(async () => {
  await buildCli();
  dir = mkdtempSync(join(tmpdir(), "cairn-cli-files-"));
  engine = await createCairn({
    store: ":memory:",
    workflows: [
      { binding: "KINDS", name: "kinds", class: Kinds },
      { binding: "QUICK", name: "quick", class: Quick },
    ],
  });
  server = await startServer({ app: createApi({ runtime: engine.runtime }), port: 0 });
  env = { CAIRN_URL: server.url };
  api = createClient({ url: server.url });
}, 180_000);

afterAll(async () => {
  await server?.close();
  await engine?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `cairn <args…>` with `input` on standard input. */
function cairnWithInput(args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [BIN, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

const atWait = (id: string) =>
  waitFor(async () => {
    const d = await api.getInstance("kinds", id);
    return d.steps.some((s) => s.type === "waitForEvent") ? d : undefined;
  }, `${id} at its event wait`);

describe("restart --from-step-name", () => {
  it("finds a step whose name is unique across kinds (a sleep)", async () => {
    await api.createInstance("kinds", { instance_id: "k-1" });
    await atWait("k-1");
    const r = await cairn(
      ["workflows", "instances", "restart", "kinds", "k-1", "--from-step-name", "rest"],
      env,
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe('🥷 The instance "k-1" from kinds was restarted successfully\n');
    const after = await atWait("k-1");
    expect(after.steps.map((s) => `${s.type}:${s.name}`)).toEqual([
      "step:nap",
      "sleep:nap",
      "sleep:rest",
      "waitForEvent:approval",
    ]);
  });

  it("says which --from-step-type to add when the name is used by several kinds", async () => {
    await api.createInstance("kinds", { instance_id: "k-2" });
    await atWait("k-2");
    const r = await cairn(
      ["workflows", "instances", "restart", "kinds", "k-2", "--from-step-name", "nap"],
      env,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: step name "nap" is used by 2 kinds of step (do, sleep): add --from-step-type do or --from-step-type sleep\n(run with --help for usage)\n',
    );
    const ok = await cairn(
      [
        "workflows",
        "instances",
        "restart",
        "kinds",
        "k-2",
        "--from-step-name",
        "nap",
        "--from-step-type",
        "sleep",
      ],
      env,
    );
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe("resume", () => {
  it("of a finished instance fails with a clear error", async () => {
    await api.createInstance("quick", { instance_id: "q-1", params: 1 });
    await waitFor(
      async () => ((await api.getInstance("quick", "q-1")).status === "complete" ? true : undefined),
      "q-1",
    );
    const r = await cairn(["workflows", "instances", "resume", "quick", "q-1"], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      '✘ Cannot resume instance "q-1" of quick: it is complete, and a finished instance cannot be resumed (restart it instead)\n',
    );
  });
});

describe("payloads from files", () => {
  const big = { items: Array.from({ length: 20_000 }, (_, i) => ({ i, name: `item ${i}` })) };

  it("trigger --params-file reads a file, and - reads standard input", async () => {
    const file = join(dir, "params.json");
    writeFileSync(file, JSON.stringify(big));
    const r = await cairn(["workflows", "trigger", "quick", "--params-file", file, "--id", "f-1"], env);
    expect(r.stdout, r.stderr).toBe('🚀 Workflow instance "f-1" has been queued successfully\n');
    const piped = await cairnWithInput(
      ["workflows", "trigger", "quick", "--params-file", "-", "--id", "f-2"],
      '{"n":2}',
    );
    expect(piped.stdout, piped.stderr).toBe('🚀 Workflow instance "f-2" has been queued successfully\n');
    await waitFor(
      async () => ((await api.getInstance("quick", "f-2")).status === "complete" ? true : undefined),
      "f-2",
    );
    const quick = engine.env.QUICK as {
      get(id: string): Promise<{ status(): Promise<{ output?: unknown }> }>;
    };
    expect((await (await quick.get("f-1")).status()).output).toEqual(big);
    expect((await (await quick.get("f-2")).status()).output).toEqual({ n: 2 });
  });

  it("send-event --payload-file - reads standard input", async () => {
    await api.createInstance("kinds", { instance_id: "k-3", params: "p" });
    await atWait("k-3");
    const r = await cairnWithInput(
      ["workflows", "instances", "send-event", "kinds", "k-3", "--type", "approved", "--payload-file", "-"],
      '{"by":"ana"}',
    );
    expect(r.code, r.stderr).toBe(0);
    await waitFor(
      async () => ((await api.getInstance("kinds", "k-3")).status === "complete" ? true : undefined),
      "k-3",
    );
    expect((await api.getInstance("kinds", "k-3")).output).toEqual({ params: "p", event: { by: "ana" } });
  });

  it("a missing file, bad JSON, or a payload given twice are usage errors", async () => {
    const missing = await cairn(
      ["workflows", "trigger", "quick", "--params-file", join(dir, "nope.json")],
      env,
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error: --params-file: cannot read .*nope\.json: ENOENT/);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{ nope");
    const badJson = await cairn(["workflows", "trigger", "quick", "--params-file", bad], env);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/^error: --params-file \(.*bad\.json\) must be valid JSON/);
    const twice = await cairn(["workflows", "trigger", "quick", "{}", "--params-file", bad], env);
    expect(twice.stderr).toMatch(
      /^error: give the params either as an argument or with --params-file, not both/,
    );
  });
});
