import { request as httpRequest } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";
import { crossSite, hostAllowed, isJsonType, parseHostAllow } from "./guard.ts";
import { createApi, type RunningServer, startServer } from "./index.ts";

let h: Harness;
let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await h?.close();
});

/** A request over a real socket with exactly these headers (`Host` included, which fetch cannot set). */
function send(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; body: any; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, text });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const json = { "content-type": "application/json" };

describe("host checks (DNS rebinding)", () => {
  it("answers only loopback names and allowed hosts, on every path", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0, fetch: () => new Response("project") });
    const port = server.port;
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,

      `app.localhost:${port}`,
      `[::1]:${port}`,
      "127.0.0.2",
    ]) {
      expect((await send(`${server.url}/api/v1/workflows`, "GET", { host })).status, host).toBe(200);
      expect((await send(`${server.url}/`, "GET", { host })).text, host).toBe("project");
    }
    for (const host of [
      `evil.example:${port}`,
      "evil.example",
      `localhost.evil.example:${port}`,
      "10.0.0.1",
      "127.0.0.1.evil.example",
    ]) {
      const api = await send(`${server.url}/api/v1/workflows`, "GET", { host });
      expect(api.status, host).toBe(403);
      expect(api.body.errors[0].code).toBe("forbidden");
      const created = await send(
        `${server.url}/api/v1/workflows/echo/instances`,
        "POST",
        { host, ...json },
        "{}",
      );
      expect(created.status, host).toBe(403);
      expect((await send(`${server.url}/`, "GET", { host })).status, host).toBe(403);
    }
    expect((await send(`${server.url}/`, "GET", { host: "evil.example" })).body.errors[0].message).toBe(
      '(forbidden) Host "evil.example" is not allowed: this server answers loopback names and the hosts given with --host-allow (startServer\'s hostAllow)',
    );
    expect(await h.cairn.store.instances.countByStatus()).toEqual([]);
  });

  it("answers the hosts given in hostAllow, exactly or as *.domain", async () => {
    h = await harness();
    server = await startServer({
      app: h.app,
      port: 0,
      hostAllow: ["Cairn.Example", "*.dev.test", "10.1.2.3", "::2"],
    });
    const status = async (host: string) =>
      (await send(`${server!.url}/api/v1/workflows`, "GET", { host })).status;
    expect(await status("cairn.example")).toBe(200);
    expect(await status("cairn.example:8443")).toBe(200);
    expect(await status("a.dev.test")).toBe(200);
    expect(await status("a.b.dev.test:1")).toBe(200);
    expect(await status("10.1.2.3:80")).toBe(200);
    expect(await status("[::2]:80")).toBe(200);
    expect(await status("localhost")).toBe(200);
    expect(await status("dev.test")).toBe(403);
    expect(await status("xdev.test")).toBe(403);
    expect(await status("cairn.example.evil")).toBe(403);
  });

  it("answers any host on a wildcard address unless hostAllow is given", async () => {
    h = await harness({ token: "t" });
    const auth = { authorization: "Bearer t" };
    server = await startServer({ app: h.app, host: "0.0.0.0", port: 0 });
    const url = `http://127.0.0.1:${server.port}/api/v1/workflows`;
    expect((await send(url, "GET", { host: "my-machine.lan", ...auth })).status).toBe(200);
    await server.close();
    server = await startServer({ app: h.app, host: "0.0.0.0", port: 0, hostAllow: ["cairn.lan"] });
    const url2 = `http://127.0.0.1:${server.port}/api/v1/workflows`;
    expect((await send(url2, "GET", { host: "cairn.lan", ...auth })).status).toBe(200);
    expect((await send(url2, "GET", { host: "127.0.0.1", ...auth })).status).toBe(200);
    expect((await send(url2, "GET", { host: "my-machine.lan", ...auth })).status).toBe(403);
  });

  it("refuses bad hostAllow entries, naming them", async () => {
    h = await harness();
    for (const bad of ["http://cairn.example", "cairn.example:8080", "", "cairn.example/x", "*"])
      await expect(startServer({ app: h.app, port: 0, hostAllow: [bad] })).rejects.toThrow(
        `startServer: hostAllow: "${bad}" is not a host name`,
      );
    await expect(startServer({ app: h.app, port: 0, hostAllow: "x" as never })).rejects.toThrow(
      /expected a list of host names/,
    );
  });
});

