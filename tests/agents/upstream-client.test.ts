import { AgentClient, agentFetch } from "agents/client";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionsAgent, TestCallableAgent, TestStateAgent } from "./agents.ts";
import { closeAll, serve, until } from "./helpers.ts";

// Cloudflare's own client (the `agents` npm package, unmodified) talking to Cairn agents over a real socket.

const objects = [
  { binding: "TestStateAgent", class: TestStateAgent },
  { binding: "TestCallableAgent", class: TestCallableAgent },
  { binding: "ConnectionsAgent", class: ConnectionsAgent },
];

const clients: AgentClient<any, any>[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await closeAll();
});

function open<S = unknown>(host: string, options: Record<string, unknown>): AgentClient<any, S> {
  const c = new AgentClient<any, S>({ host, ...(options as any) });
  clients.push(c);
  return c;
}

describe("the upstream agents/client package against a Cairn agent", () => {
  it("gets identity (ready), state, calls methods and streams", async () => {
    const s = await serve(objects);
    const host = new URL(s.url).host;
    const identities: [string, string][] = [];
    const states: unknown[] = [];
    const c = open<{ count: number }>(host, {
      agent: "TestStateAgent",
      name: "e2e",
      onIdentity: (name: string, agent: string) => identities.push([name, agent]),
      onStateUpdate: (state: unknown, source: string) => states.push([state, source]),
    });
    await c.ready;
    expect(identities).toEqual([["e2e", "test-state-agent"]]);
    expect(c.identified).toBe(true);
    expect(await c.call("increment", [5])).toBe(5);
    await until(() => states.some(([st]: any) => st.count === 5));
    expect(states[0]).toEqual([{ count: 0, items: [] }, "server"]);

    const k = open(host, { agent: "TestCallableAgent", name: "e2e" });
    await k.ready;
    expect(await k.call("add", [20, 22])).toBe(42);
    expect(await (k.stub as any).asyncAdd(1, 2)).toBe(3);
    await expect(k.call("nope")).rejects.toThrow("Method nope does not exist");
    await expect(k.call("notCallable")).rejects.toThrow("Method notCallable is not callable");
    const chunks: unknown[] = [];
    const final = await new Promise((resolve, reject) => {
      k.call("stream", [3], {
        stream: { onChunk: (ch: unknown) => chunks.push(ch), onDone: resolve, onError: reject },
      }).catch(reject);
    });
    expect(chunks).toEqual([0, 1, 2]);
    expect(final).toBe("done");
    const errors: string[] = [];
    await k
      .call("streamThenError", [], {
        stream: { onChunk: (ch: unknown) => chunks.push(ch), onError: (e: string) => errors.push(e) },
      })
      .catch((e: Error) => errors.push(`rejected: ${e.message}`));
    await until(() => errors.length > 0);
    expect(errors[0]).toBe("it broke");
  });

  it("client setState reaches other clients (not echoed); a readonly client gets onStateUpdateError", async () => {
    const s = await serve(objects);
    const host = new URL(s.url).host;
    const seenB: unknown[] = [];
    const a = open<{ n: number }>(host, { agent: "ConnectionsAgent", name: "sync" });
    const b = open<{ n: number }>(host, {
      agent: "ConnectionsAgent",
      name: "sync",
      onStateUpdate: (st: unknown) => seenB.push(st),
    });
    await Promise.all([a.ready, b.ready]);
    a.setState({ n: 41 });
    await until(() => seenB.some((st: any) => st.n === 41));
    expect(await b.call("tryWrite")).toBe("written");
    const errors: string[] = [];
    const ro = open(host, {
      agent: "ConnectionsAgent",
      name: "sync",
      query: { readonly: "1" },
      onStateUpdateError: (e: string) => errors.push(e),
    });
    await ro.ready;
    ro.setState({ n: 0 });
    await until(() => errors.length > 0);
    expect(errors).toEqual(["Connection is readonly"]);
  });

  it("basePath: the Worker routes a custom path and the client learns the name from the identity frame", async () => {
    const { getAgentByName } = await import("@cairn/agents");
    const s = await serve(objects, {
      fetch: async (request, env) =>
        new URL(request.url).pathname.startsWith("/me")
          ? (await getAgentByName(env.TestCallableAgent, "session-7")).fetch(request)
          : new Response("nf", { status: 404 }),
    });
    const host = new URL(s.url).host;
    const c = open(host, { agent: "TestCallableAgent", basePath: "me" });
    await c.ready;
    expect(c.name).toBe("session-7");
    expect(await c.call("add", [1, 1])).toBe(2);
    // Plain HTTP on the same basePath reaches the agent's onRequest (default: 404 Not implemented).
    const res = await agentFetch({ agent: "TestCallableAgent", basePath: "me/x", host } as any);
    expect([res.status, await res.text()]).toEqual([404, "Not implemented"]);
  });

  it("agentFetch does plain HTTP to /agents/<agent>/<name>", async () => {
    const s = await serve(objects);
    const host = new URL(s.url).host;
    const res = await agentFetch({ agent: "ConnectionsAgent", name: "http", host } as any, {
      method: "POST",
    });
    expect(await res.json()).toEqual({
      path: "/agents/connections-agent/http",
      name: "http",
      method: "POST",
    });
  });
});
