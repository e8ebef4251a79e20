/** Metrics (SPEC §12.2): an instance's CPU and wall time, and the history scan metrics read. */
import { expect, it } from "vitest";
import { type Ctx, entry, insert, instance, OTHER, T0, W } from "./support.ts";

export function metricsTests(ctx: Ctx): void {
  it("keeps an instance's CPU and wall time and its traceparent, 0 and none until written", async () => {
    await insert(ctx.store, instance("a"));
    const fresh = await ctx.store.instances.get(W, "a");
    expect(fresh).toMatchObject({ cpuTimeMs: 0, wallTimeMs: 0 });
    expect(fresh!.traceparent).toBeUndefined();
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect(
      await ctx.store.instances.update(W, "a", { cpuTimeMs: 12.375, wallTimeMs: 4021, traceparent: tp }),
    ).toBe(true);
    expect(await ctx.store.instances.get(W, "a")).toMatchObject({
      cpuTimeMs: 12.375,
      wallTimeMs: 4021,
      traceparent: tp,
    });
    const page = await ctx.store.instances.list({ workflow: W, limit: 10 });
    expect(page.items[0]).toMatchObject({ cpuTimeMs: 12.375, wallTimeMs: 4021 });
  });

  it("scans a workflow's entries in a time range, with the times attempt ends recorded", async () => {
    const s = { kind: "do" as const, name: "charge", count: 1 };
    await ctx.store.history.append([
      entry("a", { type: "workflow_started", timestamp: T0 - 1 }),
      entry("a", { type: "attempt_started", timestamp: T0, step: s, data: { attempt: 1 } }),
      entry("a", {
        type: "attempt_completed",
        timestamp: T0 + 10,
        step: s,
        data: { attempt: 1, cpuTimeMs: 7.25, wallTimeMs: 10 },
      }),
      entry("b", { type: "attempt_errored", timestamp: T0 + 20, step: s, data: { attempt: 1, error: {} } }),
      entry("a", { workflow: OTHER, type: "workflow_started", timestamp: T0 + 5 }),
      entry("a", { type: "workflow_completed", timestamp: T0 + 31 }),
    ]);
    expect(await ctx.store.history.metrics(W, T0, T0 + 30, 100)).toEqual([
      {
        type: "attempt_started",
        instanceId: "a",
        stepName: "charge",
        timestamp: T0,
        cpuTimeMs: null,
        wallTimeMs: null,
      },
      {
        type: "attempt_completed",
        instanceId: "a",
        stepName: "charge",
        timestamp: T0 + 10,
        cpuTimeMs: 7.25,
        wallTimeMs: 10,
      },
      {
        type: "attempt_errored",
        instanceId: "b",
        stepName: "charge",
        timestamp: T0 + 20,
        cpuTimeMs: null,
        wallTimeMs: null,
      },
    ]);
    expect((await ctx.store.history.metrics(W, T0 - 1, T0 + 31, 2)).map((r) => r.type)).toEqual([
      "workflow_started",
      "attempt_started",
    ]);
    expect(await ctx.store.history.metrics(W, T0 + 32, T0 + 40, 100)).toEqual([]);
    expect(await ctx.store.history.metrics("missing", T0 - 1, T0 + 40, 100)).toEqual([]);
  });
}
