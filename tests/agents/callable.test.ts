import { afterEach, describe, expect, it } from "vitest";
import { events, TestCallableAgent } from "./agents.ts";
import { Client, closeAll, serve, until } from "./helpers.ts";

// Mirrors upstream's packages/agents/src/tests/callable.test.ts on Cairn's Durable Object host.

const objects = [{ binding: "TestCallableAgent", class: TestCallableAgent }];

afterEach(async () => {
  await closeAll();
  events.length = 0;
});

async function client(name = "c") {
  const s = await serve(objects);
  const c = await Client.open(`${s.wsUrl}/agents/test-callable-agent/${name}`);
  return { s, c };
}

describe("callable methods", () => {
  it("returns sync, async, void, null results as done frames with upstream's key order", async () => {
    const { c } = await client();
    const r = await c.call("add", [2, 3]);
    expect(c.raw.at(-1)).toBe(`{"done":true,"id":"${r.id}","result":5,"success":true,"type":"rpc"}`);
    expect((await c.call("asyncAdd", [4, 5])).result).toBe(9);
    const v = await c.call("nothing");
    expect(v).toEqual({ done: true, id: v.id, success: true, type: "rpc" });
    expect((await c.call("nullValue")).result).toBeNull();
    expect((await c.call("echo", [])).result).toEqual([]);
    const complex = { a: [1, { b: "c" }], d: null, e: true };
    expect((await c.call("echo", [complex, "x", 3])).result).toEqual([complex, "x", 3]);
  });

  it("sends the thrown message, and Unknown error occurred for a non-Error", async () => {
    const { c } = await client();
    const r = await c.call("fail", ["boom"]);
    expect(c.raw.at(-1)).toBe(`{"error":"boom","id":"${r.id}","success":false,"type":"rpc"}`);
    expect((await c.call("failWithString")).error).toBe("Unknown error occurred");
  });

  it("refuses unknown and non-callable methods with upstream's texts", async () => {
    const { c } = await client();
    expect((await c.call("nope")).error).toBe("Method nope does not exist");
    expect((await c.call("notCallable")).error).toBe("Method notCallable is not callable");
    // Framework methods are not callable either.
    expect((await c.call("setState", [{}])).error).toBe("Method setState is not callable");
    expect((await c.call("destroy")).error).toBe("Method destroy is not callable");
  });

  it("streams chunks, then the final chunk with done: true", async () => {
    const { c } = await client();
    const r = await c.call("stream", [3]);
    const frames = c.frames.filter((f) => f.id === r.id);
    expect(frames).toEqual([
      { done: false, id: r.id, result: 0, success: true, type: "rpc" },
      { done: false, id: r.id, result: 1, success: true, type: "rpc" },
      { done: false, id: r.id, result: 2, success: true, type: "rpc" },
      { done: true, id: r.id, result: "done", success: true, type: "rpc" },
    ]);
  });

  it("stream.error() sends an error frame and closes; later send/end/error are no-ops returning false", async () => {
    const { c } = await client();
    const r = await c.call("streamThenError");
    expect(c.frames.filter((f) => f.id === r.id)).toEqual([
      { done: false, id: r.id, result: "first", success: true, type: "rpc" },
      { error: "it broke", id: r.id, success: false, type: "rpc" },
    ]);
    await until(() => events.find((e) => e.kind === "after-close"));
    expect(events.find((e) => e.kind === "after-close")).toEqual({
      kind: "after-close",
      send: false,
      end: false,
      error: false,
    });
  });

  it("a streaming method that throws before closing gets its stream closed with the message", async () => {
    const { c } = await client();
    const r = await c.call("streamThrows");
    expect(c.frames.filter((f) => f.id === r.id)).toEqual([
      { done: false, id: r.id, result: "partial", success: true, type: "rpc" },
      { error: "thrown mid-stream", id: r.id, success: false, type: "rpc" },
    ]);
  });

  it("answers concurrent calls each by id", async () => {
    const { c } = await client();
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.call("asyncAdd", [i, i])));
    expect(replies.map((r) => r.result)).toEqual(Array.from({ length: 20 }, (_, i) => 2 * i));
  });

  it("getCallableMethods walks the prototype chain, the subclass's metadata winning", async () => {
    const { c } = await client();
    const methods = new Map((await c.call("methods")).result as [string, unknown][]);
    expect(methods.get("baseMethod")).toEqual({ description: "from the base" });
    expect(methods.get("overridden")).toEqual({ description: "subclass version" });
    expect(methods.get("stream")).toEqual({ streaming: true });
    expect(methods.has("notCallable")).toBe(false);
    expect(methods.has("setState")).toBe(false);
    expect((await c.call("overridden")).result).toBe("sub");
    expect((await c.call("baseMethod")).result).toBe("base");
  });

  it("getCurrentAgent() inside a callable gives the agent and the connection", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/test-callable-agent/who?_pk=me`);
    expect((await c.call("whoAmI")).result).toEqual({
      agent: true,
      name: "who",
      connection: "me",
      request: false,
    });
  });

  it("frames that are not RPC (missing fields, args not an array, bad JSON) reach onMessage, not the dispatcher", async () => {
    const { c } = await client();
    c.send({ type: "rpc", id: "x", method: "add" });
    c.send({ type: "rpc", id: "y", method: "add", args: "1,2" });
    c.send("{not json");
    // The agent keeps working and never answered those ids.
    expect((await c.call("add", [1, 1])).result).toBe(2);
    expect(c.frames.filter((f) => f.id === "x" || f.id === "y")).toEqual([]);
  });

  it("a reply to a client that disconnected is dropped without disturbing the agent", async () => {
    const { s, c } = await client("gone");
    c.send({ type: "rpc", id: "late", method: "asyncAdd", args: [1, 2] });
    c.ws.terminate();
    await c.closed;
    const d = await Client.open(`${s.wsUrl}/agents/test-callable-agent/gone`);
    expect((await d.call("add", [2, 2])).result).toBe(4);
  });
});
