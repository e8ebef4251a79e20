import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";
import { type RunningServer, serveDashboard, servesDashboard, startServer } from "./index.ts";

let dir: string;
let h: Harness | undefined;
let server: RunningServer | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cairn-dashboard-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>Cairn</title>");
  writeFileSync(join(dir, "assets", "app-123.js"), "console.log(1)");
  writeFileSync(join(dir, "favicon.svg"), "<svg/>");
  writeFileSync(join(tmpdir(), "cairn-dashboard-secret.txt"), "TOP-SECRET-CONTENT");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await server?.close();
  server = undefined;
  await h?.close();
  h = undefined;
});

describe("createApi({ dashboard })", () => {
  it("serves index.html at /_cairn/ and for every client route, never cached", async () => {
    h = await harness({ dashboard: { dir } });
    for (const path of [
      "/_cairn/",
      "/_cairn/workflows/echo",
      "/_cairn/workflows/echo/instances/a-1?step=x-1",
    ]) {
      const res = await h.app.request(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/html/);
      expect(res.headers.get("cache-control")).toBe("no-cache");
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
      expect(await res.text()).toContain("<title>Cairn</title>");
    }
  });

  it("serves hashed assets with a long cache life and 404 for missing ones", async () => {
    h = await harness({ dashboard: { dir } });
    const js = await h.app.request("/_cairn/assets/app-123.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    expect(js.headers.get("cache-control")).toContain("immutable");
    expect(await js.text()).toBe("console.log(1)");
    expect((await h.app.request("/_cairn/assets/missing.js")).status).toBe(404);
    const icon = await h.app.request("/_cairn/favicon.svg");
    expect(icon.headers.get("content-type")).toMatch(/svg/);
  });

  it("redirects / and /_cairn to /_cairn/", async () => {
    h = await harness({ dashboard: { dir } });
    const root = await h.app.request("/");
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/_cairn/");
    const bare = await h.app.request("/_cairn");
    expect(bare.headers.get("location")).toBe("/_cairn/");
  });

  it("does not serve files outside its directory", async () => {
    h = await harness({ dashboard: { dir } });
    for (const path of [
      "/_cairn/../cairn-dashboard-secret.txt",
      "/_cairn/%2e%2e/cairn-dashboard-secret.txt",
      "/_cairn/assets/..%2f..%2fcairn-dashboard-secret.txt",
    ]) {
      const res = await h.app.request(path);
      expect(await res.text(), path).not.toContain("TOP-SECRET-CONTENT");
    }
  });

  it("needs no token for the page while the API still does", async () => {
    h = await harness({ dashboard: { dir }, token: "tok" });
    expect((await h.app.request("/_cairn/")).status).toBe(200);
    expect((await h.app.request("/api/v1/workflows")).status).toBe(401);
  });

  it("answers 503 with the build command when the dashboard is not built", async () => {
    const empty = mkdtempSync(join(tmpdir(), "cairn-dashboard-empty-"));
    try {
      h = await harness({ dashboard: { dir: empty } });
      const res = await h.app.request("/_cairn/");
      expect(res.status).toBe(503);
      expect(await res.text()).toContain("npm run build -w @cairn/dashboard");
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("leaves / and /_cairn/ alone without the option", async () => {
    h = await harness();
    expect(servesDashboard(h.app)).toBe(false);
    expect((await h.app.request("/")).status).toBe(404);
    expect((await h.app.request("/_cairn/")).status).toBe(404);
  });

  it("serveDashboard mounts on any Hono app", async () => {
    const app = new Hono();
    serveDashboard(app, dir);
    expect(servesDashboard(app)).toBe(true);
    expect((await app.request("/_cairn/x")).status).toBe(200);
  });
});

describe("startServer with the dashboard", () => {
  it("without a fetch handler, redirects / to the dashboard over HTTP", async () => {
    h = await harness({ dashboard: { dir } });
    server = await startServer({ app: h.app, port: 0 });
    const res = await fetch(`${server.url}/`, { redirect: "manual" });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/_cairn/");
    const page = await fetch(`${server.url}/`);
    expect(page.url).toBe(`${server.url}/_cairn/`);
    expect(await page.text()).toContain("<title>Cairn</title>");
  });

  it("with a project's fetch handler, keeps / for it and serves /_cairn/ from the app", async () => {
    h = await harness({ dashboard: { dir } });
    server = await startServer({ app: h.app, port: 0, fetch: () => new Response("worker") });
    expect(await (await fetch(`${server.url}/`)).text()).toBe("worker");
    expect(await (await fetch(`${server.url}/_cairnish`)).text()).toBe("worker");
    expect(await (await fetch(`${server.url}/_cairn/workflows/echo`)).text()).toContain(
      "<title>Cairn</title>",
    );
  });

  it("sends /_cairn/ to the fetch handler when the app has no dashboard", async () => {
    h = await harness();
    server = await startServer({ app: h.app, port: 0, fetch: () => new Response("worker") });
    expect(await (await fetch(`${server.url}/_cairn/`)).text()).toBe("worker");
  });
});
