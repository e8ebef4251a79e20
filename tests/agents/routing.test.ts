import { getAgentByName, routeAgentRequest } from "@cairn/agents";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionsAgent, PropsAgent, QuietAgent, TestCallableAgent } from "./agents.ts";
import { Client, closeAll, serve } from "./helpers.ts";

// Mirrors upstream's routing.test.ts, name-resolution.test.ts and basepath.test.ts.

const objects = [
  { binding: "ConnectionsAgent", class: ConnectionsAgent },
  { binding: "PropsAgent", class: PropsAgent },
  { binding: "MY_QUIET_AGENT", class: QuietAgent },
  { binding: "TestCallableAgent", class: TestCallableAgent },
];

afterEach(closeAll);

describe("routeAgentRequest", () => {
  it("returns null for paths that do not match and 400 Invalid request for an unknown binding", async () => {
    const s = await serve(objects);
    const r = (path: string, init?: RequestInit) =>
      routeAgentRequest(new Request(`http://x${path}`, init), s.env);
    expect(await r("/")).toBeNull();
    expect(await r("/other/connections-agent/a")).toBeNull();
    expect(await r("/agents")).toBeNull();
    expect(await r("/agents/connections-agent")).toBeNull();
    const bad = await r("/agents/no-such-agent/a");
    expect(bad?.status).toBe(400);
    expect(await bad?.text()).toBe("Invalid request");
    // The binding segment is the kebab-cased binding name, not the class name as written.
    expect((await r("/agents/ConnectionsAgent/a"))?.status).toBe(400);
  });

  it("kebab-cases binding names (MyAgent → my-agent, MY_AGENT → my-agent) and passes sub-paths and queries", async () => {
    const s = await serve(objects);
    const res = await routeAgentRequest(
      new Request("http://x/agents/connections-agent/room1/sub/path?q=1", { method: "POST" }),
      s.env,
    );
    expect(await res!.json()).toEqual({
      path: "/agents/connections-agent/room1/sub/path",
      name: "room1",
      method: "POST",
    });
    const quiet = await Client.open(`${s.wsUrl}/agents/my-quiet-agent/q`);
    const state = await quiet.next((f) => f.type === "cf_agent_state");
    expect(state.state).toEqual({ x: 1 });
  });

  it("honours a custom prefix", async () => {
    const s = await serve(objects);
    const req = new Request("http://x/api/v2/connections-agent/p");
    expect(await routeAgentRequest(req, s.env)).toBeNull();
    const res = await routeAgentRequest(req, s.env, { prefix: "api/v2" });
    expect((await res!.json()).name).toBe("p");
  });

  it("onBeforeRequest and onBeforeConnect can refuse or replace, and see the binding and name", async () => {
    const seen: unknown[] = [];
    const s = await serve(objects, {
      fetch: async (request, env) =>
        (await routeAgentRequest(request, env, {
          onBeforeRequest: (req, route) => {
            seen.push(route);
            if (new URL(req.url).searchParams.has("deny")) return new Response("denied", { status: 403 });
            return new Request(`${req.url.split("?")[0]}/rewritten`, req);
          },
          onBeforeConnect: (req, route) => {
            seen.push(route);
            if (new URL(req.url).searchParams.has("deny")) return new Response("no socket", { status: 401 });
          },
        })) ?? new Response("nf", { status: 404 }),
    });
    const denied = await fetch(`${s.url}/agents/connections-agent/h?deny=1`);
    expect(denied.status).toBe(403);
    const ok = await fetch(`${s.url}/agents/connections-agent/h`);
    expect((await ok.json()).path).toBe("/agents/connections-agent/h/rewritten");
    const refused = new Client(`${s.wsUrl}/agents/connections-agent/h?deny=1`);
    const status = await new Promise<number>((resolve) =>
      refused.ws.on("unexpected-response", (_req, res) => resolve(res.statusCode!)),
    );
    expect(status).toBe(401);
    expect(seen).toContainEqual({ className: "ConnectionsAgent", name: "h" });
  });

  it("adds CORS headers to plain responses and answers preflights, never on upgrades", async () => {
    const s = await serve(objects);
    const pre = await routeAgentRequest(
      new Request("http://x/agents/connections-agent/c", { method: "OPTIONS" }),
      s.env,
      { cors: true },
    );
    expect(pre!.headers.get("access-control-allow-origin")).toBe("*");
    const res = await routeAgentRequest(new Request("http://x/agents/connections-agent/c"), s.env, {
      cors: { "X-Extra": "1" },
    });
    expect(res!.headers.get("x-extra")).toBe("1");
  });

  it("passes props to onStart, once per load", async () => {
    const s = await serve(objects, {
      fetch: async (request, env) => (await routeAgentRequest(request, env, { props: { role: "admin" } }))!,
    });
    const c = await Client.open(`${s.wsUrl}/agents/props-agent/p1`);
    expect((await c.call("info")).result).toEqual({ started: 1, props: { role: "admin" } });
    const d = await Client.open(`${s.wsUrl}/agents/props-agent/p1`);
    expect((await d.call("info")).result).toEqual({ started: 1, props: { role: "admin" } });
  });
});

