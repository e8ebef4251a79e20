import { Agent, request as httpRequest } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";
import { type RunningServer, startServer } from "./index.ts";

let h: Harness;
let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await h?.close();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The local port of the socket the reply came on: equal ports mean the same connection. */
  localPort: number | undefined;
}

/**
 * One request with `node:http` over a real socket. `chunks` are written one by one without a
 * `Content-Length`, so Node sends them with `Transfer-Encoding: chunked`.
 */
function send(
  url: string,
  options: { method: string; headers?: Record<string, string>; chunks?: string[]; agent?: Agent },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method, headers: options.headers, agent: options.agent },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            localPort: req.socket?.localPort,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}

const json = { "content-type": "application/json" };

describe("HTTP transport", () => {
  it("reads chunked request bodies on every route with a body", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    const base = `${server.url}/api/v1/workflows`;
    const create = await send(`${base}/waiter/instances`, {
      method: "POST",
      headers: json,
      chunks: ['{"instance_id":', '"chunky"}'],
    });
    expect(create.headers["transfer-encoding"]).toBeUndefined();
    expect(create.status).toBe(201);
    expect(JSON.parse(create.body).result.id).toBe("chunky");

    const batch = await send(`${base}/waiter/instances/batch`, {
      method: "POST",
      headers: json,
      chunks: ['[{"instance_id":"b1"},', '{"instance_id":"b2"}]'],
    });
    expect(batch.status).toBe(201);
    expect(JSON.parse(batch.body).result.map((r: { id: string }) => r.id)).toEqual(["b1", "b2"]);

    await h.idle();
    const event = await send(`${base}/waiter/instances/chunky/events/go`, {
      method: "POST",
      headers: json,
      chunks: ['{"ok":', "true}"],
    });
    expect(event.status).toBe(200);
    await h.idle();
    expect((await h.cairn.runtime.instance("waiter", "chunky")).status).toBe("complete");

    const status = await send(`${base}/waiter/instances/b1/status`, {
      method: "PATCH",
      headers: json,
      chunks: ['{"status":', '"terminate"}'],
    });
    expect(status.status).toBe(200);
    expect(JSON.parse(status.body).result.status).toBe("terminated");

    const del = await send(`${base}/waiter/instances/batch/delete`, {
      method: "POST",
      headers: json,
      chunks: ['{"instances":', '["b1","b2"]}'],
    });
    expect(del.status).toBe(200);
    expect(JSON.parse(del.body).result.deleted).toEqual([{ id: "b1" }, { id: "b2" }]);
    expect(await h.cairn.store.instances.get("waiter", "b2")).toBeUndefined();
  });

  it("hands chunked bodies to the project's fetch handler as a standard Request", async () => {
    h = await harness();
    server = await startServer({
      app: h.app,
      port: 0,
      fetch: async (request) => {
        // A handler that copies the request (as Workers code often does) must be able to.
        const copy = new Request(request, { headers: { "x-copied": "1" } });
        return new Response(`${copy.headers.get("x-copied")} ${await copy.text()}`);
      },
    });
    const res = await send(`${server.url}/echo`, { method: "POST", chunks: ["a", "b", "c"] });
    expect(res.status).toBe(200);
    expect(res.body).toBe("1 abc");
  });

  it("refuses an oversize chunked body with 413", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    const big = "x".repeat(256 * 1024);
    const res = await send(`${server.url}/api/v1/workflows/echo/instances`, {
      method: "POST",
      headers: json,
      chunks: ['{"params":"', ...Array.from({ length: 5 }, () => big), '"}'],
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).errors[0].code).toBe("payload.too_large");
    expect(await h.cairn.store.instances.countByStatus()).toEqual([]);
  });

  for (const framing of ["content-length", "chunked"] as const)
    it(`answers the next request on a keep-alive connection after a 413 (${framing})`, async () => {
      h = await harness();
      server = await startServer({ app: h.app, port: 0 });
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const body = JSON.stringify({ params: "x".repeat(2 * 1024 * 1024) });
        const headers: Record<string, string> = { ...json };
        if (framing === "content-length") headers["content-length"] = String(Buffer.byteLength(body));
        const first = await send(`${server.url}/api/v1/workflows/echo/instances`, {
          method: "POST",
          headers,
          chunks: framing === "chunked" ? [body.slice(0, 1000), body.slice(1000)] : [body],
          agent,
        });
        expect(first.status).toBe(413);
        const second = await send(`${server.url}/api/v1/workflows/echo/instances`, {
          method: "POST",
          headers: json,
          chunks: ['{"instance_id":"after"}'],
          agent,
        });
        expect(second.status).toBe(201);
        expect(JSON.parse(second.body).result.id).toBe("after");
        // Either the body was drained and the connection kept, or the 413 said `Connection: close`.
        if (first.headers.connection !== "close") expect(second.localPort).toBe(first.localPort);
      } finally {
        agent.destroy();
      }
    });

  it("closes the connection after a 413 when the declared body is too long to drain", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // Headers only: the 413 comes before any of the 100 MiB is sent.
      const first = await new Promise<Reply>((resolve, reject) => {
        const req = httpRequest(
          `${server!.url}/api/v1/workflows/echo/instances`,
          { method: "POST", agent, headers: { ...json, "content-length": String(100 * 1024 * 1024) } },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => {
              body += c;
            });
            res.on("end", () => {
              req.destroy();
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body, localPort: undefined });
            });
          },
        );
        req.on("error", reject);
        req.flushHeaders();
      });
      expect(first.status).toBe(413);
      expect(first.headers.connection).toBe("close");
      expect(JSON.parse(first.body).errors[0].code).toBe("payload.too_large");
      const second = await send(`${server.url}/api/v1/workflows`, { method: "GET", agent });
      expect(second.status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it("answers 413 with Connection: close to a chunked body too long to drain", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    const result = await new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(
        `${server!.url}/api/v1/workflows/echo/instances`,
        { method: "POST", headers: json },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            body += c;
          });
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, localPort: undefined }),
          );
        },
      );
      // Writing on after the answer may fail once the server closes; the answer must come first.
      let answered = false;
      req.on("response", () => {
        answered = true;
      });
      req.on("error", (e) => {
        if (!answered) reject(e);
      });
      // 40 MiB in chunks, more than the limit plus MAX_DRAIN_BYTES.
      const chunk = "x".repeat(1024 * 1024);
      let sent = 0;
      const write = () => {
        while (sent < 40) {
          sent++;
          if (!req.write(chunk)) return void req.once("drain", write);
        }
        req.end();
      };
      write();
    });
    expect(result.status).toBe(413);
    expect(result.headers.connection).toBe("close");
    expect(JSON.parse(result.body).errors[0].code).toBe("payload.too_large");
  });

  it("keeps the connection after a 415 and after a fetch handler that ignores the body", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0, fetch: () => new Response("ignored") });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const body = "y".repeat(300 * 1024);
      const refused = await send(`${server.url}/api/v1/workflows/echo/instances`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        chunks: [body],
        agent,
      });
      expect(refused.status).toBe(415);
      const ignored = await send(`${server.url}/upload`, { method: "POST", chunks: [body, body], agent });
      expect(ignored.body).toBe("ignored");
      const next = await send(`${server.url}/api/v1/workflows/echo/instances`, {
        method: "POST",
        headers: json,
        chunks: ["{}"],
        agent,
      });
      expect(next.status).toBe(201);
      expect(new Set([refused.localPort, ignored.localPort, next.localPort]).size).toBe(1);
    } finally {
      agent.destroy();
    }
  });
});
