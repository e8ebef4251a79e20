import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { InstanceDetail, InstanceSummary, SubscribeEvent, WorkflowSummary } from "@cairn/api";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CairnApiError, createClient } from "./index.ts";

// A node:http server answering with recorded, contract-shaped responses.

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage["headers"];
  body: unknown;
}

type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

let server: Server;
let base: string;
let requests: Recorded[] = [];
let routes: Record<string, Handler> = {};

const ok = (result: unknown, result_info?: unknown) => ({
  success: true,
  errors: [],
  messages: [],
  result,
  ...(result_info ? { result_info } : {}),
});
const fail = (code: string, message: string) => ({
  success: false,
  errors: [{ code, message }],
  messages: [],
  result: null,
});
const json =
  (status: number, body: unknown): Handler =>
  (_req, res) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

const counts = {
  queued: 0,
  running: 1,
  paused: 0,
  errored: 0,
  terminated: 0,
  complete: 2,
  waiting: 0,
  waitingForPause: 0,
  unknown: 0,
};
const workflow: WorkflowSummary = {
  id: "checkout",
  name: "checkout",
  class_name: "Checkout",
  instances: counts,
  triggered_on: "2026-01-01T00:00:00.000Z",
};
const summary = (id: string): InstanceSummary => ({
  id,
  status: "running",
  workflow: "checkout",
  created_on: "2026-01-01T00:00:00.000Z",
  modified_on: "2026-01-01T00:00:01.000Z",
  started_on: "2026-01-01T00:00:00.500Z",
  ended_on: null,
});

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const u = new URL(req.url!, "http://x");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const recorded: Recorded = {
      method: req.method!,
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      headers: req.headers,
      body: text ? JSON.parse(text) : undefined,
    };
    requests.push(recorded);
    const handler = routes[`${req.method} ${u.pathname}`];
    if (!handler) return json(404, fail("not_found", `(not_found) no route ${u.pathname}`))(recorded, res);
    await handler(recorded, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  requests = [];
  routes = {};
});

