/** `GET /api/v1/agents` and `cairn agents list`, against a real Cairn with agents, a socket and a workflow. */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, routeAgentRequest } from "@cairn/agents";
import { run } from "@cairn/cli/main";
import { upgradeListener } from "@cairn/objects";
import { createApi, openApiDocument } from "@cairn/server";
import { createCairn } from "cairnjs";
import { afterEach, describe, expect, it } from "vitest";
import { Client, until } from "./helpers.ts";
import { reports, TaskAgent, TaskWorkflow } from "./workflow-agents.ts";

class OpsAgent extends Agent<Record<string, unknown>, { note: string; n: number }> {
  override initialState = { note: "", n: 0 };
  async plan(note: string): Promise<string> {
    this.setState({ note, n: this.state.n + 1 });
    const s = await this.schedule(3600, "tick", { why: "later" });
    await this.scheduleEvery(60, "tick");
    return s.id;
  }
  async tick(): Promise<void> {}
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  reports.length = 0;
});

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-agents-ops-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const cairn = await createCairn({
    store: join(dir, "cairn.db"),
    workflows: [{ binding: "TASK_WORKFLOW", name: "task", class: TaskWorkflow }],
    objects: [
      { binding: "OpsAgent", class: OpsAgent },
      { binding: "TaskAgent", class: TaskAgent },
    ],
  });
  cleanups.push(() => cairn.close());
  const env = cairn.env as Record<string, any>;
  const handle = async (request: Request) =>
    (await routeAgentRequest(request, env)) ?? new Response("Not found", { status: 404 });
  const server = createServer((_req, res) => res.writeHead(404).end());
  const connections = new Set<any>();
  server.on("upgrade", upgradeListener(handle, { connections }));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(async () => {
    for (const c of connections) c.terminate();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const wsUrl = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const app = createApi({ runtime: cairn.runtime, objects: cairn.objects });
  return { cairn, env, app, wsUrl };
}

async function cli(argv: string[], app: { fetch(r: Request): Response | Promise<Response> }) {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: {},
    fetch: (r) => app.fetch(r),
    utc: true,
  });
  return { code, stdout, stderr };
}

describe("agents operations", () => {
  it("lists agents with connections, state JSON, schedules and tracked workflows", async () => {
    const { env, app, wsUrl } = await setup();
    const scheduleId: string = await env.OpsAgent.getByName("alice").plan("<b>hi</b>");
    const client = await Client.open(`${wsUrl}/agents/ops-agent/alice`);
    cleanups.push(() => client.close());
    await client.next((f) => f.type === "cf_agent_state");
    const workflowId: string = await env.TaskAgent.getByName("t").start({ task: "x" });
    await until(
      () => reports.find((r) => r.kind === "complete" && r.workflowId === workflowId),
      "completion",
    );

    // The hook runs inside the agent's event; its tracking row is committed when the event ends.
    const list = async () => {
      const response = await app.request("/api/v1/agents");
      expect(response.status).toBe(200);
      return ((await response.json()) as any).result as any[];
    };
    const agents = await until(async () => {
      const all = await list();
      return all.find((a) => a.name === "t")?.workflows[0]?.status === "complete" ? all : undefined;
    }, "the tracking row committed as complete");
    const alice = agents.find((a) => a.name === "alice");
    expect(alice).toMatchObject({
      binding: "OpsAgent",
      className: "OpsAgent",
      connections: 1,
      workflows: [],
    });
    expect(alice.id).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(alice.state)).toEqual({ note: "<b>hi</b>", n: 1 });
    expect(alice.schedules).toHaveLength(2);
    expect(alice.schedules.find((s: any) => s.id === scheduleId)).toMatchObject({
      callback: "tick",
      type: "delayed",
      delayInSeconds: 3600,
      running: false,
    });
    expect(alice.schedules.find((s: any) => s.type === "interval")).toMatchObject({ intervalSeconds: 60 });

    const t = agents.find((a) => a.name === "t");
    expect(t).toMatchObject({ className: "TaskAgent", connections: 0 });
    expect(t.workflows).toHaveLength(1);
    expect(t.workflows[0]).toMatchObject({
      workflowId,
      workflowName: "TASK_WORKFLOW",
      workflow: "task",
      status: "complete",
    });
    expect(typeof t.workflows[0].completedAt).toBe("number");

    // One namespace only, by binding; an unknown one is a 404 naming it; a bad limit names the field.
    const only = ((await (await app.request("/api/v1/agents?namespace=TaskAgent")).json()) as any).result;
    expect(only.map((a: any) => a.name)).toEqual(["t"]);
    const missing = await app.request("/api/v1/agents?namespace=Nope");
    expect(missing.status).toBe(404);
    expect(JSON.stringify(await missing.json())).toContain("No Durable Object namespace Nope");
    const bad = await app.request("/api/v1/agents?limit=0");
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain("limit");

    // The CLI shows the same.
    const table = await cli(["agents", "list"], app);
    expect(table).toMatchObject({ code: 0, stderr: "" });
    expect(table.stdout).toMatch(/OpsAgent\s+alice\s+1\s+2\s+-/);
    expect(table.stdout).toContain(`${workflowId} (complete)`);
    const json = await cli(["agents", "list", "OpsAgent", "--json"], app);
    expect(JSON.parse(json.stdout).map((a: any) => a.name)).toEqual(["alice"]);
    const unknown = await cli(["agents", "list", "Nope"], app);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("No Durable Object namespace Nope");
  });

  it("is in the OpenAPI document, and lists nothing without objects", async () => {
    const doc = openApiDocument() as any;
    expect(doc.paths["/agents"].get.operationId).toBe("listAgents");
    const dir = mkdtempSync(join(tmpdir(), "cairn-agents-ops-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const cairn = await createCairn({ store: join(dir, "cairn.db") });
    cleanups.push(() => cairn.close());
    const app = createApi({ runtime: cairn.runtime });
    expect(((await (await app.request("/api/v1/agents")).json()) as any).result).toEqual([]);
  });
});
