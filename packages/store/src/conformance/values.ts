/** Byte values: every stored byte array round-trips exactly. */
import { it } from "vitest";
import { bytes, type Ctx, expectBytes, insert, instance, putStep, step, T0, W } from "./support.ts";

export function byteTests(ctx: Ctx): void {
  const every = new Uint8Array(512).map((_, i) => (i * 37 + 11) % 256);
  const big = new Uint8Array(1024 * 1024).map((_, i) => (i * 31 + (i >> 8)) % 256);
  const view = new Uint8Array([9, 9, 1, 2, 3, 9, 9]).subarray(2, 5);
  const cases: [string, Uint8Array, Uint8Array][] = [
    ["every byte value", every, every],
    ["empty", new Uint8Array(0), new Uint8Array(0)],
    ["a view into a larger buffer", view, bytes(1, 2, 3)],
    ["1 MiB", big, big],
    ["NUL and UTF-8-invalid bytes", bytes(0, 0, 0xc3, 0x28, 0xff, 0), bytes(0, 0, 0xc3, 0x28, 0xff, 0)],
  ];
  for (const [what, value, expected] of cases)
    it(`round-trips ${what} exactly`, async () => {
      await insert(ctx.store, instance("a", { params: value, status: "running", readyAt: null }));
      await ctx.store.instances.update(W, "a", { output: value });
      await putStep(ctx.store, step("a", { result: value, status: "succeeded" }));
      await ctx.store.events.insert({
        workflow: W,
        instanceId: "a",
        type: "t",
        payload: value,
        timestamp: T0,
      });
      const row = (await ctx.store.instances.get(W, "a"))!;
      expectBytes(row.params, expected);
      expectBytes(row.output, expected);
      expectBytes((await ctx.store.steps.get(W, "a", "do", "load order", 1))!.result, expected);
      expectBytes((await ctx.store.events.list(W, "a"))[0]!.payload, expected);
      expectBytes((await ctx.store.events.consume(W, "a", "t", "waitForEvent:1:t"))!.payload, expected);
      expectBytes((await ctx.store.instances.list({ workflow: W, limit: 1 })).items[0]!.params, expected);
    });

  it("keeps stored bytes apart from the caller's array", async () => {
    const params = bytes(1, 2, 3);
    await insert(ctx.store, instance("a", { params }));
    params[0] = 99;
    const row = (await ctx.store.instances.get(W, "a"))!;
    expectBytes(row.params, bytes(1, 2, 3));
    row.params[1] = 77;
    expectBytes((await ctx.store.instances.get(W, "a"))!.params, bytes(1, 2, 3));
  });
}
