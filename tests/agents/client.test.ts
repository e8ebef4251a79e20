import { getAgentByName } from "@cairn/agents";
import { AgentClient, agentFetch } from "@cairn/agents/client";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionsAgent, TestCallableAgent, TestStateAgent } from "./agents.ts";
import { closeAll, serve, until } from "./helpers.ts";

// Cairn's own client (cairnjs/agents/client), mirroring upstream's react-tests/client.test.ts and
// tests/client-timeout.test.ts.

const objects = [
  { binding: "TestCallableAgent", class: TestCallableAgent },
  { binding: "TestStateAgent", class: TestStateAgent },
  { binding: "ConnectionsAgent", class: ConnectionsAgent },
];
const clients: AgentClient<any>[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await closeAll();
});
const open = <S = unknown>(options: ConstructorParameters<typeof AgentClient<S>>[0]) => {
  const c = new AgentClient<S>(options);
  clients.push(c);
  return c;
};

describe("AgentClient", () => {
  it("connects to /agents/<kebab>/<name>, gets identity (ready), state both ways, calls and stubs", async () => {
    const s = await serve(objects);
    const host = new URL(s.url).host;
    const seen: unknown[] = [];
    const c = open<{ count: number; items: string[] }>({
      agent: "TestStateAgent",
      name: "c1",
      host,
      onStateUpdate: (st, src) => seen.push([st, src]),
    });
    await c.ready;
    expect([c.agent, c.name, c.identified]).toEqual(["test-state-agent", "c1", true]);
    expect(await c.call("increment", [3])).toBe(3);
    await until(() => c.state?.count === 3);
    c.setState({ count: 10, items: [] });
    expect(seen.at(-1)).toEqual([{ count: 10, items: [] }, "client"]);
    expect(await c.stub.getState!()).toEqual({ count: 10, items: [] });
    await expect(c.call("nope")).rejects.toThrow("Method nope does not exist");
  });

  it("streams, and applies no timeout to streaming calls", async () => {
    const s = await serve(objects);
    const c = open({ agent: "TestCallableAgent", host: new URL(s.url).host, defaultCallTimeout: 1 });
    await c.ready;
    const chunks: unknown[] = [];
    const final = await c.call("stream", [2], { stream: { onChunk: (x) => chunks.push(x) } });
    expect([chunks, final]).toEqual([[0, 1], "done"]);
  });

  it("times out with upstream's message; timeout: 0 waits", async () => {
    const s = await serve(objects);
    const c = open({ agent: "TestCallableAgent", host: new URL(s.url).host });
    await c.ready;
    await expect(c.call("sleep", [300], { timeout: 20 })).rejects.toThrow(
      "RPC call to sleep timed out after 20ms",
    );
    expect(await c.call("sleep", [50], { timeout: 0 })).toBe("slept");
  });

  it("close() rejects every pending call at once", async () => {
    const s = await serve(objects);
    const c = open({ agent: "TestCallableAgent", host: new URL(s.url).host });
    await c.ready;
    const a = c.call("sleep", [2000]);
    const b = c.call("sleep", [2000]);
    c.close();
    await expect(a).rejects.toThrow("Connection closed");
    await expect(b).rejects.toThrow("Connection closed");
  });

  it("on a transient close, calls already sent reject with Connection closed; the client reconnects", async () => {
    const s = await serve(objects);
    const c = open({
      agent: "TestCallableAgent",
      host: new URL(s.url).host,
      minReconnectionDelay: 10,
      maxReconnectionDelay: 20,
    });
    await c.ready;
    const inFlight = c.call("sleep", [1000]);
    await c.call("kick", [3000]);
    await expect(inFlight).rejects.toThrow("Connection closed");
    await c.ready;
    expect(await c.call("add", [1, 2])).toBe(3);
  });

  it("terminal close codes (4000–4999) stop reconnecting and set connectionError", async () => {
    const s = await serve(objects);
    const errors: unknown[] = [];
    const c = open({
      agent: "TestCallableAgent",
      host: new URL(s.url).host,
      onConnectionError: (e) => errors.push(e.message),
    });
    await c.ready;
    await c.call("kick", [4001]);
    await until(() => c.connectionError);
    expect(c.connectionError?.code).toBe(4001);
    expect(errors).toEqual(["Agent connection closed: kicked"]);
    expect(c.identified).toBe(false);
  });

  it("basePath: the identity frame names the agent; onIdentityChange when it differs after a reconnect", async () => {
    let n = 0;
    const s = await serve(objects, {
      fetch: async (request, env) =>
        (await getAgentByName(env.TestCallableAgent, `user-${++n}`)).fetch(request),
    });
    const changes: unknown[] = [];
    const c = open({
      agent: "TestCallableAgent",
      basePath: "me",
      host: new URL(s.url).host,
      minReconnectionDelay: 10,
      maxReconnectionDelay: 20,
      onIdentityChange: (...args) => changes.push(args),
    });
    await c.ready;
    expect(c.name).toBe("user-1");
    await c.call("kick", [3000]);
    await until(() => changes.length > 0);
    expect(changes[0]).toEqual(["user-1", "user-2", "test-callable-agent", "test-callable-agent"]);
  });

  it("agentFetch builds the agent's URL (and basePath)", async () => {
    const s = await serve(objects);
    const host = new URL(s.url).host;
    const r = await agentFetch({ agent: "ConnectionsAgent", name: "f", host, path: "x" });
    expect(await r.json()).toEqual({ path: "/agents/connections-agent/f/x", name: "f", method: "GET" });
  });
});
