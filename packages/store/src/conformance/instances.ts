/** Instances: rows, creation, guarded updates, deletes and listing. */
import { type InstanceStatus, type NewHistoryEntry, stepKeyString } from "@cairn/core";
import { describe, expect, it } from "vitest";
import type { Store } from "../store.ts";
import type { InstanceCreate, InstancePatch } from "../types.ts";
import {
  bytes,
  type Ctx,
  entry,
  eventIds,
  expectBytes,
  expectIncreasing,
  ids,
  insert,
  instance,
  listAll,
  OTHER,
  populate,
  putStep,
  sortIds,
  step,
  T0,
  W,
} from "./support.ts";

export function instanceTests(ctx: Ctx): void {
  it("inserts an instance with defaults and reads it back", async () => {
    expect(await insert(ctx.store, instance("a"))).toBe(true);
    const row = await ctx.store.instances.get(W, "a");
    expect(row).toEqual({
      workflow: W,
      id: "a",
      status: "queued",
      params: expect.any(Uint8Array),
      output: null,
      error: null,
      createdAt: T0,
      updatedAt: T0,
      startedAt: null,
      endedAt: null,
      pausedAt: null,
      readyAt: T0,
      priority: 1,
      epoch: 0,
      owner: null,
      leaseUntil: null,
      cpuTimeMs: 0,
      wallTimeMs: 0,
    });
    expectBytes(row!.params, bytes(1, 2, 3));
  });

  it("inserts every optional field as given", async () => {
    const row = instance("b", {
      status: "running",
      readyAt: null,
      priority: 0,
      startedAt: T0 + 1,
      owner: "worker-1",
      leaseUntil: T0 + 30_000,
      epoch: 4,
    });
    expect(await insert(ctx.store, row)).toBe(true);
    expect(await ctx.store.instances.get(W, "b")).toMatchObject({
      status: "running",
      readyAt: null,
      priority: 0,
      startedAt: T0 + 1,
      owner: "worker-1",
      leaseUntil: T0 + 30_000,
      epoch: 4,
    });
  });

  it("returns undefined for a missing instance", async () => {
    await insert(ctx.store, instance("a"));
    expect(await ctx.store.instances.get(W, "missing")).toBeUndefined();
    expect(await ctx.store.instances.get(OTHER, "a")).toBeUndefined();
  });

  it("refuses a duplicate insert and leaves the row unchanged", async () => {
    await insert(ctx.store, instance("a"));
    const before = await ctx.store.instances.get(W, "a");
    const again = instance("a", { params: bytes(7), status: "running", createdAt: T0 + 5, priority: 0 });
    expect(await insert(ctx.store, again)).toBe(false);
    expect(await ctx.store.instances.get(W, "a")).toEqual(before);
  });

  describe("create", () => {
    const create = (id: string, over: Partial<InstanceCreate> = {}): InstanceCreate => ({
      row: { workflow: W, id, params: bytes(4, 5), createdAt: T0 },
      history: [entry(id, { type: "workflow_queued" })],
      ...over,
    });
    const start = { owner: "w1", leaseUntil: T0 + 30_000 };

    it("queues a new instance with its history", async () => {
      expect(await ctx.store.instances.create(create("a"))).toBe("queued");
      const row = await ctx.store.instances.get(W, "a");
      expect(row).toMatchObject({ status: "queued", readyAt: T0, epoch: 0, owner: null, startedAt: null });
      expectBytes(row!.params, bytes(4, 5));
      expect((await ctx.store.history.list(W, "a")).map((e) => e.type)).toEqual(["workflow_queued"]);
    });

    it("starts it claimed by the creating worker when asked", async () => {
      expect(await ctx.store.instances.create(create("a", { start }))).toBe("started");
      expect(await ctx.store.instances.get(W, "a")).toMatchObject({
        status: "running",
        readyAt: null,
        startedAt: T0,
        epoch: 1,
        owner: "w1",
        leaseUntil: T0 + 30_000,
      });
      // Started instances are not claimable until their lease runs out.
      expect(await ctx.store.queue.claim({ owner: "w2", now: T0 + 1, limit: 5, leaseMs: 1000 })).toEqual([]);
    });

    it("queues instead when the running instances reach maxRunning", async () => {
      const capped = { ...start, maxRunning: 2 };
      expect(await ctx.store.instances.create(create("a", { start: capped }))).toBe("started");
      expect(await ctx.store.instances.create(create("b", { start: capped }))).toBe("started");
      expect(await ctx.store.instances.create(create("c", { start: capped }))).toBe("queued");
      expect((await ctx.store.instances.get(W, "c"))?.status).toBe("queued");
      expect(await ctx.store.transaction((tx) => tx.instances.create(create("d", { start: capped })))).toBe(
        "queued",
      );
      expect(
        await ctx.store.transaction((tx) =>
          tx.instances.create(create("e", { start: { ...start, maxRunning: 3 } })),
        ),
      ).toBe("started");
      expect(await ctx.store.queue.countRunning()).toBe(3);
    });

    it("starts concurrent creates only up to maxRunning, each with its history, refusing ids that exist", async () => {
      const capped = { ...start, maxRunning: 10 };
      for (const id of ["r1", "r2"])
        expect(await ctx.store.instances.create(create(id, { start: capped }))).toBe("started");
      for (const id of ["x1", "x2", "x3"]) await insert(ctx.store, instance(id));
      // Existing ids first, so they would take places if they were counted.
      const ids = [
        "x1",
        "x2",
        "x3",
        ...Array.from({ length: 27 }, (_, i) => `n${String(i).padStart(2, "0")}`),
      ];
      const outcomes = await Promise.all(
        ids.map((id) => ctx.store.instances.create(create(id, { start: capped }))),
      );
      const count = (o: string) => outcomes.filter((x) => x === o).length;
      expect(outcomes.slice(0, 3)).toEqual(["exists", "exists", "exists"]);
      expect({ started: count("started"), queued: count("queued") }).toEqual({ started: 8, queued: 19 });
      expect(await ctx.store.queue.countRunning()).toBe(10);
      for (const [i, id] of ids.entries()) {
        const row = await ctx.store.instances.get(W, id);
        const history = (await ctx.store.history.list(W, id)).map((e) => e.type);
        if (i < 3) {
          expect(row).toMatchObject({ status: "queued", epoch: 0 });
          expect(history).toEqual([]);
          continue;
        }
        expect(row?.status).toBe(outcomes[i] === "started" ? "running" : "queued");
        if (outcomes[i] === "started")
          expect(row).toMatchObject({ owner: "w1", epoch: 1, leaseUntil: T0 + 30_000 });
        else expect(row).toMatchObject({ owner: null, epoch: 0, readyAt: T0 });
        expectBytes(row!.params, bytes(4, 5));
        expect(history).toEqual(["workflow_queued"]);
      }
    });

    it("writes nothing for an id that exists", async () => {
      await insert(ctx.store, instance("a"));
      expect(await ctx.store.instances.create(create("a", { start }))).toBe("exists");
      expect(await ctx.store.instances.get(W, "a")).toMatchObject({ status: "queued", epoch: 0 });
      expect(await ctx.store.history.list(W, "a")).toEqual([]);
    });
  });

  it("inserts many rows at once, skipping existing ids and repeats of an id", async () => {
    await insert(ctx.store, instance("taken"));
    const rows = [
      instance("m1", { priority: 0, readyAt: T0 + 5 }),
      instance("taken", { params: bytes(9) }),
      instance("m2", { status: "running", owner: "w1", leaseUntil: T0 + 9, epoch: 1, startedAt: T0 }),
      instance("m1", { params: bytes(8) }),
      instance("m1", { workflow: OTHER }),
    ];
    expect(await ctx.store.instances.insertMany(rows)).toEqual([true, false, true, false, true]);
    expect(await ctx.store.instances.insertMany([])).toEqual([]);
    const m1 = await ctx.store.instances.get(W, "m1");
    expect(m1).toMatchObject({ status: "queued", priority: 0, readyAt: T0 + 5, updatedAt: T0 });
    expectBytes(m1!.params, bytes(1, 2, 3));
    expectBytes((await ctx.store.instances.get(W, "taken"))!.params, bytes(1, 2, 3));
    expect(await ctx.store.instances.get(W, "m2")).toMatchObject({
      status: "running",
      owner: "w1",
      leaseUntil: T0 + 9,
      epoch: 1,
      startedAt: T0,
      readyAt: T0,
    });
    expect(await ctx.store.instances.get(OTHER, "m1")).toBeDefined();
  });

  it("keeps the same id apart in different workflows", async () => {
    expect(await insert(ctx.store, instance("a"))).toBe(true);
    expect(await insert(ctx.store, instance("a", { workflow: OTHER, params: bytes(5) }))).toBe(true);
    expectBytes((await ctx.store.instances.get(W, "a"))!.params, bytes(1, 2, 3));
    expectBytes((await ctx.store.instances.get(OTHER, "a"))!.params, bytes(5));
  });

  it("lets exactly one of several concurrent inserts of one id win", async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => insert(ctx.store, instance("a", { params: bytes(n) }))),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  const patches: [string, InstancePatch][] = [
    ["status", { status: "complete" }],
    ["output (bytes)", { output: bytes(0, 255, 128, 7) }],
    ["output (empty bytes)", { output: new Uint8Array(0) }],
    ["error", { error: { name: "TypeError", message: "x is not a function — ünïcödé" } }],
    ["updatedAt", { updatedAt: T0 + 99 }],
    ["startedAt", { startedAt: T0 + 1 }],
    ["endedAt", { endedAt: T0 + 2 }],
    ["pausedAt", { pausedAt: T0 + 3 }],
    ["readyAt", { readyAt: T0 + 4 }],
    ["priority", { priority: 0 }],
    ["epoch", { epoch: 12 }],
    ["owner", { owner: "worker-9" }],
    ["leaseUntil", { leaseUntil: T0 + 60_000 }],
  ];
  for (const [field, patch] of patches)
    it(`patches ${field} and reads it back`, async () => {
      await insert(ctx.store, instance("a"));
      const before = (await ctx.store.instances.get(W, "a"))!;
      expect(await ctx.store.instances.update(W, "a", patch)).toBe(true);
      const after = (await ctx.store.instances.get(W, "a"))!;
      expect(after).toEqual({ ...before, ...patch });
      if (patch.output) expectBytes(after.output, patch.output);
    });

  it("patches nullable fields back to null", async () => {
    await insert(ctx.store, instance("a", { startedAt: T0, owner: "w", leaseUntil: T0 + 1 }));
    await ctx.store.instances.update(W, "a", {
      output: bytes(1),
      error: { name: "Error", message: "boom" },
      endedAt: T0 + 2,
      pausedAt: T0 + 3,
    });
    const nulls: InstancePatch = {
      output: null,
      error: null,
      startedAt: null,
      endedAt: null,
      pausedAt: null,
      readyAt: null,
      owner: null,
      leaseUntil: null,
    };
    const before = (await ctx.store.instances.get(W, "a"))!;
    expect(await ctx.store.instances.update(W, "a", nulls)).toBe(true);
    expect(await ctx.store.instances.get(W, "a")).toEqual({ ...before, ...nulls });
  });

  it("patches several fields at once and leaves undefined fields unchanged", async () => {
    await insert(ctx.store, instance("a", { owner: "w1" }));
    const before = (await ctx.store.instances.get(W, "a"))!;
    const patch: InstancePatch = { status: "running", epoch: 2, owner: undefined, updatedAt: T0 + 10 };
    expect(await ctx.store.instances.update(W, "a", patch)).toBe(true);
    expect(await ctx.store.instances.get(W, "a")).toEqual({
      ...before,
      status: "running",
      epoch: 2,
      updatedAt: T0 + 10,
    });
  });

  it("returns false when updating a missing instance", async () => {
    expect(await ctx.store.instances.update(W, "missing", { status: "running" })).toBe(false);
    expect(await ctx.store.instances.update(W, "missing", {})).toBe(false);
    expect(await ctx.store.instances.get(W, "missing")).toBeUndefined();
  });

  describe("guards", () => {
    const guarded = async () => {
      await insert(ctx.store, instance("a", { status: "running", epoch: 3, owner: "w1" }));
      return (await ctx.store.instances.get(W, "a"))!;
    };
    const refused: [string, Parameters<Store["instances"]["update"]>[3]][] = [
      ["an older epoch", { epoch: 2 }],
      ["a newer epoch", { epoch: 4 }],
      ["a status not in statusIn", { statusIn: ["queued", "waiting"] }],
      ["an empty statusIn", { statusIn: [] }],
      ["another owner", { owner: "w2" }],
      ["one mismatch among matches", { epoch: 3, statusIn: ["running"], owner: "w2" }],
    ];
    for (const [what, guard] of refused)
      it(`refuses ${what} and changes nothing`, async () => {
        const before = await guarded();
        expect(await ctx.store.instances.update(W, "a", { status: "complete", epoch: 9 }, guard)).toBe(false);
        expect(await ctx.store.instances.get(W, "a")).toEqual(before);
      });

    it("refuses an owner guard on an instance without owner", async () => {
      await insert(ctx.store, instance("a"));
      expect(await ctx.store.instances.update(W, "a", { status: "running" }, { owner: "w1" })).toBe(false);
      expect((await ctx.store.instances.get(W, "a"))!.status).toBe("queued");
    });

    it("applies the patch when every condition holds", async () => {
      await guarded();
      const guard = { epoch: 3, statusIn: ["paused", "running"] as InstanceStatus[], owner: "w1" };
      expect(await ctx.store.instances.update(W, "a", { status: "complete" }, guard)).toBe(true);
      expect((await ctx.store.instances.get(W, "a"))!.status).toBe("complete");
    });

    it("checks the guard for an empty patch", async () => {
      await guarded();
      expect(await ctx.store.instances.update(W, "a", {}, { epoch: 3 })).toBe(true);
      expect(await ctx.store.instances.update(W, "a", {}, { epoch: 2 })).toBe(false);
      expect(await ctx.store.instances.update(W, "a", {}, { statusIn: ["queued"] })).toBe(false);
    });

    it("appends history with an update only when the update applies", async () => {
      await guarded();
      const log = (type: NewHistoryEntry["type"]) => [
        entry("a", { type }),
        entry("a", { type: "workflow_running" }),
      ];
      expect(
        await ctx.store.instances.update(
          W,
          "a",
          { status: "complete" },
          { epoch: 2 },
          log("workflow_completed"),
        ),
      ).toBe(false);
      expect(await ctx.store.instances.update(W, "a", {}, { epoch: 2 }, log("workflow_paused"))).toBe(false);
      expect(await ctx.store.history.list(W, "a")).toEqual([]);
      expect(await ctx.store.instances.update(W, "a", {}, { epoch: 3 }, log("workflow_paused"))).toBe(true);
      expect(
        await ctx.store.instances.update(
          W,
          "a",
          { status: "complete" },
          { epoch: 3 },
          log("workflow_completed"),
        ),
      ).toBe(true);
      expect((await ctx.store.instances.get(W, "a"))!.status).toBe("complete");
      const history = await ctx.store.history.list(W, "a");
      expect(history.map((e) => e.type)).toEqual([
        "workflow_paused",
        "workflow_running",
        "workflow_completed",
        "workflow_running",
      ]);
      expectIncreasing(eventIds(history));
    });

    it("lets only one of two writers fenced on the same epoch win", async () => {
      await guarded();
      const [a, b] = await Promise.all([
        ctx.store.instances.update(W, "a", { epoch: 4, owner: "w2" }, { epoch: 3 }),
        ctx.store.instances.update(W, "a", { epoch: 4, owner: "w3" }, { epoch: 3 }),
      ]);
      expect([a, b].filter(Boolean)).toHaveLength(1);
      expect((await ctx.store.instances.get(W, "a"))!.owner).toBe(a ? "w2" : "w3");
    });
  });

  it("deletes an instance with its steps, events and history, and nothing else", async () => {
    await populate(ctx.store, "a");
    await populate(ctx.store, "b");
    expect(await ctx.store.instances.delete(W, "a")).toBe(true);
    expect(await ctx.store.instances.get(W, "a")).toBeUndefined();
    expect(await ctx.store.steps.list(W, "a")).toEqual([]);
    expect(await ctx.store.events.list(W, "a")).toEqual([]);
    expect(await ctx.store.history.list(W, "a")).toEqual([]);
    expect(await ctx.store.instances.get(W, "b")).toBeDefined();
    expect(await ctx.store.steps.list(W, "b")).toHaveLength(1);
    expect(await ctx.store.events.list(W, "b")).toHaveLength(1);
    expect(await ctx.store.history.list(W, "b")).toHaveLength(2);
  });

  it("rewinds from given steps: forgets them, the events they received and their history, and nothing else", async () => {
    await insert(ctx.store, instance("a", { status: "running", readyAt: null }));
    const first = { kind: "do" as const, name: "first", count: 1 };
    const wait = { kind: "waitForEvent" as const, name: "approval", count: 1 };
    const last = { kind: "do" as const, name: "last", count: 1 };
    await putStep(ctx.store, step("a", { ...first, seq: 1, status: "succeeded" }));
    await putStep(ctx.store, step("a", { ...wait, seq: 2, status: "succeeded", eventType: "approved" }));
    await putStep(ctx.store, step("a", { ...last, seq: 3, status: "running" }));
    const send = (type: string) =>
      ctx.store.events.insert({ workflow: W, instanceId: "a", type, payload: bytes(1), timestamp: T0 });
    await send("approved");
    await send("approved");
    await ctx.store.events.consume(W, "a", "approved", stepKeyString(wait));
    await ctx.store.history.append([
      entry("a", { type: "workflow_queued" }),
      entry("a", { type: "step_completed", step: first }),
      entry("a", { type: "workflow_waiting" }),
      entry("a", { type: "wait_completed", step: wait }),
      entry("a", { type: "workflow_running" }),
      entry("a", { type: "step_started", step: last }),
    ]);
    await populate(ctx.store, "b");
    const row = await ctx.store.instances.get(W, "a");
    const history = await ctx.store.history.list(W, "a");
    await ctx.store.instances.rewind(W, "a", { steps: [wait, last], afterEventId: history[2]!.eventId });
    expect((await ctx.store.steps.list(W, "a")).map((s) => s.name)).toEqual(["first"]);
    expect((await ctx.store.events.list(W, "a")).map((e) => e.consumedBy)).toEqual([null]);
    expect(eventIds(await ctx.store.history.list(W, "a"))).toEqual(eventIds(history.slice(0, 3)));
    expect(await ctx.store.instances.get(W, "a")).toEqual(row);
    expect(await ctx.store.steps.list(W, "b")).toHaveLength(1);
    expect(await ctx.store.events.list(W, "b")).toHaveLength(1);
    expect(await ctx.store.history.list(W, "b")).toHaveLength(2);
    await ctx.store.instances.rewind(W, "a");
    expect(await ctx.store.steps.list(W, "a")).toEqual([]);
    expect(await ctx.store.events.list(W, "a")).toEqual([]);
    expect(await ctx.store.history.list(W, "a")).toEqual([]);
    expect(await ctx.store.instances.get(W, "a")).toEqual(row);
  });

  it("lets exactly one of several concurrent creates of one id win", async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((n) =>
        ctx.store.instances.create({
          row: { workflow: W, id: "a", params: bytes(n), createdAt: T0 },
          history: [entry("a", { type: "workflow_queued" })],
        }),
      ),
    );
    expect(results.filter((r) => r === "queued")).toHaveLength(1);
    expect(results.filter((r) => r === "exists")).toHaveLength(4);
    expect(await ctx.store.history.list(W, "a")).toHaveLength(1);
  });

  it("returns false when deleting a missing instance", async () => {
    await populate(ctx.store, "a");
    expect(await ctx.store.instances.delete(W, "missing")).toBe(false);
    expect(await ctx.store.instances.delete(OTHER, "a")).toBe(false);
    expect(await ctx.store.instances.delete(W, "a")).toBe(true);
    expect(await ctx.store.instances.delete(W, "a")).toBe(false);
  });

  it("counts instances per workflow and status", async () => {
    const rows: [string, string, InstanceStatus][] = [
      [W, "a", "queued"],
      [W, "b", "queued"],
      [W, "c", "running"],
      [W, "d", "complete"],
      [OTHER, "a", "queued"],
      [OTHER, "e", "errored"],
    ];
    for (const [workflow, id, status] of rows) await insert(ctx.store, instance(id, { workflow, status }));
    const sorted = (c: { workflow: string; status: string; count: number }[]) =>
      [...c].sort((x, y) => `${x.workflow}/${x.status}`.localeCompare(`${y.workflow}/${y.status}`));
    expect(sorted(await ctx.store.instances.countByStatus(W))).toEqual([
      { workflow: W, status: "complete", count: 1 },
      { workflow: W, status: "queued", count: 2 },
      { workflow: W, status: "running", count: 1 },
    ]);
    expect(sorted(await ctx.store.instances.countByStatus())).toEqual([
      { workflow: OTHER, status: "errored", count: 1 },
      { workflow: OTHER, status: "queued", count: 1 },
      { workflow: W, status: "complete", count: 1 },
      { workflow: W, status: "queued", count: 2 },
      { workflow: W, status: "running", count: 1 },
    ]);
    expect(await ctx.store.instances.countByStatus("nobody")).toEqual([]);
  });
}

