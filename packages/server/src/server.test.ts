import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness, sseReader } from "../test/support.ts";
import { createApi, type RunningServer, startServer } from "./index.ts";

let h: Harness;
let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await h?.close();
});

async function until(check: () => boolean) {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe("startServer", () => {
  it("serves the API over HTTP on a free port and hands other requests to fetch", async () => {
    h = await harness();
    const seen: string[] = [];
    server = await startServer({
      app: h.app,
      port: 0,
      fetch: async (request) => {
        seen.push(`${request.method} ${new URL(request.url).pathname}`);
        const body = request.method === "POST" ? await request.text() : "";
        return new Response(`worker says hi ${body}`, { headers: { "x-from": "worker" } });
      },
    });
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);

    const created = await fetch(`${server.url}/api/v1/workflows/echo/instances`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instance_id: "net", params: [1] }),
    });
    expect(created.status).toBe(201);
    expect(((await created.json()) as any).result.id).toBe("net");
    await h.idle();
    const detail = (await (await fetch(`${server.url}/api/v1/workflows/echo/instances/net`)).json()) as any;
    expect(detail.result).toMatchObject({ status: "complete", output: [1] });

    const worker = await fetch(`${server.url}/hello?x=1`);
    expect(await worker.text()).toBe("worker says hi ");
    expect(worker.headers.get("x-from")).toBe("worker");
    const posted = await fetch(`${server.url}/api/v1x`, { method: "POST", body: "payload" });
    expect(await posted.text()).toBe("worker says hi payload");
    expect(seen).toEqual(["GET /hello", "POST /api/v1x"]);

    const unknown = await fetch(`${server.url}/api/v1/nowhere`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as any).errors[0].code).toBe("not_found");
  });

  it("answers 404 outside the API without a fetch handler", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(404);
  });

  it("refuses oversize bodies over the network before reading them whole", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    const res = await fetch(`${server.url}/api/v1/workflows/echo/instances`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ params: "x".repeat(2 * 1024 * 1024) }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).errors[0].code).toBe("payload.too_large");
    expect(await h.cairn.store.instances.countByStatus()).toEqual([]);
  });

  it("streams events over HTTP and unsubscribes when the client disconnects", async () => {
    h = await harness({ token: "tok" });
    server = await startServer({ app: h.app, port: 0 });
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const controller = new AbortController();
    const res = await fetch(`${server.url}/api/v1/workflows/waiter/instances/w/subscribe?token=tok`, {
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const sse = sseReader(res.body!);
    expect((await sse.take(1))[0]!.event).toBe("workflow_queued");
    expect(h.listeners()).toBe(1);
    controller.abort();
    await until(() => h.listeners() === 0);
    const denied = await fetch(`${server.url}/api/v1/workflows`);
    expect(denied.status).toBe(401);
  });

  it("refuses a non-loopback host without a token, naming CAIRN_TOKEN", async () => {
    h = await harness();
    await expect(startServer({ app: h.app, host: "0.0.0.0", port: 0 })).rejects.toThrow(/CAIRN_TOKEN/);
    await expect(startServer({ app: h.app, host: "::", port: 0 })).rejects.toThrow(/CAIRN_TOKEN/);
    // With a token (on the app or given to startServer) it listens.
    server = await startServer({
      app: createApi({ runtime: h.cairn.runtime, token: "t" }),
      host: "0.0.0.0",
      port: 0,
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/api/v1/workflows`, {
      headers: { authorization: "Bearer t" },
    });
    expect(res.status).toBe(200);
    await server.close();
    server = await startServer({ app: h.app, host: "0.0.0.0", port: 0, token: "given" });
    const base = `http://127.0.0.1:${server.port}/api/v1`;
    expect((await fetch(`${base}/workflows`)).status).toBe(401);
    expect((await fetch(`${base}/workflows`, { headers: { authorization: "Bearer nope" } })).status).toBe(
      401,
    );
    expect((await fetch(`${base}/workflows`, { headers: { authorization: "Bearer given" } })).status).toBe(
      200,
    );
    expect((await fetch(`${base}/openapi.json`)).status).toBe(200);
    const denied = (await (await fetch(`${base}/workflows`)).json()) as any;
    expect(denied.errors[0].code).toBe("unauthorized");
    await server.close();
    server = undefined;
    await expect(
      startServer({ app: createApi({ runtime: h.cairn.runtime, token: "a" }), port: 0, token: "b" }),
    ).rejects.toThrow(/differs/);
  });

  it("reports a port that is taken", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    await expect(startServer({ app: h.app, port: server.port })).rejects.toThrow(/EADDRINUSE/);
  });
});
