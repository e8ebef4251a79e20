/** Schedules: the latest settled slot per cron, moved forward by one guarded write. */
import { expect, it } from "vitest";
import type { ScheduleKey } from "../types.ts";
import { type Ctx, T0, W } from "./support.ts";

const HOUR = 3_600_000;

export function scheduleTests(ctx: Ctx): void {
  const hourly: ScheduleKey = { kind: "workflow", name: W, cron: "0 * * * *" };

  it("inserts a schedule's row, then moves it only forward", async () => {
    expect(await ctx.store.schedules.list()).toEqual([]);
    expect(await ctx.store.schedules.advance(hourly, T0, T0 + 5)).toBe(true);
    expect(await ctx.store.schedules.list()).toEqual([{ ...hourly, lastAt: T0, updatedAt: T0 + 5 }]);
    expect(await ctx.store.schedules.advance(hourly, T0, T0 + 6)).toBe(false);
    expect(await ctx.store.schedules.advance(hourly, T0 - HOUR, T0 + 7)).toBe(false);
    expect(await ctx.store.schedules.list()).toEqual([{ ...hourly, lastAt: T0, updatedAt: T0 + 5 }]);
    expect(await ctx.store.schedules.advance(hourly, T0 + HOUR, T0 + HOUR)).toBe(true);
    expect(await ctx.store.schedules.list()).toEqual([
      { ...hourly, lastAt: T0 + HOUR, updatedAt: T0 + HOUR },
    ]);
  });

  it("keeps schedules of different workflows, crons and the Worker apart", async () => {
    const daily: ScheduleKey = { kind: "workflow", name: W, cron: "0 0 * * *" };
    const other: ScheduleKey = { kind: "workflow", name: "invoices", cron: "0 * * * *" };
    const trigger: ScheduleKey = { kind: "trigger", name: "", cron: "0 * * * *" };
    for (const key of [hourly, daily, other, trigger])
      expect(await ctx.store.schedules.advance(key, T0, T0)).toBe(true);
    expect(await ctx.store.schedules.advance(trigger, T0 + HOUR, T0 + HOUR)).toBe(true);
    const rows = await ctx.store.schedules.list();
    expect(rows.map((r) => [r.kind, r.name, r.cron, r.lastAt])).toEqual([
      ["trigger", "", "0 * * * *", T0 + HOUR],
      ["workflow", "invoices", "0 * * * *", T0],
      ["workflow", W, "0 * * * *", T0],
      ["workflow", W, "0 0 * * *", T0],
    ]);
  });

  it("lets exactly one of concurrent claims of a slot win", async () => {
    await ctx.store.schedules.advance(hourly, T0, T0);
    const claims = await Promise.all(
      Array.from({ length: 8 }, () =>
        ctx.store.transaction((tx) => tx.schedules.advance(hourly, T0 + HOUR, T0 + HOUR)),
      ),
    );
    expect(claims.filter(Boolean)).toHaveLength(1);
    const first = await Promise.all(
      Array.from({ length: 8 }, () =>
        ctx.store.schedules.advance({ ...hourly, cron: "*/5 * * * *" }, T0, T0),
      ),
    );
    expect(first.filter(Boolean)).toHaveLength(1);
  });

  it("writes nothing when the transaction around the claim fails", async () => {
    await ctx.store.schedules.advance(hourly, T0, T0);
    await expect(
      ctx.store.transaction(async (tx) => {
        expect(await tx.schedules.advance(hourly, T0 + HOUR, T0 + HOUR)).toBe(true);
        throw new Error("the instance could not be created");
      }),
    ).rejects.toThrow("the instance could not be created");
    expect((await ctx.store.schedules.list())[0]?.lastAt).toBe(T0);
    expect(await ctx.store.transaction((tx) => tx.schedules.advance(hourly, T0 + HOUR, T0 + HOUR))).toBe(
      true,
    );
  });
}
