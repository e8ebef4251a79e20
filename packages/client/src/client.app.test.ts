/**
 * The client against the real API app (@cairn/server's `createApi` over a Cairn engine), through
 * `app.fetch`: every method, the errors, paging and the event stream.
 */
import type { SubscribeEvent } from "@cairn/api";
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import { createApi } from "@cairn/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CairnClient, createClient } from "./index.ts";

class Approval extends WorkflowEntrypoint<unknown, { n?: number }> {
  async run(event: WorkflowEvent<{ n?: number }>, step: WorkflowStep) {
    const n = await step.do("double", async () => (event.payload.n ?? 0) * 2);
    const ok = await step.waitForEvent<{ by: string }>("approval", { type: "approved", timeout: "1 hour" });
    return { n, by: ok.payload.by };
  }
}

const TOKEN = "client-token";
let engine: Cairn;
let client: CairnClient;
let app: { fetch(request: Request): Response | Promise<Response> };

beforeAll(async () => {
  engine = await createCairn({
    store: ":memory:",
    workflows: [{ binding: "APPROVAL", name: "approval", class: Approval }],
  });
  app = createApi({ runtime: engine.runtime, token: TOKEN });
  client = createClient({ url: "http://cairn.test", token: TOKEN, fetch: (request) => app.fetch(request) });
});
afterAll(() => engine?.close());

async function until<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const waiting = (id: string) =>
  until(async () => {
    const d = await client.getInstance("approval", id);
    return d.status === "waiting" && d.steps.some((s) => s.type === "waitForEvent") ? d : undefined;
  }, `${id} waiting`);

describe("client against createApi", () => {
  it("lists and reads workflows", async () => {
    const [w] = await client.listWorkflows();
    expect(w).toMatchObject({ name: "approval", class_name: "Approval" });
    expect((await client.getWorkflow("approval")).instances.complete).toBe(0);
    await expect(client.getWorkflow("nope")).rejects.toMatchObject({
      status: 404,
      code: "workflow.not_found",
    });
  });

  it("reads a workflow's diagram graph, and 404 when the server has none", async () => {
    const graph = { version: 1, workflow: { class_name: "Approval", functions: {}, nodes: [] } };
    const withGraph = createApi({
      runtime: engine.runtime,
      graph: (n) => (n === "approval" ? graph : undefined),
    });
    const c = createClient({ url: "http://cairn.test", fetch: (request) => withGraph.fetch(request) });
    expect(await c.getGraph("approval")).toEqual(graph);
    await expect(client.getGraph("approval")).rejects.toMatchObject({ status: 404, code: "not_found" });
  });

  it("creates, pages, reads, controls and deletes instances", async () => {
    const created = await client.createInstance("approval", { instance_id: "a", params: { n: 21 } });
    expect(created).toMatchObject({ id: "a", workflow: "approval" });
    await expect(client.createInstance("approval", { instance_id: "a" })).rejects.toMatchObject({
      status: 409,
      code: "instance.already_exists",
    });
    const batch = await client.createBatch("approval", [
      { instance_id: "a" },
      { instance_id: "b" },
      { instance_id: "c" },
      { instance_id: "d" },
    ]);
    expect(batch.map((i) => i.id)).toEqual(["b", "c", "d"]);

    const first = await client.listInstances("approval", { per_page: 3 });
    expect(first.instances).toHaveLength(3);
    expect(first.cursor).toEqual(expect.any(String));
    const all: string[] = [];
    for await (const i of client.listAllInstances("approval", { per_page: 3, direction: "asc" }))
      all.push(i.id);
    expect(all).toEqual(["a", "b", "c", "d"]);

    const detail = await waiting("a");
    expect(detail.params).toEqual({ n: 21 });
    expect(detail.steps[0]).toMatchObject({ type: "step", label: "double-1", success: true, output: 42 });
    expect(await client.getStep("approval", "a", { name: "double-1" })).toMatchObject({
      status: "complete",
      output: 42,
    });

    expect((await client.pause("approval", "a")).status).toBe("paused");
    await client.resume("approval", "a");
    await waiting("a");
    await client.sendEvent("approval", "a", "approved", { by: "ana" });
    const done = await until(async () => {
      const d = await client.getInstance("approval", "a");
      return d.status === "complete" ? d : undefined;
    }, "a complete");
    expect(done.output).toEqual({ n: 42, by: "ana" });
    await expect(client.sendEvent("approval", "a", "approved", {})).rejects.toMatchObject({ status: 409 });

    await waiting("b");
    expect((await client.terminate("approval", "b")).status).toBe("terminated");
    await expect(client.terminate("approval", "b")).rejects.toMatchObject({
      code: "instance.cannot_terminate",
    });
    await client.restart("approval", "a", { name: "approval", type: "waitForEvent" });
    await waiting("a");

    const deleted = await client.deleteBatch("approval", ["b", "zz"]);
    expect(deleted.deleted).toEqual([{ id: "b" }]);
    expect(deleted.errors.map((e) => e.id)).toEqual(["zz"]);
    await expect(client.getInstance("approval", "b")).rejects.toMatchObject({
      status: 404,
      code: "instance.not_found",
    });
  });

  it("streams an instance's history, then live events, to completion", async () => {
    await client.createInstance("approval", { instance_id: "s", params: { n: 1 } });
    await waiting("s");
    const seen: SubscribeEvent[] = [];
    const stream = (async () => {
      for await (const e of client.subscribe("approval", "s")) seen.push(e);
    })();
    await until(async () => (seen.some((e) => e.type === "wait_started") ? true : undefined), "history");
    await client.sendEvent("approval", "s", "approved", { by: "bo" });
    await stream;
    const types = seen.map((e) => e.type);
    expect(types[0]).toBe("workflow_queued");
    expect(types).toContain("wait_completed");
    expect(types.at(-1)).toBe("workflow_completed");
    const ids = seen.map((e) => e.eventId);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    // resuming after an event id gives only what followed
    const after: number[] = [];
    const cut = ids[2]!;
    for await (const e of client.subscribe("approval", "s", { cursor: cut })) after.push(e.eventId);
    expect(after).toEqual(ids.filter((id) => id > cut));
  });

  it("rejects a wrong token and serves the OpenAPI document", async () => {
    const wrong = createClient({ url: "http://cairn.test", token: "nope", fetch: (r) => app.fetch(r) });
    await expect(wrong.listWorkflows()).rejects.toMatchObject({ status: 401, code: "unauthorized" });
    const doc = (await wrong.openapi()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).length).toBeGreaterThan(5);
  });
});