describe("cross-site browser requests to the API", () => {
  it("refuses another site's Origin and Sec-Fetch-Site, and changes nothing", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    const own = `http://127.0.0.1:${server.port}`;
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const attempts: Record<string, string>[] = [
      { origin: "https://evil.example" },
      { origin: "null" },
      { origin: `http://localhost:${server.port}` },
      { origin: `http://127.0.0.1:${server.port + 1}` },
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site" },
      { "sec-fetch-site": "cross-site", origin: own },
    ];
    for (const headers of attempts) {
      const created = await send(
        `${own}/api/v1/workflows/echo/instances`,
        "POST",
        { ...json, ...headers },
        "{}",
      );
      expect(created.status, JSON.stringify(headers)).toBe(403);
      expect(created.body.errors[0].code).toBe("forbidden");
      const event = await send(
        `${own}/api/v1/workflows/waiter/instances/w/events/go`,
        "POST",
        { ...json, ...headers },
        "{}",
      );
      expect(event.status).toBe(403);
      const del = await send(
        `${own}/api/v1/workflows/waiter/instances/batch/delete`,
        "POST",
        { ...json, ...headers },
        JSON.stringify({ instances: ["w"] }),
      );
      expect(del.status).toBe(403);
      expect((await send(`${own}/api/v1/workflows`, "GET", headers)).status).toBe(403);
    }
    const refused = await send(`${own}/api/v1/workflows`, "GET", { origin: "https://evil.example" });
    expect(refused.body.errors[0].message).toBe(
      "(forbidden) Cross-site request refused (Origin: https://evil.example): the API answers browsers only from its own origin",
    );
    expect(await h.cairn.store.instances.countByStatus()).toEqual([
      { workflow: "waiter", status: "waiting", count: 1 },
    ]);

    // The same origin (the dashboard), a typed URL and non-browser clients are answered.
    for (const headers of [
      { origin: own },
      { "sec-fetch-site": "same-origin", origin: own },
      { "sec-fetch-site": "none" },
      {},
    ]) {
      const created = await send(
        `${own}/api/v1/workflows/echo/instances`,
        "POST",
        { ...json, ...headers },
        "{}",
      );
      expect(created.status, JSON.stringify(headers)).toBe(201);
    }
  });

  it("leaves the project's own routes to the project", async () => {
    h = await harness();
    server = await startServer({
      app: h.app,
      port: 0,
      fetch: async (request) => new Response(`got ${await request.text()}`),
    });
    const res = await send(
      `${server.url}/form`,
      "POST",
      { origin: "https://evil.example", "sec-fetch-site": "cross-site", "content-type": "text/plain" },
      "hello",
    );
    expect(res.status).toBe(200);
    expect(res.text).toBe("got hello");
  });
});

describe("JSON bodies", () => {
  it("refuses bodies that are not application/json with 415 and changes nothing", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0 });
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const base = `${server.url}/api/v1/workflows`;
    for (const type of [
      "text/plain",
      "text/plain;charset=UTF-8",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      undefined,
    ]) {
      const headers: Record<string, string> = type ? { "content-type": type } : {};
      const routes: [string, string, string][] = [
        ["POST", `${base}/echo/instances`, '{"instance_id":"x"}'],
        ["POST", `${base}/echo/instances/batch`, '[{"instance_id":"x"}]'],
        ["POST", `${base}/waiter/instances/w/events/go`, "{}"],
        ["PATCH", `${base}/waiter/instances/w/status`, '{"status":"terminate"}'],
        ["POST", `${base}/waiter/instances/batch/delete`, '{"instances":["w"]}'],
      ];
      for (const [method, url, body] of routes) {
        const res = await send(url, method, headers, body);
        expect(res.status, `${type} ${method} ${url}`).toBe(415);
        expect(res.body.errors[0]).toEqual({
          code: "unsupported_media_type",
          message: `(unsupported_media_type) Request body must be JSON sent with Content-Type: application/json, got ${type ? `"${type}"` : "no Content-Type"}`,
        });
      }
    }
    expect(await h.cairn.store.instances.countByStatus()).toEqual([
      { workflow: "waiter", status: "waiting", count: 1 },
    ]);
    // JSON types are read; an empty body needs no type.
    for (const type of ["application/json", "application/json; charset=utf-8", "application/vnd.api+json"])
      expect((await send(`${base}/echo/instances`, "POST", { "content-type": type }, "{}")).status).toBe(201);
    expect((await send(`${base}/echo/instances`, "POST", {})).status).toBe(201);
  });
});

describe("guard functions", () => {
  it("parses host patterns", () => {
    expect(parseHostAllow(["A.example", " *.b.example ", "::1", "[::2]", "10.0.0.1"])).toEqual([
      "a.example",
      "*.b.example",
      "[::1]",
      "[::2]",
      "10.0.0.1",
    ]);
  });

  it("matches hosts", () => {
    expect(hostAllowed(undefined, [])).toBe(true);
    expect(hostAllowed("localhost:1", [])).toBe(true);
    expect(hostAllowed("127.0.0.1", [])).toBe(true);
    expect(hostAllowed("[::1]:80", [])).toBe(true);
    expect(hostAllowed("[::1", [])).toBe(false);
    expect(hostAllowed("x.example", [])).toBe(false);
    expect(hostAllowed("x.example:99", ["x.example"])).toBe(true);
  });

  it("tells cross-site requests", () => {
    const host = "127.0.0.1:8787";
    expect(crossSite({ host, origin: undefined, secFetchSite: undefined })).toBeUndefined();
    expect(crossSite({ host, origin: "http://127.0.0.1:8787", secFetchSite: "same-origin" })).toBeUndefined();
    expect(crossSite({ host, origin: "http://evil", secFetchSite: undefined })).toBe("Origin: http://evil");
    expect(crossSite({ host, origin: "not a url", secFetchSite: undefined })).toBe("Origin: not a url");
    expect(crossSite({ host, origin: undefined, secFetchSite: "cross-site" })).toBe(
      "Sec-Fetch-Site: cross-site",
    );
  });

  it("tells JSON content types", () => {
    expect(isJsonType("application/json")).toBe(true);
    expect(isJsonType("Application/JSON; charset=utf-8")).toBe(true);
    expect(isJsonType("application/problem+json")).toBe(true);
    expect(isJsonType("text/json")).toBe(false);
    expect(isJsonType("text/plain")).toBe(false);
    expect(isJsonType(undefined)).toBe(false);
  });
});

describe("createApi alone", () => {
  it("refuses cross-site and non-JSON requests through app.request too", async () => {
    h = await harness();
    const app = createApi({ runtime: h.cairn.runtime });
    const res = await app.request("/api/v1/workflows/echo/instances", {
      method: "POST",
      headers: { origin: "https://evil.example", "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(403);
    const plain = await app.request("/api/v1/workflows/echo/instances", { method: "POST", body: "{}" });
    expect(plain.status).toBe(415);
  });
});
