/** Events: buffering, consumption in order, and rewinds. */
import { stepKeyString } from "@cairn/core";
import { expect, it } from "vitest";
import { bytes, type Ctx, expectBytes, expectIncreasing, OTHER, T0, W } from "./support.ts";

export function eventTests(ctx: Ctx): void {
  const send = (instanceId: string, type: string, payload = bytes(1), workflow = W) =>
    ctx.store.events.insert({ workflow, instanceId, type, payload, timestamp: T0 });

  it("inserts events with increasing seq and lists them in order", async () => {
    const seqs = [
      await send("a", "approved", bytes(1)),
      await send("b", "approved", bytes(2)),
      await send("a", "shipped", bytes(3)),
      await send("a", "approved", bytes(4), OTHER),
      await send("a", "approved", bytes(5)),
    ];
    expectIncreasing(seqs);
    const listed = await ctx.store.events.list(W, "a");
    expect(listed.map((e) => [e.seq, e.type, e.consumedBy, e.timestamp, e.instanceId, e.workflow])).toEqual([
      [seqs[0], "approved", null, T0, "a", W],
      [seqs[2], "shipped", null, T0, "a", W],
      [seqs[4], "approved", null, T0, "a", W],
    ]);
    expectBytes(listed[0]!.payload, bytes(1));
    expectBytes(listed[1]!.payload, bytes(3));
    expectBytes(listed[2]!.payload, bytes(5));
  });

  it("consumes the oldest unconsumed event of a type, one at a time", async () => {
    const first = await send("a", "approved", bytes(1));
    const other = await send("a", "shipped", bytes(2));
    const second = await send("a", "approved", bytes(3));
    await send("b", "approved", bytes(4));
    const k1 = stepKeyString({ kind: "waitForEvent", name: "wait", count: 1 });
    const k2 = stepKeyString({ kind: "waitForEvent", name: "wait", count: 2 });
    const got1 = await ctx.store.events.consume(W, "a", "approved", k1);
    expect(got1).toMatchObject({ seq: first, type: "approved", consumedBy: k1, instanceId: "a" });
    expectBytes(got1!.payload, bytes(1));
    const got2 = await ctx.store.events.consume(W, "a", "approved", k2);
    expect(got2).toMatchObject({ seq: second, consumedBy: k2 });
    expect(await ctx.store.events.consume(W, "a", "approved", "waitForEvent:3:wait")).toBeUndefined();
    expect(await ctx.store.events.consume(W, "a", "missing", k1)).toBeUndefined();
    const listed = await ctx.store.events.list(W, "a");
    expect(listed.map((e) => [e.seq, e.consumedBy])).toEqual([
      [first, k1],
      [other, null],
      [second, k2],
    ]);
    expect((await ctx.store.events.list(W, "b"))[0]!.consumedBy).toBeNull();
  });

  it("rewinds all of an instance's events, or those consumed by given steps", async () => {
    await send("a", "x");
    await send("a", "x");
    await send("a", "x");
    await send("a", "y");
    await send("b", "x");
    await ctx.store.events.consume(W, "a", "x", "waitForEvent:1:w");
    await ctx.store.events.consume(W, "a", "x", "waitForEvent:2:w");
    await ctx.store.events.consume(W, "a", "x", "waitForEvent:3:w");
    const waits = [1, 3, 9].map((count) => ({ kind: "waitForEvent" as const, name: "w", count }));
    // A `do` step with the key of a consumer's name and count received nothing.
    const other = { kind: "do" as const, name: "w", count: 2 };
    await ctx.store.instances.rewind(W, "a", { steps: [...waits, other], afterEventId: 0 });
    expect((await ctx.store.events.list(W, "a")).map((e) => [e.type, e.consumedBy])).toEqual([
      ["x", "waitForEvent:2:w"],
      ["y", null],
    ]);
    await ctx.store.instances.rewind(W, "a", { steps: [], afterEventId: 0 });
    expect(await ctx.store.events.list(W, "a")).toHaveLength(2);
    await ctx.store.instances.rewind(W, "a");
    expect(await ctx.store.events.list(W, "a")).toEqual([]);
    expect(await ctx.store.events.list(W, "b")).toHaveLength(1);
  });
}
