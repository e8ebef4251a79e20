/** History: store-wide increasing ids, paging, and rewinds. */
import { expect, it } from "vitest";
import { type Ctx, entry, eventIds, expectIncreasing, insert, instance, OTHER, T0, W } from "./support.ts";

export function historyTests(ctx: Ctx): void {
  it("appends entries with store-wide increasing eventIds and lists them", async () => {
    const a1 = entry("a", { type: "workflow_queued" });
    const a2 = entry("a", {
      type: "step_completed",
      timestamp: T0 + 5,
      step: { kind: "do", name: "charge: card", count: 2 },
      data: { attempt: 3, durationMs: 12.5, ok: true, nothing: null, list: [1, "two"], nested: { é: "ü" } },
    });
    await ctx.store.history.append([a1]);
    await ctx.store.history.append([entry("b"), entry("a", { workflow: OTHER })]);
    await ctx.store.history.append([a2, entry("a", { type: "workflow_completed" })]);
    await ctx.store.history.append([]);
    const listed = await ctx.store.history.list(W, "a");
    expect(listed.map(({ eventId: _, ...rest }) => rest)).toEqual([
      a1,
      a2,
      entry("a", { type: "workflow_completed" }),
    ]);
    expect(listed[0]!.step).toBeUndefined();
    expect(listed[0]!.data).toBeUndefined();
    const all = [
      ...listed,
      ...(await ctx.store.history.list(W, "b")),
      ...(await ctx.store.history.list(OTHER, "a")),
    ];
    expect(new Set(eventIds(all)).size).toBe(5);
    expectIncreasing(eventIds(listed));
    expect(eventIds(await ctx.store.history.list(W, "b"))[0]).toBeGreaterThan(listed[0]!.eventId);
    expect(eventIds(await ctx.store.history.list(W, "b"))[0]).toBeLessThan(listed[1]!.eventId);
  });

  it("lists after an eventId and up to a limit", async () => {
    await ctx.store.history.append(Array.from({ length: 10 }, (_, n) => entry("a", { timestamp: T0 + n })));
    const all = eventIds(await ctx.store.history.list(W, "a"));
    expect(all).toHaveLength(10);
    expect(eventIds(await ctx.store.history.list(W, "a", { afterEventId: all[3]! }))).toEqual(all.slice(4));
    expect(eventIds(await ctx.store.history.list(W, "a", { limit: 3 }))).toEqual(all.slice(0, 3));
    expect(eventIds(await ctx.store.history.list(W, "a", { afterEventId: all[5]!, limit: 2 }))).toEqual(
      all.slice(6, 8),
    );
    expect(await ctx.store.history.list(W, "a", { afterEventId: all[9]! })).toEqual([]);
    expect(await ctx.store.history.list(W, "missing")).toEqual([]);
  });

  it("rewinds all of an instance's entries", async () => {
    await ctx.store.history.append([entry("a"), entry("a"), entry("b")]);
    await ctx.store.instances.rewind(W, "a");
    expect(await ctx.store.history.list(W, "a")).toEqual([]);
    expect(await ctx.store.history.list(W, "b")).toHaveLength(1);
  });

  it("rewinds the entries of given steps plus instance-level entries after an eventId", async () => {
    const s1 = { kind: "do" as const, name: "load: order", count: 1 };
    const s2 = { kind: "do" as const, name: "load: order", count: 2 };
    const s3 = { kind: "sleep" as const, name: "nap", count: 1 };
    await ctx.store.history.append([
      entry("a", { type: "workflow_queued" }), // 0 kept
      entry("a", { type: "step_started", step: s1 }), // 1 deleted (step)
      entry("a", { type: "step_completed", step: s1 }), // 2 deleted (step)
      entry("a", { type: "step_started", step: s2 }), // 3 kept
      entry("a", { type: "workflow_waiting" }), // 4 kept: the cut
      entry("a", { type: "sleep_started", step: s3 }), // 5 deleted (step)
      entry("a", { type: "workflow_running" }), // 6 deleted (instance-level after the cut)
      entry("a", { type: "step_completed", step: s2 }), // 7 kept (not a listed step)
      entry("b", { type: "workflow_running" }),
      entry("b", { type: "step_started", step: s1 }),
    ]);
    const before = await ctx.store.history.list(W, "a");
    await ctx.store.instances.rewind(W, "a", { steps: [s1, s3], afterEventId: before[4]!.eventId });
    expect(eventIds(await ctx.store.history.list(W, "a"))).toEqual(
      [0, 3, 4, 7].map((i) => before[i]!.eventId),
    );
    expect(await ctx.store.history.list(W, "b")).toHaveLength(2);
  });

  it("never reuses an eventId after deletes", async () => {
    await ctx.store.history.append([entry("a"), entry("a"), entry("a")]);
    const first = eventIds(await ctx.store.history.list(W, "a"));
    await ctx.store.instances.rewind(W, "a", { steps: [], afterEventId: first[0]! });
    await ctx.store.history.append([entry("a")]);
    const second = eventIds(await ctx.store.history.list(W, "a"));
    expect(second).toHaveLength(2);
    expect(second[1]!).toBeGreaterThan(first[2]!);
    await ctx.store.instances.rewind(W, "a");
    await insert(ctx.store, instance("a"));
    await ctx.store.instances.delete(W, "a");
    await ctx.store.history.append([entry("a")]);
    expect(eventIds(await ctx.store.history.list(W, "a"))[0]!).toBeGreaterThan(second[1]!);
  });

  it("numbers each entry of a step's outcome, so a reader resumes after any of them", async () => {
    const s = { kind: "do" as const, name: "charge", count: 1 };
    const outcome = [
      entry("a", { type: "step_started", step: s, data: { config: { retries: { limit: 1 } } } }),
      entry("a", { type: "attempt_started", timestamp: T0 + 1, step: s, data: { attempt: 1 } }),
      entry("a", {
        type: "attempt_completed",
        timestamp: T0 + 4,
        step: s,
        data: { attempt: 1, cpuTimeMs: 1.5 },
      }),
      entry("a", { type: "step_completed", timestamp: T0 + 4, step: s }),
    ];
    await ctx.store.history.append([entry("a", { type: "workflow_running" }), ...outcome]);
    await ctx.store.history.append([...outcome.map((e) => ({ ...e, step: { ...s, count: 2 } })), entry("a")]);
    const all = await ctx.store.history.list(W, "a");
    expect(all.map(({ eventId: _, ...e }) => e)).toEqual([
      entry("a", { type: "workflow_running" }),
      ...outcome,
      ...outcome.map((e) => ({ ...e, step: { ...s, count: 2 } })),
      entry("a"),
    ]);
    expectIncreasing(eventIds(all));
    for (let k = 0; k < all.length; k++) {
      expect(await ctx.store.history.list(W, "a", { afterEventId: all[k]!.eventId })).toEqual(
        all.slice(k + 1),
      );
      expect(await ctx.store.history.list(W, "a", { afterEventId: all[k]!.eventId, limit: 2 })).toEqual(
        all.slice(k + 1, k + 3),
      );
    }
    expect(await ctx.store.history.list(W, "a", { limit: 3 })).toEqual(all.slice(0, 3));
  });

  it("gives unique increasing ids to entries appended by concurrent transactions, one of which fails", async () => {
    const s = (n: number) => ({ kind: "do" as const, name: "step", count: n });
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, n) =>
        ctx.store.transaction(async (tx) => {
          await tx.history.append([
            entry(`i${n}`, { type: "attempt_started", step: s(1), data: { attempt: 1 } }),
            entry(`i${n}`, { type: "attempt_completed", step: s(1), data: { attempt: 1 } }),
            entry(`i${n}`),
          ]);
          if (n === 5) throw new Error("rolled back");
        }),
      ),
    );
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(1);
    const lists = await Promise.all(Array.from({ length: 12 }, (_, n) => ctx.store.history.list(W, `i${n}`)));
    expect(lists[5]).toEqual([]);
    const ids = lists.flatMap(eventIds);
    expect(ids).toHaveLength(33);
    expect(new Set(ids).size).toBe(33);
    for (const l of lists) expectIncreasing(eventIds(l));
    await ctx.store.history.append([entry("later")]);
    expect(eventIds(await ctx.store.history.list(W, "later"))[0]!).toBeGreaterThan(Math.max(...ids));
  });
}
