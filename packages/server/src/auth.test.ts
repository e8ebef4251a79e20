import { API_PREFIX } from "@cairn/api";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";
import { bearerToken, isLoopback, tokenMatches } from "./auth.ts";

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const TOKEN = "s3cret-token";

async function request(path: string, init: RequestInit = {}) {
  const res = await h.app.request(`${API_PREFIX}${path}`, init);
  return { status: res.status, body: (await res.json()) as any };
}

describe("auth", () => {
  it("accepts the right bearer token", async () => {
    h = await harness({ token: TOKEN });
    const res = await request("/workflows", { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
  });

  it("refuses a missing or wrong token with 401 unauthorized, and changes nothing", async () => {
    h = await harness({ token: TOKEN });
    const cases: [string, RequestInit][] = [
      ["/workflows", {}],
      ["/workflows", { headers: { authorization: "Bearer wrong" } }],
      ["/workflows", { headers: { authorization: `Basic ${TOKEN}` } }],
      ["/workflows", { headers: { authorization: `Bearer ${TOKEN}x` } }],
      ["/workflows?token=" + TOKEN, {}],
      ["/nowhere", {}],
      ["/workflows/echo/instances", { method: "POST", body: JSON.stringify({ instance_id: "x" }) }],
      ["/workflows/echo/instances", { method: "POST", body: "{", headers: { authorization: "Bearer no" } }],
    ];
    for (const [path, init] of cases) {
      const res = await request(path, init);
      expect(res.status, path).toBe(401);
      expect(res.body.errors[0].code).toBe("unauthorized");
      expect(res.body.errors[0].message).toMatch(/^\(unauthorized\) (Missing|Invalid) bearer token$/);
    }
    expect(await h.cairn.store.instances.get("echo", "x")).toBeUndefined();
    expect(await h.cairn.store.instances.countByStatus()).toEqual([]);
  });

  it("lets event streams pass the token as ?token=", async () => {
    h = await harness({ token: TOKEN });
    await h.cairn.runtime.create("echo", { id: "e" });
    await h.idle();
    const ok = await h.app.request(`${API_PREFIX}/workflows/echo/instances/e/subscribe?token=${TOKEN}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toMatch(/text\/event-stream/);
    await ok.body?.cancel();
    const bad = await h.app.request(`${API_PREFIX}/workflows/echo/instances/e/subscribe?token=nope`);
    expect(bad.status).toBe(401);
  });

  it("serves the OpenAPI document without a token", async () => {
    h = await harness({ token: TOKEN });
    const res = await h.app.request(`${API_PREFIX}/openapi.json`);
    expect(res.status).toBe(200);
  });
});

describe("auth helpers", () => {
  it("compares tokens of any length", () => {
    expect(tokenMatches("a", "a")).toBe(true);
    expect(tokenMatches("a", "ab")).toBe(false);
    expect(tokenMatches(undefined, "a")).toBe(false);
    expect(tokenMatches("", "a")).toBe(false);
  });

  it("reads bearer tokens", () => {
    expect(bearerToken("Bearer abc")).toBe("abc");
    expect(bearerToken("bearer  abc ")).toBe("abc");
    expect(bearerToken("Basic abc")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it("knows loopback hosts", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "app.localhost"])
      expect(isLoopback(host), host).toBe(true);
    for (const host of ["0.0.0.0", "::", "192.168.1.2", "example.com", "10.0.0.1", "128.0.0.1"])
      expect(isLoopback(host), host).toBe(false);
  });
});