describe("createClient", () => {
  it("unwraps envelopes, roots paths at /api/v1 and sends the token", async () => {
    routes["GET /api/v1/workflows"] = json(200, ok([workflow]));
    routes["GET /api/v1/workflows/checkout"] = json(200, ok(workflow));
    const client = createClient({ url: `${base}/`, token: "s3cret" });
    expect(client.baseUrl).toBe(`${base}/api/v1`);
    expect(await client.listWorkflows()).toEqual([workflow]);
    expect(await client.getWorkflow("checkout")).toEqual(workflow);
    expect(requests[0]!.headers.authorization).toBe("Bearer s3cret");
    // a URL that already names the API root is not doubled
    const again = createClient({ url: `${base}/api/v1` });
    await again.listWorkflows();
    expect(requests[2]!.path).toBe("/api/v1/workflows");
    expect(requests[2]!.headers.authorization).toBeUndefined();
  });

  it("creates instances one at a time and in batches", async () => {
    routes["POST /api/v1/workflows/checkout/instances"] = json(
      201,
      ok({ ...summary("a"), status: "queued" }),
    );
    routes["POST /api/v1/workflows/checkout/instances/batch"] = json(200, ok([summary("b")]));
    const client = createClient({ url: base });
    const created = await client.createInstance("checkout", { instance_id: "a", params: { n: 1 } });
    expect(created.id).toBe("a");
    expect(requests[0]!.body).toEqual({ instance_id: "a", params: { n: 1 } });
    expect(requests[0]!.headers["content-type"]).toBe("application/json");
    expect(await client.createBatch("checkout", [{ instance_id: "b" }, { instance_id: "a" }])).toEqual([
      summary("b"),
    ]);
    expect(requests[1]!.body).toEqual([{ instance_id: "b" }, { instance_id: "a" }]);
    await client.createInstance("checkout");
    expect(requests[2]!.body).toEqual({});
  });

  it("lists instances with filters and follows cursors", async () => {
    const pages: Record<string, unknown> = {
      "": ok([summary("1"), summary("2")], { cursor: "c2", per_page: 2, count: 2 }),
      c2: ok([summary("3"), summary("4")], { cursor: "c3", per_page: 2, count: 2 }),
      c3: ok([summary("5")], { per_page: 2, count: 1 }),
    };
    routes["GET /api/v1/workflows/checkout/instances"] = (req, res) =>
      json(200, pages[req.query.cursor ?? ""])(req, res);
    const client = createClient({ url: base });
    const first = await client.listInstances("checkout", {
      status: "running",
      per_page: 2,
      direction: "asc",
    });
    expect(first.instances.map((i) => i.id)).toEqual(["1", "2"]);
    expect(first.cursor).toBe("c2");
    expect(requests[0]!.query).toEqual({ status: "running", per_page: "2", direction: "asc" });

    requests = [];
    const ids: string[] = [];
    for await (const i of client.listAllInstances("checkout", { per_page: 2 })) ids.push(i.id);
    expect(ids).toEqual(["1", "2", "3", "4", "5"]);
    expect(requests.map((r) => r.query.cursor)).toEqual([undefined, "c2", "c3"]);
  });

  it("reads an instance and one step, encoding path segments", async () => {
    const detail: InstanceDetail = {
      ...summary("a b"),
      params: {},
      output: null,
      error: null,
      queued: "2026-01-01T00:00:00.000Z",
      start: "2026-01-01T00:00:00.500Z",
      end: null,
      success: null,
      step_count: 0,
      steps: [],
    };
    routes["GET /api/v1/workflows/checkout/instances/a%20b"] = json(200, ok(detail));
    routes["GET /api/v1/workflows/checkout/instances/a%20b/step"] = json(
      200,
      ok({ status: "complete", output: { big: "x" }, error: null }),
    );
    const client = createClient({ url: base });
    expect(await client.getInstance("checkout", "a b")).toEqual(detail);
    expect(await client.getStep("checkout", "a b", { name: "load order-1", type: "step" })).toEqual({
      status: "complete",
      output: { big: "x" },
      error: null,
    });
    expect(requests[1]!.query).toEqual({ name: "load order-1", type: "step" });
  });

  it("changes status, sends events and deletes", async () => {
    routes["PATCH /api/v1/workflows/checkout/instances/a/status"] = (req, res) =>
      json(
        200,
        ok({
          status: (req.body as { status: string }).status === "pause" ? "paused" : "queued",
          timestamp: "t",
        }),
      )(req, res);
    routes["POST /api/v1/workflows/checkout/instances/a/events/approved"] = json(200, ok(null));
    routes["POST /api/v1/workflows/checkout/instances/batch/delete"] = json(
      200,
      ok({ deleted: [{ id: "a" }], errors: [{ id: "zz", code: 404, message: "(instance.not_found) zz" }] }),
    );
    const client = createClient({ url: base });
    expect(await client.pause("checkout", "a")).toEqual({ status: "paused", timestamp: "t" });
    await client.resume("checkout", "a");
    await client.terminate("checkout", "a");
    await client.restart("checkout", "a");
    await client.restart("checkout", "a", { name: "load", count: 2, type: "do" });
    expect(requests.map((r) => r.body)).toEqual([
      { status: "pause" },
      { status: "resume" },
      { status: "terminate" },
      { status: "restart" },
      { status: "restart", from: { name: "load", count: 2, type: "do" } },
    ]);
    requests = [];
    await client.sendEvent("checkout", "a", "approved", { by: "ana" });
    expect(requests[0]!.body).toEqual({ by: "ana" });
    const deleted = await client.deleteBatch("checkout", ["a", "zz"]);
    expect(deleted.deleted).toEqual([{ id: "a" }]);
    expect(requests[1]!.body).toEqual({ instances: ["a", "zz"] });
  });

  it("throws CairnApiError with the envelope's code and message", async () => {
    routes["GET /api/v1/workflows/checkout/instances/nope"] = json(
      404,
      fail("instance.not_found", "(instance.not_found) Instance nope not found"),
    );
    routes["GET /api/v1/workflows"] = json(401, fail("unauthorized", "(unauthorized) Missing or bad token"));
    const client = createClient({ url: base });
    const e = await client.getInstance("checkout", "nope").catch((x) => x);
    expect(e).toBeInstanceOf(CairnApiError);
    expect(CairnApiError.is(e)).toBe(true);
    expect(e).toMatchObject({
      status: 404,
      code: "instance.not_found",
      message: "(instance.not_found) Instance nope not found",
    });
    await expect(client.listWorkflows()).rejects.toMatchObject({ status: 401, code: "unauthorized" });
  });

  it("throws on responses that are not envelopes", async () => {
    routes["GET /api/v1/workflows"] = (_req, res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end("<h1>Bad gateway</h1>");
    };
    const client = createClient({ url: base });
    const e = await client.listWorkflows().catch((x) => x);
    expect(e).toMatchObject({ status: 502, code: "http" });
    expect(e.message).toContain("HTTP 502");
  });

  it("names the URL when the server is unreachable", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const client = createClient({ url: `http://127.0.0.1:${port}` });
    const e = await client.listWorkflows().catch((x) => x);
    expect(e).toBeInstanceOf(CairnApiError);
    expect(e.code).toBe("network");
    expect(e.status).toBe(0);
    expect(e.message).toContain(`http://127.0.0.1:${port}/api/v1/workflows`);
    expect(e.message).toContain("ECONNREFUSED");
  });

  it("rejects a URL that does not parse", () => {
    expect(() => createClient({ url: "localhost 8787" })).toThrow(/Not a URL/);
  });

  it("uses a custom fetch (e.g. an in-process app)", async () => {
    const seen: string[] = [];
    const client = createClient({
      url: "http://in-process",
      fetch: async (request) => {
        seen.push(`${request.method} ${new URL(request.url).pathname}`);
        return Response.json(ok([]));
      },
    });
    expect(await client.listWorkflows()).toEqual([]);
    expect(seen).toEqual(["GET /api/v1/workflows"]);
  });

  it("fetches the OpenAPI document", async () => {
    routes["GET /api/v1/openapi.json"] = json(200, { openapi: "3.1.0", info: { title: "Cairn" } });
    const client = createClient({ url: base });
    expect(await client.openapi()).toEqual({ openapi: "3.1.0", info: { title: "Cairn" } });
  });
});

