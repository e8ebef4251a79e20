/**
 * End to end: the built `cairn` binary, as a child process, against a real Cairn engine served by
 * @cairn/server's `startServer` in this process. Every command is checked against the API state
 * it leaves behind.
 */
import type { InstanceDetail } from "@cairn/api";
import { CairnApiError, createClient } from "@cairn/client";
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import { createApi, startServer } from "@cairn/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli, cairn, waitFor } from "./helpers.ts";

const TOKEN = "e2e-token";
/** How often each step callback ran, per instance: "<id>:<step>" → count. */
const calls = new Map<string, number>();
const count = (key: string) => calls.set(key, (calls.get(key) ?? 0) + 1);

class Approval extends WorkflowEntrypoint<unknown, { orderId?: string }> {
  async run(event: WorkflowEvent<{ orderId?: string }>, step: WorkflowStep) {
    const order = await step.do("load", async () => {
      count(`${event.instanceId}:load`);
      return { id: event.payload.orderId ?? "none" };
    });
    const approval = await step.waitForEvent<{ by: string }>("approval", {
      type: "approved",
      timeout: "1 hour",
    });
    const shipped = await step.do("ship", async () => {
      count(`${event.instanceId}:ship`);
      return `shipped ${order.id} for ${approval.payload.by}`;
    });
    return { shipped };
  }
}

class Sleeper extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("first", async () => 1);
    await step.sleep("nap", "1 hour");
    return "rested";
  }
}

let engine: Cairn;
let server: { url: string; close(): Promise<void> };
let env: Record<string, string>;
let api: ReturnType<typeof createClient>;

beforeAll(async () => {
  await buildCli();
  engine = await createCairn({
    store: ":memory:",
    workflows: [
      { binding: "APPROVAL", name: "approval", class: Approval },
      { binding: "SLEEPER", name: "sleeper", class: Sleeper },
    ],
  });
  const app = createApi({ runtime: engine.runtime, token: TOKEN });
  server = await startServer({ app, host: "127.0.0.1", port: 0 });
  env = { CAIRN_URL: server.url, CAIRN_TOKEN: TOKEN };
  api = createClient({ url: server.url, token: TOKEN });
}, 180_000);

afterAll(async () => {
  await server?.close();
  await engine?.close();
});

const detail = (id: string, workflow = "approval") => api.getInstance(workflow, id);
const statusOf = async (id: string, workflow = "approval") => (await detail(id, workflow)).status;
const atApproval = async (id: string) => {
  const d = await detail(id);
  const wait = d.steps.find((s) => s.type === "waitForEvent");
  return wait && !wait.finished && d.status === "waiting" ? d : undefined;
};