export function listTests(ctx: Ctx): void {
  /** 250 ids inserted in a scrambled order, all with the same createdAt. */
  const N = 250;
  const allIds = Array.from({ length: N }, (_, n) => `inst-${String(n).padStart(3, "0")}`);
  const insertTwoHundredFifty = () =>
    ctx.store.transaction(async (tx) => {
      for (let n = 0; n < N; n++) await insert(tx, instance(allIds[(n * 97) % N]!));
      await insert(tx, instance("inst-x", { workflow: OTHER }));
    });

  it("pages through equal createdAt values in id order, without duplicates or gaps", async () => {
    await insertTwoHundredFifty();
    for (const limit of [1, 17, 25, 249, 250, 1000]) {
      const rows = await listAll(ctx.store, { workflow: W, limit });
      expect(ids(rows), `limit ${limit}`).toEqual(allIds);
    }
  });

  it("pages backwards with direction desc", async () => {
    await insertTwoHundredFifty();
    for (const limit of [17, 25]) {
      const rows = await listAll(ctx.store, { workflow: W, limit, direction: "desc" });
      expect(ids(rows), `limit ${limit}`).toEqual([...allIds].reverse());
    }
  });

  it("gives no cursor on the last page, also when it is exactly full", async () => {
    await insertTwoHundredFifty();
    const first = await ctx.store.instances.list({ workflow: W, limit: 200 });
    expect(first.items).toHaveLength(200);
    expect(first.cursor).toBeDefined();
    const last = await ctx.store.instances.list({ workflow: W, limit: 50, cursor: first.cursor! });
    expect(last.items).toHaveLength(50);
    expect(last.cursor).toBeUndefined();
    expect((await ctx.store.instances.list({ workflow: "nobody", limit: 10 })).items).toEqual([]);
  });

  it("orders by createdAt, then id, in both directions", async () => {
    const rows = Array.from({ length: 40 }, (_, n) => instance(`i-${String((n * 7) % 40).padStart(2, "0")}`));
    // createdAt runs against the id order for some rows, so sorting by id alone would be wrong.
    for (const r of rows) r.createdAt = T0 + Math.floor((39 - Number(r.id.slice(2))) / 4);
    for (const r of rows) await insert(ctx.store, r);
    const expected = [...rows]
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
      .map((r) => r.id);
    expect(ids(await listAll(ctx.store, { workflow: W, limit: 3 }))).toEqual(expected);
    expect(ids(await listAll(ctx.store, { workflow: W, limit: 3, direction: "desc" }))).toEqual(
      [...expected].reverse(),
    );
  });

  it("filters by status across pages", async () => {
    const statuses: InstanceStatus[] = ["queued", "running", "complete", "errored"];
    for (let n = 0; n < 60; n++)
      await insert(
        ctx.store,
        instance(`i-${String(n).padStart(2, "0")}`, { status: statuses[n % 4]!, createdAt: T0 + (n % 5) }),
      );
    const all = await listAll(ctx.store, { workflow: W, limit: 100 });
    for (const status of statuses) {
      const expected = ids(all.filter((r) => r.status === status));
      expect(expected).toHaveLength(15);
      expect(ids(await listAll(ctx.store, { workflow: W, limit: 4, status }))).toEqual(expected);
      expect(ids(await listAll(ctx.store, { workflow: W, limit: 4, status, direction: "desc" }))).toEqual(
        [...expected].reverse(),
      );
    }
    expect(await listAll(ctx.store, { workflow: W, limit: 4, status: "paused" })).toEqual([]);
  });

  it("filters by creation time, bounds included", async () => {
    for (let n = 0; n < 10; n++) await insert(ctx.store, instance(`i-${n}`, { createdAt: T0 + n * 1000 }));
    expect(
      ids(
        await listAll(ctx.store, {
          workflow: W,
          limit: 2,
          createdAfter: T0 + 3000,
          createdBefore: T0 + 6000,
        }),
      ),
    ).toEqual(["i-3", "i-4", "i-5", "i-6"]);
    expect(ids(await listAll(ctx.store, { workflow: W, limit: 3, createdAfter: T0 + 7500 }))).toEqual([
      "i-8",
      "i-9",
    ]);
    expect(
      ids(await listAll(ctx.store, { workflow: W, limit: 3, createdBefore: T0 + 1000, direction: "desc" })),
    ).toEqual(["i-1", "i-0"]);
  });

  it("searches by id substring, taking the search text literally", async () => {
    for (const id of ["order-17", "order-170", "user-17", "a_b", "axb", "50%", "500", "Order-18"])
      await insert(ctx.store, instance(id));
    const search = async (s: string) =>
      sortIds(ids(await listAll(ctx.store, { workflow: W, limit: 2, search: s })));
    expect(await search("der-17")).toEqual(["order-17", "order-170"]);
    expect(await search("-17")).toEqual(["order-17", "order-170", "user-17"]);
    expect(await search("_")).toEqual(["a_b"]);
    expect(await search("%")).toEqual(["50%"]);
    expect(await search("nothing")).toEqual([]);
  });

  it("stays consistent when instances are inserted between pages", async () => {
    for (let n = 0; n < 30; n++)
      await insert(ctx.store, instance(`i-${String(n).padStart(2, "0")}`, { createdAt: T0 + n }));
    const first = await ctx.store.instances.list({ workflow: W, limit: 10 });
    await insert(ctx.store, instance("early", { createdAt: T0 - 1 }));
    await insert(ctx.store, instance("late", { createdAt: T0 + 100 }));
    const rest = await listAll(ctx.store, { workflow: W, limit: 10 });
    let cursor = first.cursor;
    const seen = ids(first.items);
    while (cursor) {
      const page = await ctx.store.instances.list({ workflow: W, limit: 10, cursor });
      seen.push(...ids(page.items));
      cursor = page.cursor;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).not.toContain("early");
    expect(seen).toContain("late");
    expect(seen).toHaveLength(31);
    expect(rest).toHaveLength(32);
  });

  it("rejects an invalid cursor", async () => {
    await insert(ctx.store, instance("a"));
    for (const cursor of ["nope", "!!!", btoa(JSON.stringify({ createdAt: 1, id: "a" })), btoa("[1]")])
      await expect(
        ctx.store.instances.list({ workflow: W, limit: 10, cursor }),
        cursor,
      ).rejects.toMatchObject({
        code: "body",
      });
  });
}
