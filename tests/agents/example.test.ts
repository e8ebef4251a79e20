/**
 * Cloudflare's Agents workflows example (tests/cloudflare-fixtures/agents-workflows, unchanged
 * server code) under Cairn's project host, as `cairn dev` runs it: `agents` and `agents/workflows`
 * resolve to Cairn's modules, `@callable()` compiles through the project loader, and Cloudflare's
 * own `agents/client` drives it over a real WebSocket. A project without a fetch handler gets
 * `/agents/*` routed by Cairn.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { hostProject } from "@cairn/compat";
import { createApi, startServer } from "@cairn/server";
import { AgentClient } from "agents/client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Client, until } from "./helpers.ts";

const EXAMPLE = fileURLToPath(new URL("../cloudflare-fixtures/agents-workflows", import.meta.url));
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  vi.restoreAllMocks();
});

function tempProject(): string {
  const dir = mkdtempSync(join(tmpdir(), "cairn-agents-example-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe("an Agents project written for Cloudflare", () => {
  it("runs the workflows example unchanged: submit, progress, approval, completion", async () => {
    const dir = tempProject();
    cpSync(EXAMPLE, dir, { recursive: true, filter: (src) => !/[\\/](\.cairn|node_modules)$/.test(src) });
    // The example fails its steps at random on purpose; this run takes the happy path.
    vi.spyOn(Math, "random").mockReturnValue(0.99);
    const hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    cleanup.push(() => hosted.close());
    const host = new URL(hosted.url).host;
    const updates: any[] = [];
    const client = new AgentClient({ agent: "TaskAgent", name: "demo", host });
    cleanup.push(() => client.close());
    client.addEventListener("message", (e: MessageEvent) => {
      try {
        updates.push(JSON.parse(String(e.data)));
      } catch {}
    });
    await client.ready;
    expect(client.agent).toBe("task-agent");
    const item = await client.call<any>("submitTask", ["write the report"]);
    expect(item).toMatchObject({ taskName: "write the report", status: "queued" });
    const id: string = item.workflowId;
    await until(
      () =>
        updates.find(
          (u) => u.type === "workflow:updated" && u.workflowId === id && u.updates?.waitingForApproval,
        ),
      "the approval gate",
    );
    await client.call("approve", [id, "looks good"]);
    await until(
      () =>
        updates.find(
          (u) => u.type === "workflow:updated" && u.workflowId === id && u.updates?.status === "complete",
        ),
      "completion",
    );
    const page = await client.call<any>("listWorkflows", []);
    expect(page.total).toBe(1);
    expect(page.workflows[0]).toMatchObject({
      workflowId: id,
      status: "complete",
      taskName: "write the report",
    });
    // The instance is a Cairn workflow instance, visible to the API.
    const api = await fetch(`${hosted.url}/api/v1/workflows/task-processing-workflow/instances/${id}`).then(
      (r) => r.json() as any,
    );
    expect(api.result.status).toBe("complete");
  });

  it("without a fetch handler, /agents/* is routed to the agents and other paths answer 404", async () => {
    const dir = tempProject();
    writeFileSync(
      join(dir, "wrangler.jsonc"),
      JSON.stringify({
        name: "bare",
        main: "index.ts",
        durable_objects: { bindings: [{ name: "Greeter", class_name: "Greeter" }] },
        migrations: [{ tag: "v1", new_sqlite_classes: ["Greeter"] }],
      }),
    );
    writeFileSync(
      join(dir, "index.ts"),
      `import { Agent, callable } from "agents";
export class Greeter extends Agent<unknown, { greeted: number }> {
  initialState = { greeted: 0 };
  @callable() greet(who: string) { this.setState({ greeted: this.state.greeted + 1 }); return \`hello \${who}\`; }
  onRequest() { return new Response("greeter " + this.name); }
}
`,
    );
    const hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    cleanup.push(() => hosted.close());
    expect(await fetch(`${hosted.url}/agents/greeter/bob`).then((r) => r.text())).toBe("greeter bob");
    expect((await fetch(`${hosted.url}/elsewhere`)).status).toBe(404);
    expect((await fetch(`${hosted.url}/agents/nobody/x`)).status).toBe(400);
    const c = await Client.open(`${hosted.url.replace("http", "ws")}/agents/greeter/bob`);
    cleanup.push(() => c.close());
    expect(await c.call("greet", ["ann"])).toMatchObject({ result: "hello ann", success: true });
    expect((await c.next((f) => f.type === "cf_agent_state" && f.state.greeted === 1)).state).toEqual({
      greeted: 1,
    });
  });
});