describe("getAgentByName", () => {
  it("returns a stub after onStart ran, with props, and its name", async () => {
    const s = await serve(objects);
    const stub = await getAgentByName<PropsAgent>(s.env.PropsAgent, "by-name", { props: { role: "reader" } });
    expect(await stub.rpcInfo()).toEqual({ started: 1, props: { role: "reader" }, name: "by-name" });
    await expect(getAgentByName(s.env.PropsAgent, "x".repeat(257))).rejects.toThrow(
      "getAgentByName: the name is 257 characters; at most 256 are allowed",
    );
  });

  it("custom routing (basePath): the Worker forwards any path and the identity frame names the agent", async () => {
    const s = await serve(objects, {
      fetch: async (request, env) => {
        const url = new URL(request.url);
        if (url.pathname === "/custom/chat")
          return (await getAgentByName(env.TestCallableAgent, "user-42")).fetch(request);
        return new Response("nf", { status: 404 });
      },
    });
    const c = await Client.open(`${s.wsUrl}/custom/chat`);
    expect(await c.next((f) => f.type === "cf_agent_identity")).toEqual({
      name: "user-42",
      agent: "test-callable-agent",
      type: "cf_agent_identity",
    });
    expect((await c.call("add", [1, 2])).result).toBe(3);
  });
});

describe("connections", () => {
  it("broadcast reaches every connection but those excluded; tags filter getConnections", async () => {
    const s = await serve(objects);
    const base = `${s.wsUrl}/agents/connections-agent/b`;
    const a = await Client.open(`${base}?_pk=a&role=admin`);
    const b = await Client.open(`${base}?_pk=b&role=admin`);
    const c = await Client.open(`${base}?_pk=c`);
    await c.next((f) => f.type === "cf_agent_mcp_servers");
    expect((await a.call("shout", ["hi", ["b"]])).result).toBe(3);
    await a.next((f) => f.type === "shout");
    await c.next((f) => f.type === "shout");
    expect((await a.call("tagged", ["admin"])).result).toEqual(["a", "b"]);
    expect((await a.call("tagged", ["c"])).result).toEqual(["c"]);
    // b saw no shout: its next shout is the one sent now, to everyone.
    await a.call("shout", ["again"]);
    expect((await b.next((f) => f.type === "shout")).text).toBe("again");
  });

  it("per-connection state is kept across hibernation (the agent unloaded and reloaded)", async () => {
    const s = await serve(objects, { idleTimeoutMs: 20 });
    const a = await Client.open(`${s.wsUrl}/agents/connections-agent/h?_pk=a&user=ann`);
    expect((await a.call("myState")).result).toEqual({ joined: "ann" });
    const stub = s.env.ConnectionsAgent.getByName("h");
    void stub;
    // Wait until the object is unloaded (idle), then talk again.
    for (let i = 0; i < 500 && s.host.listObjects("ConnectionsAgent").some((o) => o.loaded); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(s.host.listObjects("ConnectionsAgent").find((o) => o.name === "h")?.loaded).toBe(false);
    expect((await a.call("myState")).result).toEqual({ joined: "ann" });
  });

  it("readonly connections get Connection is readonly for state frames and setState; others are unaffected", async () => {
    const s = await serve(objects);
    const ro = await Client.open(`${s.wsUrl}/agents/connections-agent/r?_pk=ro&readonly=1`);
    const rw = await Client.open(`${s.wsUrl}/agents/connections-agent/r?_pk=rw`);
    ro.send({ type: "cf_agent_state", state: { n: 100 } });
    expect(await ro.next((f) => f.type === "cf_agent_state_error")).toEqual({
      type: "cf_agent_state_error",
      error: "Connection is readonly",
    });
    expect((await ro.call("tryWrite")).result).toBe("Connection is readonly");
    expect((await rw.call("tryWrite")).result).toBe("written");
    // Readonly connections still receive broadcasts.
    expect((await ro.next((f) => f.type === "cf_agent_state" && f.state.n === 1)).state).toEqual({ n: 1 });
    // The flag can be changed at run time, and it is not part of the connection's own state.
    expect((await rw.call("makeReadonly", ["ro", false])).result).toBe(false);
    expect((await ro.call("tryWrite")).result).toBe("written");
    expect((await ro.call("myState")).result).toEqual({ joined: "anon" });
  });

  it("sendIdentityOnConnect: false sends no identity; shouldSendProtocolMessages false sends no protocol frames", async () => {
    const s = await serve(objects);
    const q = await Client.open(`${s.wsUrl}/agents/my-quiet-agent/q`);
    await q.next((f) => f.type === "cf_agent_mcp_servers");
    expect(q.frames.map((f) => f.type)).toEqual(["cf_agent_state", "cf_agent_mcp_servers"]);
    const silent = await Client.open(`${s.wsUrl}/agents/connections-agent/p?protocol=0`);
    const loud = await Client.open(`${s.wsUrl}/agents/connections-agent/p`);
    expect((await silent.call("tryWrite")).result).toBe("written");
    await loud.next((f) => f.type === "cf_agent_state" && f.state.n === 1);
    expect(silent.frames.filter((f) => f.type?.startsWith("cf_"))).toEqual([]);
  });

  it("non-JSON text and binary frames reach onMessage; onClose sees the code", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/connections-agent/m?_pk=m1`);
    a.send("hello");
    expect(await a.next((f) => f.type === "echo")).toEqual({ type: "echo", message: "hello" });
    a.ws.send(Buffer.from([1, 2, 3]));
    expect(await a.next((f) => f.type === "binary")).toEqual({ type: "binary", bytes: 3 });
    a.send({ type: "custom", x: 1 });
    expect((await a.next((f) => f.type === "echo" && f.message.includes("custom"))).message).toBe(
      '{"type":"custom","x":1}',
    );
  });
});
