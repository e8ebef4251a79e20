import { afterEach, describe, expect, it } from "vitest";
import { BothHooksAgent, events, NoInitialStateAgent, TestStateAgent } from "./agents.ts";
import { Client, closeAll, serve, until } from "./helpers.ts";

// Mirrors upstream's packages/agents/src/tests/state.test.ts on Cairn's Durable Object host.

const objects = [
  { binding: "TestStateAgent", class: TestStateAgent },
  { binding: "NoInitialStateAgent", class: NoInitialStateAgent },
  { binding: "BothHooksAgent", class: BothHooksAgent },
];

afterEach(async () => {
  await closeAll();
  events.length = 0;
});

const stored = async (s: Awaited<ReturnType<typeof serve>>, name: string) =>
  (
    await s.host.querySql(
      "TestStateAgent",
      name,
      "SELECT id, state FROM cf_agents_state WHERE id = 'cf_state_row_id'",
    )
  ).rows;

describe("state", () => {
  it("persists initialState lazily, on first read, and sends it on connect after the identity frame", async () => {
    const s = await serve(objects);
    const stub = s.env.TestStateAgent.getByName("lazy");
    // Loading the agent (onStart) does not read the state.
    await stub.__unsafe_ensureInitialized();
    expect(await stored(s, "lazy")).toEqual([]);
    const c = await Client.open(`${s.wsUrl}/agents/test-state-agent/lazy`);
    const state = await c.next((f) => f.type === "cf_agent_state");
    expect(state).toEqual({ state: { count: 0, items: [] }, type: "cf_agent_state" });
    expect(c.frames[0]).toEqual({ name: "lazy", agent: "test-state-agent", type: "cf_agent_identity" });
    expect(c.raw[0]).toBe('{"name":"lazy","agent":"test-state-agent","type":"cf_agent_identity"}');
    await c.next((f) => f.type === "cf_agent_mcp_servers");
    expect(c.frames.map((f) => f.type)).toEqual([
      "cf_agent_identity",
      "cf_agent_state",
      "cf_agent_mcp_servers",
    ]);
    expect(c.frames[2]).toEqual({
      mcp: { prompts: [], resources: [], servers: {}, tools: [] },
      type: "cf_agent_mcp_servers",
    });
    await until(async () => (await stored(s, "lazy")).length === 1, "the initial state row");
  });

  it("returns undefined without initialState and sends no state frame", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/no-initial-state-agent/x`);
    expect((await c.call("read")).result).toBe("undefined");
    expect(c.frames.filter((f) => f.type === "cf_agent_state")).toEqual([]);
    await c.call("write", [5]);
    expect((await c.call("read")).result).toEqual({ v: 5 });
  });

  it("setState is synchronous, persists across a restart, and broadcasts to every connection", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/test-state-agent/sync`);
    const b = await Client.open(`${s.wsUrl}/agents/test-state-agent/sync`);
    await b.next((f) => f.type === "cf_agent_mcp_servers");
    const from = b.frames.length;
    const reply = await a.call("increment", [2]);
    expect(reply).toEqual({ done: true, id: reply.id, result: 2, success: true, type: "rpc" });
    expect(await b.next((f) => f.type === "cf_agent_state", from)).toEqual({
      state: { count: 2, items: [] },
      type: "cf_agent_state",
    });
    // A server-side change reaches the caller too.
    expect(a.frames.filter((f) => f.type === "cf_agent_state").at(-1)).toEqual({
      state: { count: 2, items: [] },
      type: "cf_agent_state",
    });
    await until(
      () => events.some((e) => e.kind === "changed" && e.count === 2 && e.source === "server"),
      "onStateChanged",
    );
    a.close();
    b.close();
    const dir = s.dir;
    await s.host.close();
    const again = await serve(objects, { dir });
    const c = await Client.open(`${again.wsUrl}/agents/test-state-agent/sync`);
    expect((await c.next((f) => f.type === "cf_agent_state")).state).toEqual({ count: 2, items: [] });
  });

  it("a client's state frame is written and broadcast to everyone but the sender; onStateChanged sees the connection", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/test-state-agent/client?_pk=conn-a`);
    const b = await Client.open(`${s.wsUrl}/agents/test-state-agent/client?_pk=conn-b`);
    await a.next((f) => f.type === "cf_agent_mcp_servers");
    await b.next((f) => f.type === "cf_agent_mcp_servers");
    const aFrom = a.frames.length;
    a.send({ type: "cf_agent_state", state: { count: 7, items: ["x"] } });
    expect(await b.next((f) => f.type === "cf_agent_state" && f.state.count === 7)).toEqual({
      state: { count: 7, items: ["x"] },
      type: "cf_agent_state",
    });
    expect((await a.call("getState")).result).toEqual({ count: 7, items: ["x"] });
    expect(a.frames.slice(aFrom).filter((f) => f.type === "cf_agent_state")).toEqual([]);
    await until(() => events.find((e) => e.kind === "changed" && e.count === 7), "onStateChanged");
    expect(events.find((e) => e.kind === "changed" && e.count === 7)?.source).toBe("conn-a");
  });

  it("validateStateChange blocks a client update: error frame, nothing written, nothing broadcast", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/test-state-agent/v`);
    const b = await Client.open(`${s.wsUrl}/agents/test-state-agent/v`);
    await b.next((f) => f.type === "cf_agent_mcp_servers");
    const bFrom = b.frames.length;
    a.send({ type: "cf_agent_state", state: { count: -1, items: [] } });
    expect(await a.next((f) => f.type === "cf_agent_state_error")).toEqual({
      type: "cf_agent_state_error",
      error: "State update rejected",
    });
    expect((await a.call("getState")).result).toEqual({ count: 0, items: [] });
    // b got nothing in between (its next frame is the one we cause now).
    await a.call("increment", [1]);
    const next = await b.next((f) => f.type === "cf_agent_state", bFrom);
    expect(next.state.count).toBe(1);
  });

  it("validateStateChange blocks a server update: the RPC fails with the validator's message", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/test-state-agent/sv`);
    const reply = await a.call("setRaw", [{ count: "many" }]);
    expect(reply).toMatchObject({ success: false, error: "count must be a number" });
    expect((await a.call("getState")).result).toEqual({ count: 0, items: [] });
  });

  it("refuses a state that is not JSON or too large, state unchanged", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/test-state-agent/big`);
    const big = { count: 1, items: ["x".repeat(1024 * 1024)] };
    const reply = await a.call("setRaw", [big]);
    expect(reply.success).toBe(false);
    expect(reply.error).toMatch(/^setState: the state is \d+ bytes of JSON; at most 1048576 are allowed$/);
    a.send({ type: "cf_agent_state", state: big });
    expect((await a.next((f) => f.type === "cf_agent_state_error")).error).toBe("State update rejected");
    expect((await a.call("getState")).result).toEqual({ count: 0, items: [] });
  });

  it("an onStateChanged error goes to onError and does not undo the write", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/test-state-agent/unlucky`);
    expect((await a.call("increment", [13])).result).toBe(13);
    await until(() => events.find((e) => e.kind === "error"), "onError");
    expect(events.find((e) => e.kind === "error")?.message).toBe("Error: unlucky");
    expect((await a.call("getState")).result.count).toBe(13);
  });

  it("recovers from corrupt stored JSON by falling back to initialState (rewritten)", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/test-state-agent/corrupt`);
    await a.call("increment", [4]);
    await a.call("corrupt");
    a.close();
    const dir = s.dir;
    await s.host.close();
    const again = await serve(objects, { dir });
    const b = await Client.open(`${again.wsUrl}/agents/test-state-agent/corrupt`);
    expect((await b.next((f) => f.type === "cf_agent_state")).state).toEqual({ count: 0, items: [] });
    expect((await stored(again, "corrupt"))[0]).toEqual(["cf_state_row_id", '{"count":0,"items":[]}']);
  });

  it("corrupt stored JSON without initialState: no state, and the row is removed", async () => {
    const s = await serve(objects);
    const a = await Client.open(`${s.wsUrl}/agents/no-initial-state-agent/c`);
    await a.call("write", [1]);
    await a.call("corrupt");
    a.close();
    const dir = s.dir;
    await s.host.close();
    const again = await serve(objects, { dir });
    const b = await Client.open(`${again.wsUrl}/agents/no-initial-state-agent/c`);
    expect((await b.call("read")).result).toBe("undefined");
    const rows = await again.host.querySql(
      "NoInitialStateAgent",
      "c",
      "SELECT count(*) FROM cf_agents_state",
    );
    expect(rows.rows).toEqual([[0]]);
    expect(b.frames.filter((f) => f.type === "cf_agent_state")).toEqual([]);
  });

  it("overriding both onStateChanged and onStateUpdate throws upstream's error", async () => {
    const s = await serve(objects);
    await expect(s.env.BothHooksAgent.getByName("x").__unsafe_ensureInitialized()).rejects.toThrow(
      "[Agent] Cannot override both onStateChanged and onStateUpdate. Remove onStateUpdate — it has been renamed to onStateChanged.",
    );
  });
});
