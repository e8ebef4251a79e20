/** Lifecycle: migrations, close, and data that outlives the store object. */
import { expect, it } from "vitest";
import { bytes, type Ctx, entry, insert, instance, populate, putStep, step, T0, W } from "./support.ts";

export function lifecycleTests(ctx: Ctx): void {
  const close = async () => {
    ctx.closed = true;
    await ctx.store.close();
  };

  it("migrates idempotently, keeping data", async () => {
    await populate(ctx.store, "a");
    await ctx.store.migrate();
    await ctx.store.migrate();
    expect(await ctx.store.instances.get(W, "a")).toBeDefined();
    expect(await ctx.store.history.list(W, "a")).toHaveLength(2);
  });

  it("finishes queued transactions before closing, then refuses new ones", async () => {
    const pending = ctx.store.transaction(async (tx) => insert(tx, instance("a")));
    await close();
    await expect(pending).resolves.toBe(true);
    await expect(ctx.store.transaction(async () => 1)).rejects.toThrow();
  });

  it.skipIf(!ctx.reopen)("keeps every kind of data across close and reopen", async () => {
    await insert(ctx.store, instance("a", { params: bytes(0, 255) }));
    await ctx.store.instances.update(W, "a", {
      status: "waiting",
      output: bytes(3),
      error: { name: "E", message: "m" },
      readyAt: T0 + 9,
      owner: "w",
    });
    const seq = await ctx.store.transaction(async (tx) => {
      await putStep(tx, step("a", { status: "succeeded", result: bytes(4, 5) }), "waiting");
      const seq = await tx.events.insert({
        workflow: W,
        instanceId: "a",
        type: "t",
        payload: bytes(6),
        timestamp: T0,
      });
      await tx.history.append([
        entry("a", { data: { n: 1 }, step: { kind: "do", name: "load order", count: 1 } }),
      ]);
      return seq;
    });
    const before = {
      instance: await ctx.store.instances.get(W, "a"),
      steps: await ctx.store.steps.list(W, "a"),
      events: await ctx.store.events.list(W, "a"),
      history: await ctx.store.history.list(W, "a"),
    };
    expect(before.steps).toHaveLength(1);
    await close();
    ctx.store = await ctx.reopen!();
    ctx.closed = false;
    expect(await ctx.store.instances.get(W, "a")).toEqual(before.instance);
    expect(await ctx.store.steps.list(W, "a")).toEqual(before.steps);
    expect(await ctx.store.events.list(W, "a")).toEqual(before.events);
    expect(before.events.map((e) => e.seq)).toEqual([seq]);
    const history = await ctx.store.history.list(W, "a");
    expect(history).toEqual(before.history);
    expect(history).toHaveLength(1);
    // Ids keep increasing after a reopen, even past deleted rows.
    await ctx.store.instances.rewind(W, "a");
    await ctx.store.history.append([entry("a")]);
    expect((await ctx.store.history.list(W, "a"))[0]!.eventId).toBeGreaterThan(history[0]!.eventId);
    expect(
      await ctx.store.events.insert({
        workflow: W,
        instanceId: "a",
        type: "t",
        payload: bytes(),
        timestamp: T0,
      }),
    ).toBeGreaterThan(seq);
  });
}