describe("cairn against a running server", { timeout: 60_000 }, () => {
  it("lists and describes workflows", async () => {
    const list = await cairn(["workflows", "list"], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^Name\s+Class name\s+Instances\s+Last triggered/);
    expect(list.stdout).toMatch(/approval\s+Approval\s+0/);
    const json = await cairn(["workflows", "list", "--json"], env);
    expect(
      JSON.parse(json.stdout)
        .map((w: { name: string }) => w.name)
        .sort(),
    ).toEqual(["approval", "sleeper"]);
    const describe = await cairn(["workflows", "describe", "approval"], env);
    expect(describe.code).toBe(0);
    expect(describe.stdout).toContain("Class Name:     Approval");
    expect(describe.stdout).toContain("Instance Status Counts:");
  });

  it("drives an instance through trigger, list, describe, pause, resume, send-event, restart and delete", async () => {
    // trigger
    const trigger = await cairn(
      ["workflows", "trigger", "approval", '{"orderId":"42"}', "--id", "order-42"],
      env,
    );
    expect(trigger).toMatchObject({ code: 0, stderr: "" });
    expect(trigger.stdout).toBe('🚀 Workflow instance "order-42" has been queued successfully\n');
    const triggered = await cairn(["workflows", "trigger", "approval", "--id", "order-43", "--json"], env);
    expect(JSON.parse(triggered.stdout)).toMatchObject({ id: "order-43", workflow: "approval" });
    await waitFor(() => atApproval("order-42"), "order-42 at its approval wait");
    await waitFor(() => atApproval("order-43"), "order-43 at its approval wait");
    expect((await detail("order-42")).params).toEqual({ orderId: "42" });

    // instances list, with filters
    const list = await cairn(["workflows", "instances", "list", "approval"], env);
    expect(list.code).toBe(0);
    const rows = list.stdout.split("\n").filter((l) => l.startsWith("order-"));
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(["order-43", "order-42"]);
    expect(rows[0]).toContain("⏰ Waiting");
    const reversed = await cairn(["workflows", "instances", "list", "approval", "--reverse", "--json"], env);
    expect(JSON.parse(reversed.stdout).instances.map((i: { id: string }) => i.id)).toEqual([
      "order-42",
      "order-43",
    ]);
    const complete = await cairn(["workflows", "instances", "list", "approval", "--status", "complete"], env);
    expect(complete.stdout).toBe('No instances of "approval" with status complete.\n');
    const paged = await cairn(
      ["workflows", "instances", "list", "approval", "--per-page", "1", "--json"],
      env,
    );
    const page = JSON.parse(paged.stdout);
    expect(page.instances).toHaveLength(1);
    expect(page.cursor).toEqual(expect.any(String));
    const next = await cairn(
      ["workflows", "instances", "list", "approval", "--per-page", "1", "--cursor", page.cursor, "--json"],
      env,
    );
    expect(JSON.parse(next.stdout).instances.map((i: { id: string }) => i.id)).toEqual(["order-42"]);

    // describe (by id and latest)
    const described = await cairn(["workflows", "instances", "describe", "approval", "order-42"], env);
    expect(described.code).toBe(0);
    expect(described.stdout).toMatch(
      /^Describing instance:\nWorkflow Name: +approval\nInstance Id: +order-42\nStatus: +⏰ Waiting/,
    );
    expect(described.stdout).toContain("  Name:         load-1\n  Type:         🎯 Step");
    expect(described.stdout).toContain('  Output:       {"id":"42"}');
    expect(described.stdout).toContain(
      "  Name:         approval-1\n  Type:         👀 Waiting for event\n  Event Type:   approved",
    );
    expect(described.stdout).toMatch(
      / {4}1 {2}\d\d:\d\d:\d\d\.\d{3} {2}\d\d:\d\d:\d\d\.\d{3} {2}\S+ +\S+ +✅ Success/,
    );
    const latest = await cairn(
      ["workflows", "instances", "describe", "approval", "latest", "--step-output=false"],
      env,
    );
    expect(latest.stdout).toMatch(
      /^Describing latest instance:\nWorkflow Name: +approval\nInstance Id: +order-43/,
    );
    expect(latest.stdout).not.toContain("Output:");
    const describedJson = await cairn(
      ["workflows", "instances", "describe", "approval", "order-42", "--json"],
      env,
    );
    const parsed = JSON.parse(describedJson.stdout) as InstanceDetail;
    expect(parsed).toMatchObject({ id: "order-42", status: "waiting" });
    expect(parsed.steps.map((s) => s.label)).toEqual(["load-1", "approval-1"]);

    // pause, resume
    const pause = await cairn(["workflows", "instances", "pause", "approval", "order-42"], env);
    expect(pause.stdout).toBe('⏸️ The instance "order-42" from approval was paused successfully\n');
    expect(await statusOf("order-42")).toBe("paused");
    const resume = await cairn(["workflows", "instances", "resume", "approval", "order-42"], env);
    expect(resume.stdout).toBe('🔄 The instance "order-42" from approval was resumed successfully\n');
    await waitFor(() => atApproval("order-42"), "order-42 waiting again after resume");

    // send-event completes it
    const sent = await cairn(
      [
        "workflows",
        "instances",
        "send-event",
        "approval",
        "order-42",
        "--type",
        "approved",
        "--payload",
        '{"by":"ana"}',
      ],
      env,
    );
    expect(sent.code).toBe(0);
    expect(sent.stdout).toBe(
      '📤 The event with type "approved" and payload "{"by":"ana"}" was sent to the instance "order-42" from approval\n',
    );
    const done = await waitFor(async () => {
      const d = await detail("order-42");
      return d.status === "complete" ? d : undefined;
    }, "order-42 complete");
    expect(done.output).toEqual({ shipped: "shipped 42 for ana" });
    expect(calls.get("order-42:ship")).toBe(1);

    // terminate the other one
    const terminate = await cairn(["workflows", "instances", "terminate", "approval", "order-43"], env);
    expect(terminate.stdout).toBe('🥷 The instance "order-43" from approval was terminated successfully\n');
    expect(await statusOf("order-43")).toBe("terminated");
    const again = await cairn(["workflows", "instances", "terminate", "approval", "order-43"], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^✘ \(instance\.cannot_terminate\)/);

    // restart from a step keeps the steps before it
    const restartFrom = await cairn(
      ["workflows", "instances", "restart", "approval", "order-42", "--from-step-name", "ship"],
      env,
    );
    expect(restartFrom.stdout).toBe('🥷 The instance "order-42" from approval was restarted successfully\n');
    await waitFor(
      async () =>
        ((await statusOf("order-42")) === "complete" && calls.get("order-42:ship") === 2) || undefined,
      "order-42 re-ran ship",
    );
    expect(calls.get("order-42:load")).toBe(1);
    expect((await detail("order-42")).output).toEqual({ shipped: "shipped 42 for ana" });

    // restart from the top re-runs everything
    const restart = await cairn(["workflows", "instances", "restart", "approval", "order-43", "--json"], env);
    expect(JSON.parse(restart.stdout)).toMatchObject({ id: "order-43", workflow: "approval" });
    await waitFor(() => atApproval("order-43"), "order-43 back at its approval wait");
    expect(calls.get("order-43:load")).toBe(2);

    // delete
    const deleted = await cairn(
      ["workflows", "instances", "delete", "approval", "order-42", "order-43"],
      env,
    );
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toBe("🗑️ Deleted 2 instances from approval: order-42, order-43\n");
    for (const id of ["order-42", "order-43"]) {
      const e = await detail(id).catch((x) => x);
      expect(CairnApiError.is(e) && e.code).toBe("instance.not_found");
    }
    const missing = await cairn(["workflows", "instances", "delete", "approval", "order-42"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("order-42");
  });

  it("pauses and resumes a sleeping instance by latest", async () => {
    await cairn(["workflows", "trigger", "sleeper", "--id", "nap-1"], env);
    await waitFor(
      async () => ((await statusOf("nap-1", "sleeper")) === "waiting" ? true : undefined),
      "nap-1 asleep",
    );
    const pause = await cairn(["workflows", "instances", "pause", "sleeper", "latest"], env);
    expect(pause.stdout).toBe('⏸️ The instance "nap-1" from sleeper was paused successfully\n');
    expect(await statusOf("nap-1", "sleeper")).toBe("paused");
    const list = await cairn(["workflows", "instances", "list", "sleeper", "--status", "paused"], env);
    expect(list.stdout).toMatch(/nap-1 .*⏸️ Paused/);
    const describe = await cairn(["workflows", "instances", "describe", "sleeper", "nap-1"], env);
    expect(describe.stdout).toContain("Status:               ⏸️ Paused");
    expect(describe.stdout).toContain("  Type:         💤 Sleeping");
    await cairn(["workflows", "instances", "resume", "sleeper", "latest"], env);
    expect(await statusOf("nap-1", "sleeper")).toBe("waiting");
  });

  it("reports API errors on stderr with exit 1", async () => {
    const badToken = await cairn(["workflows", "list"], { ...env, CAIRN_TOKEN: "wrong" });
    expect(badToken.code).toBe(1);
    expect(badToken.stdout).toBe("");
    expect(badToken.stderr).toMatch(/^✘ \(unauthorized\)/);
    const noToken = await cairn(["workflows", "list", "--json"], { CAIRN_URL: server.url });
    expect(noToken.code).toBe(1);
    expect(JSON.parse(noToken.stderr).error).toMatchObject({ code: "unauthorized", status: 401 });
    const flagToken = await cairn(["--url", server.url, "--token", TOKEN, "workflows", "list", "--json"]);
    expect(flagToken.code).toBe(0);

    const unknown = await cairn(["workflows", "instances", "describe", "approval", "nope"], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^✘ \(instance\.not_found\)/);
    const noWorkflow = await cairn(["workflows", "trigger", "nope"], env);
    expect(noWorkflow.code).toBe(1);
    expect(noWorkflow.stderr).toMatch(/workflow\.not_found/);

    const down = await cairn(["workflows", "list"], { CAIRN_URL: "http://127.0.0.1:9" });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("Cannot reach the Cairn server at http://127.0.0.1:9/api/v1/workflows");
  });

  it("exits 2 on usage errors without calling the server", async () => {
    const r = await cairn(["workflows", "trigger", "approval", "{oops"], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("params must be valid JSON");
    const unknown = await cairn(["workflows", "launch"], env);
    expect(unknown.code).toBe(2);
    expect((await api.getWorkflow("approval")).instances.queued).toBe(0);
  });
});

describe("cairn diagram", () => {
  const FILE = "packages/cli/test/fixtures/workflows.ts";

  it("prints Mermaid, JSON and SVG of one class", async () => {
    const mermaid = await cairn(["diagram", FILE, "--class", "Checkout", "--format", "mermaid"]);
    expect(mermaid.code, mermaid.stderr).toBe(0);
    expect(mermaid.stdout).toMatch(/^flowchart/);
    expect(mermaid.stdout).toContain("load order");
    const json = await cairn(["diagram", FILE, "--class", "Refund", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ version: 1, workflow: { class_name: "Refund" } });
    const all = await cairn(["diagram", FILE, "--format", "json"]);
    expect(
      JSON.parse(all.stdout).map((g: { workflow: { class_name: string } }) => g.workflow.class_name),
    ).toEqual(["Checkout", "Refund"]);
    const svg = await cairn(["diagram", FILE, "--class", "Checkout"]);
    expect(svg.stdout).toMatch(/^<svg/);
  });

  it("asks for --class when a file has several workflows, and fails clearly on a missing file", async () => {
    const several = await cairn(["diagram", FILE, "--format", "mermaid"]);
    expect(several.code).toBe(2);
    expect(several.stderr).toContain("defines 2 workflow classes (Checkout, Refund): pick one with --class");
    const r = await cairn(["diagram", "no/such/file.ts"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("No such file: no/such/file.ts");
  });
});
