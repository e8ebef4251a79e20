/** The work queue: claims, leases, wake-up times and the running count. */
import type { InstanceStatus } from "@cairn/core";
import { expect, it } from "vitest";
import type { Store } from "../store.ts";
import type { NewInstance } from "../types.ts";
import { type Ctx, ids, insert, instance, OTHER, sortIds, T0, W } from "./support.ts";

export function claimTests(ctx: Ctx): void {
  const now = T0 + 1000;
  const claim = (over: Partial<Parameters<Store["queue"]["claim"]>[0]> = {}) =>
    ctx.store.queue.claim({ owner: "w1", now, limit: 10, leaseMs: 30_000, ...over });

  it("claims only ready queued or waiting instances", async () => {
    const rows: NewInstance[] = [
      instance("queued", { status: "queued", readyAt: now - 10 }),
      instance("waiting", { status: "waiting", readyAt: now }),
      instance("later", { status: "queued", readyAt: now + 1 }),
      instance("never", { status: "waiting", readyAt: null }),
      instance("paused", { status: "paused", readyAt: now - 10 }),
      instance("running", { status: "running", readyAt: now - 10 }),
      instance("complete", { status: "complete", readyAt: now - 10 }),
      instance("pausing", { status: "waitingForPause", readyAt: now - 10 }),
      instance("errored", { status: "errored", readyAt: now - 10 }),
      instance("terminated", { status: "terminated", readyAt: now - 10 }),
    ];
    for (const r of rows) await insert(ctx.store, r);
    expect(sortIds(ids(await claim()))).toEqual(["queued", "waiting"]);
    expect(await claim()).toEqual([]);
  });

  it("claims waking instances (priority 0) first, then by readyAt, up to the limit", async () => {
    await insert(ctx.store, instance("p1-late", { priority: 1, readyAt: now - 100 }));
    await insert(ctx.store, instance("p0-late", { priority: 0, readyAt: now - 50, status: "waiting" }));
    await insert(ctx.store, instance("p1-early", { priority: 1, readyAt: now - 900 }));
    await insert(ctx.store, instance("p0-early", { priority: 0, readyAt: now - 80, status: "waiting" }));
    await insert(ctx.store, instance("p0-future", { priority: 0, readyAt: now + 5 }));
    const order: string[] = [];
    for (let i = 0; i < 5; i++) order.push(...ids(await claim({ limit: 1 })));
    expect(order).toEqual(["p0-early", "p0-late", "p1-early", "p1-late"]);
  });

  it("with maxRunning, claims only up to the running instances' cap, in or outside a transaction", async () => {
    const lease = { owner: "w9", leaseUntil: now + 60_000, epoch: 1, startedAt: now - 10 };
    await insert(ctx.store, instance("r1", { status: "running", readyAt: null, ...lease }));
    await insert(ctx.store, instance("r2", { status: "waitingForPause", readyAt: null, ...lease }));
    await insert(ctx.store, instance("w1", { status: "waiting", readyAt: now + 1000, ...lease }));
    for (let n = 0; n < 5; n++) await insert(ctx.store, instance(`q${n}`, { readyAt: now - n }));
    expect(await claim({ maxRunning: 4 })).toHaveLength(2);
    expect(await claim({ maxRunning: 4 })).toEqual([]);
    expect(await claim({ maxRunning: 2 })).toEqual([]);
    await ctx.store.instances.update(W, "r1", { status: "complete", owner: null, leaseUntil: null });
    expect(
      await ctx.store.transaction((tx) =>
        tx.queue.claim({ owner: "w1", now, limit: 10, leaseMs: 30_000, maxRunning: 4 }),
      ),
    ).toHaveLength(1);
    expect(await ctx.store.queue.countRunning()).toBe(4);
    expect(await ctx.store.transaction((tx) => tx.queue.countRunning({ lockClaims: true }))).toBe(4);
    expect(await claim({ maxRunning: 100, limit: 1 })).toHaveLength(1);
  });

  it("respects the limit", async () => {
    for (let n = 0; n < 7; n++) await insert(ctx.store, instance(`i-${n}`, { readyAt: now - n }));
    expect(await claim({ limit: 3 })).toHaveLength(3);
    expect(await claim({ limit: 3 })).toHaveLength(3);
    expect(await claim({ limit: 3 })).toHaveLength(1);
    expect(await claim({ limit: 3 })).toHaveLength(0);
  });

  it("makes a claimed instance running, with a new epoch, the owner and a lease", async () => {
    await insert(ctx.store, instance("new", { readyAt: now - 10, epoch: 2 }));
    await insert(
      ctx.store,
      instance("woken", { status: "waiting", readyAt: now - 5, priority: 0, startedAt: T0 + 7, epoch: 5 }),
    );
    const claimed = await claim({ owner: "w7" });
    expect(claimed).toHaveLength(2);
    const byId = new Map(claimed.map((r) => [r.id, r]));
    expect(byId.get("new")).toMatchObject({
      status: "running",
      epoch: 3,
      owner: "w7",
      leaseUntil: now + 30_000,
      startedAt: now,
      readyAt: null,
    });
    expect(byId.get("woken")).toMatchObject({
      status: "running",
      epoch: 6,
      owner: "w7",
      leaseUntil: now + 30_000,
      startedAt: T0 + 7,
      readyAt: null,
    });
    // The rows are returned as stored.
    for (const r of claimed) expect(await ctx.store.instances.get(W, r.id)).toEqual(r);
  });

  it("does not claim an instance whose lease another owner still holds, and does after it expires", async () => {
    await insert(
      ctx.store,
      instance("a", { status: "waiting", readyAt: now - 10, owner: "w1", leaseUntil: now + 500, epoch: 1 }),
    );
    expect(await claim({ owner: "w2" })).toEqual([]);
    expect((await ctx.store.instances.get(W, "a"))!.owner).toBe("w1");
    const later = await claim({ owner: "w2", now: now + 501 });
    expect(later).toHaveLength(1);
    expect(later[0]).toMatchObject({ id: "a", owner: "w2", epoch: 2, leaseUntil: now + 501 + 30_000 });
  });

  it("takes over instances left running by another worker whose lease expired, before ready ones", async () => {
    await insert(ctx.store, instance("ready", { readyAt: now - 900, priority: 0 }));
    await insert(
      ctx.store,
      instance("orphan", { status: "running", readyAt: null, owner: "dead", leaseUntil: now - 1, epoch: 4 }),
    );
    await insert(
      ctx.store,
      instance("pausing", {
        status: "waitingForPause",
        readyAt: null,
        owner: "dead",
        leaseUntil: now - 1,
        startedAt: T0 + 3,
      }),
    );
    await insert(
      ctx.store,
      instance("alive", { status: "running", readyAt: null, owner: "w2", leaseUntil: now + 1 }),
    );
    await insert(
      ctx.store,
      instance("mine", { status: "running", readyAt: null, owner: "w1", leaseUntil: now - 1 }),
    );
    const first = await claim({ limit: 2 });
    expect(sortIds(ids(first))).toEqual(["orphan", "pausing"]);
    const byId = new Map(first.map((r) => [r.id, r]));
    expect(byId.get("orphan")).toMatchObject({
      status: "running",
      owner: "w1",
      epoch: 5,
      leaseUntil: now + 30_000,
    });
    expect(byId.get("pausing")).toMatchObject({ status: "waitingForPause", owner: "w1", startedAt: T0 + 3 });
    expect(ids(await claim())).toEqual(["ready"]);
    expect((await ctx.store.instances.get(W, "alive"))!.owner).toBe("w2");
    expect((await ctx.store.instances.get(W, "mine"))!.epoch).toBe(0);
  });

  it("expires every lease so the next claim takes over a dead worker's instances", async () => {
    await insert(
      ctx.store,
      instance("a", { status: "running", readyAt: null, owner: "dead", leaseUntil: now + 60_000 }),
    );
    await insert(
      ctx.store,
      instance("b", { status: "waiting", readyAt: now - 1, owner: "dead", leaseUntil: now + 60_000 }),
    );
    await insert(ctx.store, instance("c", { status: "complete", readyAt: null }));
    expect(await claim()).toEqual([]);
    await ctx.store.queue.expireLeases();
    expect((await ctx.store.instances.get(W, "c"))!.leaseUntil).toBeNull();
    const taken = await claim();
    expect(sortIds(ids(taken))).toEqual(["a", "b"]);
    // Taken over from the process that left them: an attempt may have been in flight.
    expect(taken.map((r) => r.takenOver)).toEqual([true, true]);
    await insert(ctx.store, instance("d", { readyAt: now - 1 }));
    expect((await claim()).map((r) => [r.id, r.takenOver])).toEqual([["d", undefined]]);
  });

  it("gives each instance to one of several concurrent claimers", async () => {
    for (let n = 0; n < 12; n++) await insert(ctx.store, instance(`i-${n}`, { readyAt: now - n }));
    const results = await Promise.all(["w1", "w2", "w3"].map((owner) => claim({ owner, limit: 5 })));
    const claimed = results.flatMap(ids);
    expect(sortIds(claimed)).toEqual(sortIds(Array.from({ length: 12 }, (_, n) => `i-${n}`)));
    for (const [i, owner] of ["w1", "w2", "w3"].entries())
      for (const r of results[i]!) expect((await ctx.store.instances.get(W, r.id))!.owner).toBe(owner);
  });

  it("reports the earliest readyAt of claimable instances", async () => {
    expect(await ctx.store.queue.nextReadyAt()).toBeUndefined();
    await insert(ctx.store, instance("paused", { status: "paused", readyAt: now - 500 }));
    await insert(ctx.store, instance("running", { status: "running", readyAt: now - 400 }));
    await insert(ctx.store, instance("never", { readyAt: null }));
    expect(await ctx.store.queue.nextReadyAt()).toBeUndefined();
    await insert(ctx.store, instance("b", { readyAt: now + 200 }));
    await insert(ctx.store, instance("c", { workflow: OTHER, status: "waiting", readyAt: now + 100 }));
    expect(await ctx.store.queue.nextReadyAt()).toBe(now + 100);
    await insert(ctx.store, instance("d", { readyAt: now - 300 }));
    expect(await ctx.store.queue.nextReadyAt()).toBe(now - 300);
    await claim();
    expect(await ctx.store.queue.nextReadyAt()).toBe(now + 100);
  });

  it("counts the waiting instances whose timer has come", async () => {
    expect(await ctx.store.queue.countDue(now)).toBe(0);
    await insert(ctx.store, instance("due", { status: "waiting", readyAt: now - 5 }));
    await insert(ctx.store, instance("due-now", { workflow: OTHER, status: "waiting", readyAt: now }));
    await insert(ctx.store, instance("later", { status: "waiting", readyAt: now + 1 }));
    await insert(ctx.store, instance("event", { status: "waiting", readyAt: null }));
    await insert(ctx.store, instance("queued", { status: "queued", readyAt: now - 5 }));
    await insert(ctx.store, instance("paused", { status: "paused", readyAt: now - 5 }));
    expect(await ctx.store.queue.countDue(now)).toBe(2);
    expect(await ctx.store.queue.countDue(now + 1)).toBe(3);
    await claim();
    expect(await ctx.store.queue.countDue(now + 1)).toBe(1);
  });

  it("renews the leases of the owner's running instances only", async () => {
    const lease = now + 10;
    await insert(ctx.store, instance("a", { status: "running", owner: "w1", leaseUntil: lease }));
    await insert(ctx.store, instance("b", { status: "running", owner: "w1", leaseUntil: lease }));
    await insert(ctx.store, instance("c", { status: "waitingForPause", owner: "w1", leaseUntil: lease }));
    await insert(
      ctx.store,
      instance("d", { workflow: OTHER, status: "running", owner: "w1", leaseUntil: lease }),
    );
    await insert(ctx.store, instance("e", { status: "running", owner: "w2", leaseUntil: lease }));
    await insert(ctx.store, instance("f", { status: "complete", owner: "w1", leaseUntil: lease }));
    expect(await ctx.store.queue.renewLeases("w1", now + 60_000)).toBe(4);
    for (const [workflow, id] of [
      [W, "a"],
      [W, "b"],
      [W, "c"],
      [OTHER, "d"],
    ] as const)
      expect((await ctx.store.instances.get(workflow, id))!.leaseUntil).toBe(now + 60_000);
    expect((await ctx.store.instances.get(W, "e"))!.leaseUntil).toBe(lease);
    expect((await ctx.store.instances.get(W, "f"))!.leaseUntil).toBe(lease);
    expect(await ctx.store.queue.renewLeases("nobody", now + 60_000)).toBe(0);
  });

  it("counts instances that use a concurrency slot", async () => {
    expect(await ctx.store.queue.countRunning()).toBe(0);
    const statuses: InstanceStatus[] = [
      "queued",
      "running",
      "paused",
      "waiting",
      "waitingForPause",
      "complete",
    ];
    for (const [n, status] of statuses.entries()) await insert(ctx.store, instance(`i-${n}`, { status }));
    await insert(ctx.store, instance("x", { workflow: OTHER, status: "running" }));
    expect(await ctx.store.queue.countRunning()).toBe(3);
    // Claiming makes the ready queued (i-0) and waiting (i-3) instances running.
    expect(sortIds(ids(await claim()))).toEqual(["i-0", "i-3"]);
    expect(await ctx.store.queue.countRunning()).toBe(5);
  });
}