describe("subscribe", () => {
  const event = (eventId: number, type: SubscribeEvent["type"]): SubscribeEvent => ({
    type,
    instanceId: "a",
    eventId,
    timestamp: 1_700_000_000_000 + eventId,
  });
  const frame = (e: SubscribeEvent) =>
    `event: ${e.type}\r\nid: ${e.eventId}\r\ndata: ${JSON.stringify(e)}\r\n\r\n`;

  it("parses server-sent events split across chunks and stops after a final event", async () => {
    routes["GET /api/v1/workflows/checkout/instances/a/subscribe"] = async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const text = `: hello\n\n${frame(event(1, "workflow_queued"))}${frame(event(2, "workflow_started"))}${frame(event(3, "workflow_completed"))}`;
      for (let i = 0; i < text.length; i += 7) {
        res.write(text.slice(i, i + 7));
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    };
    const client = createClient({ url: base });
    const types: string[] = [];
    for await (const e of client.subscribe("checkout", "a")) types.push(e.type);
    expect(types).toEqual(["workflow_queued", "workflow_started", "workflow_completed"]);
    expect(requests).toHaveLength(1);
  });

  it("reconnects with the last event id as cursor when the stream drops", async () => {
    let connections = 0;
    routes["GET /api/v1/workflows/checkout/instances/a/subscribe"] = (req, res) => {
      connections++;
      res.writeHead(200, { "content-type": "text/event-stream" });
      if (connections === 1) {
        res.end(`retry: 10\n\n${frame(event(4, "workflow_started"))}${frame(event(5, "step_started"))}`);
      } else {
        const after = Number(req.query.cursor);
        // a server that replays one old event must not produce a duplicate
        res.end(
          [event(5, "step_started"), event(6, "step_completed"), event(7, "workflow_completed")]
            .filter((e) => e.eventId >= after)
            .map(frame)
            .join(""),
        );
      }
    };
    const client = createClient({ url: base });
    const ids: number[] = [];
    for await (const e of client.subscribe("checkout", "a", { cursor: 3 })) ids.push(e.eventId);
    expect(ids).toEqual([4, 5, 6, 7]);
    expect(requests.map((r) => r.query.cursor)).toEqual(["3", "5"]);
  });

  it("stops when the consumer breaks or the signal aborts", async () => {
    routes["GET /api/v1/workflows/checkout/instances/a/subscribe"] = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(frame(event(1, "workflow_queued")));
      // never ends
    };
    const client = createClient({ url: base });
    for await (const e of client.subscribe("checkout", "a")) {
      expect(e.eventId).toBe(1);
      break;
    }
    const controller = new AbortController();
    const seen: number[] = [];
    for await (const e of client.subscribe("checkout", "a", { signal: controller.signal })) {
      seen.push(e.eventId);
      controller.abort();
    }
    expect(seen).toEqual([1]);
  });

  it("throws the server's error instead of a stream", async () => {
    routes["GET /api/v1/workflows/checkout/instances/nope/subscribe"] = json(
      404,
      fail("instance.not_found", "(instance.not_found) Instance nope not found"),
    );
    const client = createClient({ url: base });
    const iterate = async () => {
      for await (const _ of client.subscribe("checkout", "nope")) {
        /* nothing */
      }
    };
    await expect(iterate()).rejects.toMatchObject({ status: 404, code: "instance.not_found" });
  });
});
