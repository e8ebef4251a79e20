/**
 * Durable Objects in a Cloudflare project: wrangler's durable_objects and migrations, classes from
 * `cloudflare:workers`, RPC from a workflow, and WebSockets through the project's fetch handler on
 * Cairn's real HTTP server (a real `ws` client).
 */
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createApi, startServer } from "@cairn/server";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { makeProject, removeProject, waitFor } from "../fixtures/helpers.ts";
import { hostProject } from "./host.ts";
import { loadProject } from "./project.ts";

const EXAMPLE = fileURLToPath(new URL("../../../examples/workflows-status", import.meta.url));
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function copyExample(): string {
  const dir = mkdtempSync(join(tmpdir(), "cairn-wf-status-"));
  cpSync(EXAMPLE, dir, { recursive: true, filter: (src) => !/[\\/](\.cairn|node_modules)$/.test(src) });
  cleanup.push(() => removeProject(dir));
  return dir;
}

/** A ws client collecting JSON frames. */
async function connect(url: string) {
  const ws = new WebSocket(url);
  const frames: any[] = [];
  ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  cleanup.push(() => ws.close());
  return { ws, frames };
}

const wrangler = (extra: Record<string, unknown>) =>
  JSON.stringify({ name: "p", main: "index.ts", ...extra });
const DO_SOURCE = `import { DurableObject } from "cloudflare:workers";
export class Counter extends DurableObject { n() { return 1; } }
export default { fetch: () => new Response("ok") };`;

describe("Durable Objects in a wrangler project", () => {
  it("runs the workflows starter with its WebSocket status route unchanged", async () => {
    const dir = copyExample();
    const hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    cleanup.push(() => hosted.close());
    const started = await fetch(`${hosted.url}/api/workflow/start`, { method: "POST" }).then(
      (r) => r.json() as any,
    );
    expect(typeof started.instanceId).toBe("string");
    const { frames, ws } = await connect(
      `${hosted.url.replace("http", "ws")}/ws?instanceId=${started.instanceId}`,
    );
    // The object sends its state on connect, then one frame per step update (RPC from the workflow).
    await waitFor(() => frames[0], "the first frame");
    expect(frames[0]).toMatchObject({ type: "workflow_update", workflowStatus: "running" });
    await waitFor(
      () => (frames.at(-1)?.stepStatuses?.["wait for approval"] === "waiting" ? true : undefined),
      "the approval wait",
      20_000,
    );
    ws.send("ping");
    const count = frames.length;
    await waitFor(() => (frames.length > count ? true : undefined), "the reply to a message");
    const sent = await fetch(`${hosted.url}/api/workflow/event/${started.instanceId}`, {
      method: "POST",
      body: JSON.stringify({ approved: true }),
    }).then((r) => r.json() as any);
    expect(sent.success).toBe(true);
    const last = await waitFor(
      () => (frames.at(-1)?.workflowStatus === "completed" ? frames.at(-1) : undefined),
      "completion",
      20_000,
    );
    expect(last.stepStatuses).toEqual({
      "process data": "completed",
      "wait 2 seconds": "completed",
      "wait for approval": "completed",
      final: "completed",
    });
    // A WebSocket upgrade addressed to a foreign Host is refused like any request (DNS rebinding).
    const foreign = new WebSocket(`${hosted.url.replace("http", "ws")}/ws?instanceId=x`, {
      headers: { host: "rebound.example" },
    });
    foreign.on("error", () => {});
    const refused = await new Promise<number>((r) =>
      foreign.once("unexpected-response", (_q, res) => r(res.statusCode!)),
    );
    expect(refused).toBe(403);
    // Without Upgrade the route answers as the project wrote it.
    expect((await fetch(`${hosted.url}/ws?instanceId=x`)).status).toBe(426);
    const status = await fetch(`${hosted.url}/api/workflow/status/${started.instanceId}`).then(
      (r) => r.json() as any,
    );
    expect(status.status).toBe("complete");
  }, 40_000);

  it("refuses a binding whose class is not exported, naming it", async () => {
    const dir = makeProject({
      "wrangler.json": wrangler({
        durable_objects: { bindings: [{ name: "C", class_name: "Missing" }] },
        migrations: [{ tag: "v1", new_sqlite_classes: ["Missing"] }],
      }),
      "index.ts": DO_SOURCE,
    });
    cleanup.push(() => removeProject(dir));
    await expect(loadProject(dir)).rejects.toThrow(
      /^\(do\.class_not_found\) Missing: index\.ts does not export it \(Durable Object binding C in wrangler\.json\); exports: Counter, default$/,
    );
  });

  it("refuses a binding whose class has no migration, naming it", async () => {
    const dir = makeProject({
      "wrangler.json": wrangler({ durable_objects: { bindings: [{ name: "C", class_name: "Counter" }] } }),
      "index.ts": DO_SOURCE,
    });
    cleanup.push(() => removeProject(dir));
    await expect(loadProject(dir)).rejects.toThrow(/^\(do\.missing_migration\) Counter: /);
  });

  it("applies migrations once per store; a renamed class keeps its objects", async () => {
    const dir = makeProject({
      "wrangler.json": wrangler({
        durable_objects: { bindings: [{ name: "C", class_name: "Counter" }] },
        migrations: [{ tag: "v1", new_sqlite_classes: ["Counter"] }],
      }),
      "index.ts": `import { DurableObject } from "cloudflare:workers";
export class Counter extends DurableObject { async add() { const n = ((await this.ctx.storage.get("n")) ?? 0) + 1; await this.ctx.storage.put("n", n); return n; } }
export class Tally extends Counter {}
export default { fetch: () => new Response("ok") };`,
    });
    cleanup.push(() => removeProject(dir));
    let hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    expect(await (hosted.cairn.env.C as any).getByName("x").add()).toBe(1);
    await hosted.close();
    hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    expect(await (hosted.cairn.env.C as any).getByName("x").add()).toBe(2);
    await hosted.close();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      join(dir, "wrangler.json"),
      wrangler({
        durable_objects: { bindings: [{ name: "C", class_name: "Tally" }] },
        migrations: [
          { tag: "v1", new_sqlite_classes: ["Counter"] },
          { tag: "v2", renamed_classes: [{ from: "Counter", to: "Tally" }] },
        ],
      }),
    );
    hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    cleanup.push(() => hosted.close());
    expect(await (hosted.cairn.env.C as any).getByName("x").add()).toBe(3);
  });
});

describe("cairn dev", () => {
  it("serves the workflows starter's WebSocket route from the dev child process, unchanged", async () => {
    const { runDev } = await import("./dev.ts");
    const dir = copyExample();
    const lines: string[] = [];
    const dev = await runDev(dir, {
      port: 0,
      server: new URL("../../server/src/index.ts", import.meta.url).href,
      log: (l) => lines.push(l),
      output: () => {},
    });
    cleanup.push(() => dev.close());
    expect(lines[0]).toMatch(/^Cairn dev: workflows-starter-template \(my-workflow\) ready on /);
    const started = await fetch(`${dev.url}/api/workflow/start`, { method: "POST" }).then(
      (r) => r.json() as any,
    );
    const { frames } = await connect(`${dev.url.replace("http", "ws")}/ws?instanceId=${started.instanceId}`);
    await waitFor(
      () => (frames.at(-1)?.stepStatuses?.["process data"] === "completed" ? true : undefined),
      "a step update over the WebSocket",
      20_000,
    );
    expect(frames[0]).toMatchObject({ type: "workflow_update" });
  }, 60_000);
});
