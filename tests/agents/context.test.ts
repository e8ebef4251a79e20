import { afterEach, describe, expect, it } from "vitest";
import { ContextAgent, TestCallableAgent } from "./agents.ts";
import { Client, closeAll, serve } from "./helpers.ts";

// getCurrentAgent() (AsyncLocalStorage) in calls that reach an agent by a stub, as upstream's
// auto-wrapped custom methods give it.

const objects = [
  { binding: "ContextAgent", class: ContextAgent },
  { binding: "TestCallableAgent", class: TestCallableAgent },
];

afterEach(closeAll);

const only = (name: string) => ({ agent: name, isThis: true, connection: null, request: null, email: null });

describe("getCurrentAgent()", () => {
  it("inside a method called by stub RPC from outside any agent gives that agent", async () => {
    const s = await serve(objects);
    const stub = s.env.ContextAgent.getByName("rpc");
    expect(await stub.whoAmI()).toEqual(only("rpc"));
    expect(await stub.whoAmIAsync()).toEqual(only("rpc"));
    expect(await stub.later()).toEqual(only("rpc"));
  });

  it("an agent calling another by stub: the callee sees itself, without the caller's connection", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/context-agent/caller?_pk=conn-1`);
    const r = (await c.call("askOther", ["callee"])).result;
    expect(r).toEqual({
      mine: { agent: "caller", isThis: true, connection: "conn-1", request: null, email: null },
      theirs: only("callee"),
    });
    c.close();
  });

  it("a plain method called from the agent's own handler keeps the handler's connection or request", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/context-agent/self?_pk=conn-2`);
    expect((await c.call("viaHelper")).result).toEqual({
      agent: "self",
      isThis: true,
      connection: "conn-2",
      request: null,
      email: null,
    });
    c.close();
    const r = await fetch(`${s.url}/agents/context-agent/self/some/path`);
    expect(await r.json()).toEqual({
      agent: "self",
      isThis: true,
      connection: null,
      request: "/agents/context-agent/self/some/path",
      email: null,
    });
  });

  it("outside any agent it gives all four undefined; wrapping keeps callable metadata and names", async () => {
    const { getCurrentAgent } = await import("@cairn/agents");
    expect(getCurrentAgent()).toEqual({
      agent: undefined,
      connection: undefined,
      request: undefined,
      email: undefined,
    });
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/test-callable-agent/meta`);
    const methods = new Map((await c.call("methods")).result as [string, unknown][]);
    expect(methods.get("overridden")).toEqual({ description: "subclass version" });
    expect(methods.get("baseMethod")).toEqual({ description: "from the base" });
    expect(methods.has("notCallable")).toBe(false);
    expect((await c.call("notCallable")).error).toBe("Method notCallable is not callable");
    expect(ContextAgent.prototype.whoAmI.name).toBe("whoAmI");
    c.close();
  });
});
