/**
 * The store conformance suite: every `Store` implementation runs it from a three-line test file.
 *
 * ```ts
 * import { storeConformance } from "@cairn/store/conformance";
 * import { openSqliteStore } from "./sqlite-store.ts";
 * storeConformance("sqlite (memory)", () => openSqliteStore({ path: ":memory:" }));
 * ```
 *
 * Each test gets a fresh, migrated store from `open` and closes it afterwards. Stores whose data
 * outlives the store object (a file, a server) also pass `reopen`, which enables the persistence tests.
 * The suite pins down behaviour the interface documents and a few choices it leaves open, so every
 * store agrees: inserted instances default to `queued`, priority 1, epoch 0 and `readyAt = createdAt`;
 * `createdAfter`/`createdBefore` are inclusive; an empty `statusIn` guard matches nothing.
 */
import {
  type InstanceStatus,
  type NewHistoryEntry,
  type ResolvedStepConfig,
  type StepKind,
  stepKeyString,
} from "@cairn/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store, StoreTx } from "./store.ts";
import type {
  HistoryEntry,
  InstanceCreate,
  InstancePatch,
  InstanceRow,
  NewInstance,
  StepCommit,
  StepRow,
} from "./types.ts";

export interface StoreConformanceOptions {
  /**
   * Opens again the store most recently returned by `open`, after the suite has closed it. Only for
   * stores whose data survives `close()`; enables the persistence tests.
   */
  reopen?: () => Promise<Store>;
}

interface Ctx {
  store: Store;
  closed: boolean;
  reopen: (() => Promise<Store>) | undefined;
}

const W = "orders";
const OTHER = "invoices";
/** A realistic epoch-milliseconds time, so large integers are exercised everywhere. */
const T0 = 1_767_225_600_000;
const CONFIG: ResolvedStepConfig = {
  retries: { limit: 3, delay: "5 seconds", backoff: "linear" },
  timeout: 30_000,
  sensitive: "output",
};

export function storeConformance(
  name: string,
  open: () => Promise<Store>,
  options: StoreConformanceOptions = {},
): void {
  describe(`store conformance: ${name}`, () => {
    const ctx: Ctx = { store: undefined as unknown as Store, closed: false, reopen: options.reopen };
    beforeEach(async () => {
      ctx.store = await open();
      ctx.closed = false;
    });
    afterEach(async () => {
      if (!ctx.closed) await ctx.store.close();
    });

    describe("instances", () => instanceTests(ctx));
    describe("instances.list", () => listTests(ctx));
    describe("instances: claiming and leases", () => claimTests(ctx));
    describe("steps", () => stepTests(ctx));
    describe("events", () => eventTests(ctx));
    describe("history", () => historyTests(ctx));
    describe("transactions", () => transactionTests(ctx));
    describe("byte values", () => byteTests(ctx));
    describe("lifecycle", () => lifecycleTests(ctx));
  });
}

// ---------------------------------------------------------------------------------------------------
// Helpers

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

function expectBytes(actual: Uint8Array | null | undefined, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  const a = actual as Uint8Array;
  expect(a.length).toBe(expected.length);
  let firstDiff = -1;
  for (let i = 0; i < a.length; i++)
    if (a[i] !== expected[i]) {
      firstDiff = i;
      break;
    }
  expect(firstDiff, "index of the first differing byte").toBe(-1);
}

function instance(id: string, over: Partial<NewInstance> = {}): NewInstance {
  return { workflow: W, id, params: bytes(1, 2, 3), createdAt: T0, ...over };
}

function step(instanceId: string, over: Partial<StepRow> = {}): StepRow {
  return {
    workflow: W,
    instanceId,
    kind: "do",
    name: "load order",
    count: 1,
    seq: 1,
    status: "running",
    config: CONFIG,
    attempts: 1,
    result: null,
    error: null,
    startedAt: T0,
    endedAt: null,
    wakeAt: null,
    eventType: null,
    ...over,
  };
}

/** A history entry; stores keep `data` as opaque JSON, so the suite passes any. */
function entry(
  instanceId: string,
  over: Partial<Omit<NewHistoryEntry, "data">> & { data?: Record<string, unknown> } = {},
): NewHistoryEntry {
  return { workflow: W, instanceId, type: "workflow_running", timestamp: T0, ...over } as NewHistoryEntry;
}

const ids = (rows: { id: string }[]) => rows.map((r) => r.id);
const eventIds = (rows: HistoryEntry[]) => rows.map((r) => r.eventId);
const sortIds = (a: string[]) => [...a].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

function expectIncreasing(values: number[]): void {
  for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThan(values[i - 1]!);
}

/** Reads every page of a listing and checks the page shape on the way. */
async function listAll(
  store: Store,
  query: Omit<Parameters<Store["instances"]["list"]>[0], "cursor">,
): Promise<InstanceRow[]> {
  const all: InstanceRow[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await store.instances.list({ ...query, ...(cursor === undefined ? {} : { cursor }) });
    all.push(...page.items);
    if (page.cursor === undefined) return all;
    expect(page.items.length, "a page followed by a cursor is full").toBe(query.limit);
    cursor = page.cursor;
  }
  throw new Error("listing did not end");
}

/** Fills the store with the three kinds of per-instance data. */
async function populate(store: Store, instanceId: string): Promise<void> {
  await store.instances.insert(instance(instanceId));
  await store.steps.put(step(instanceId));
  await store.events.insert({
    workflow: W,
    instanceId,
    type: "approval",
    payload: bytes(9),
    timestamp: T0,
  });
  await store.history.append([entry(instanceId), entry(instanceId, { type: "workflow_completed" })]);
}

// ---------------------------------------------------------------------------------------------------
// Instances

function instanceTests(ctx: Ctx): void {
  it("inserts an instance with defaults and reads it back", async () => {
    expect(await ctx.store.instances.insert(instance("a"))).toBe(true);
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
    expect(await ctx.store.instances.insert(row)).toBe(true);
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
    await ctx.store.instances.insert(instance("a"));
    expect(await ctx.store.instances.get(W, "missing")).toBeUndefined();
    expect(await ctx.store.instances.get(OTHER, "a")).toBeUndefined();
  });

  it("refuses a duplicate insert and leaves the row unchanged", async () => {
    await ctx.store.instances.insert(instance("a"));
    const before = await ctx.store.instances.get(W, "a");
    const again = instance("a", { params: bytes(7), status: "running", createdAt: T0 + 5, priority: 0 });
    expect(await ctx.store.instances.insert(again)).toBe(false);
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
      expect(await ctx.store.instances.claim({ owner: "w2", now: T0 + 1, limit: 5, leaseMs: 1000 })).toEqual(
        [],
      );
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
      expect(await ctx.store.instances.countRunning()).toBe(3);
    });

    it("writes nothing for an id that exists", async () => {
      await ctx.store.instances.insert(instance("a"));
      expect(await ctx.store.instances.create(create("a", { start }))).toBe("exists");
      expect(await ctx.store.instances.get(W, "a")).toMatchObject({ status: "queued", epoch: 0 });
      expect(await ctx.store.history.list(W, "a")).toEqual([]);
    });
  });

  it("inserts many rows at once, skipping existing ids and repeats of an id", async () => {
    await ctx.store.instances.insert(instance("taken"));
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
    expect(await ctx.store.instances.insert(instance("a"))).toBe(true);
    expect(await ctx.store.instances.insert(instance("a", { workflow: OTHER, params: bytes(5) }))).toBe(true);
    expectBytes((await ctx.store.instances.get(W, "a"))!.params, bytes(1, 2, 3));
    expectBytes((await ctx.store.instances.get(OTHER, "a"))!.params, bytes(5));
  });

  it("lets exactly one of several concurrent inserts of one id win", async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => ctx.store.instances.insert(instance("a", { params: bytes(n) }))),
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
      await ctx.store.instances.insert(instance("a"));
      const before = (await ctx.store.instances.get(W, "a"))!;
      expect(await ctx.store.instances.update(W, "a", patch)).toBe(true);
      const after = (await ctx.store.instances.get(W, "a"))!;
      expect(after).toEqual({ ...before, ...patch });
      if (patch.output) expectBytes(after.output, patch.output);
    });

  it("patches nullable fields back to null", async () => {
    await ctx.store.instances.insert(instance("a", { startedAt: T0, owner: "w", leaseUntil: T0 + 1 }));
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
    await ctx.store.instances.insert(instance("a", { owner: "w1" }));
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
      await ctx.store.instances.insert(instance("a", { status: "running", epoch: 3, owner: "w1" }));
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
      await ctx.store.instances.insert(instance("a"));
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
    for (const [workflow, id, status] of rows)
      await ctx.store.instances.insert(instance(id, { workflow, status }));
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

// ---------------------------------------------------------------------------------------------------
// Listing

function listTests(ctx: Ctx): void {
  /** 250 ids inserted in a scrambled order, all with the same createdAt. */
  const N = 250;
  const allIds = Array.from({ length: N }, (_, n) => `inst-${String(n).padStart(3, "0")}`);
  const insertTwoHundredFifty = () =>
    ctx.store.transaction(async (tx) => {
      for (let n = 0; n < N; n++) await tx.instances.insert(instance(allIds[(n * 97) % N]!));
      await tx.instances.insert(instance("inst-x", { workflow: OTHER }));
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
    for (const r of rows) await ctx.store.instances.insert(r);
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
      await ctx.store.instances.insert(
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
    for (let n = 0; n < 10; n++)
      await ctx.store.instances.insert(instance(`i-${n}`, { createdAt: T0 + n * 1000 }));
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
      await ctx.store.instances.insert(instance(id));
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
      await ctx.store.instances.insert(instance(`i-${String(n).padStart(2, "0")}`, { createdAt: T0 + n }));
    const first = await ctx.store.instances.list({ workflow: W, limit: 10 });
    await ctx.store.instances.insert(instance("early", { createdAt: T0 - 1 }));
    await ctx.store.instances.insert(instance("late", { createdAt: T0 + 100 }));
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
    await ctx.store.instances.insert(instance("a"));
    for (const cursor of ["nope", "!!!", btoa(JSON.stringify({ createdAt: 1, id: "a" })), btoa("[1]")])
      await expect(
        ctx.store.instances.list({ workflow: W, limit: 10, cursor }),
        cursor,
      ).rejects.toMatchObject({
        code: "body",
      });
  });
}

// ---------------------------------------------------------------------------------------------------
// Claiming

function claimTests(ctx: Ctx): void {
  const now = T0 + 1000;
  const claim = (over: Partial<Parameters<Store["instances"]["claim"]>[0]> = {}) =>
    ctx.store.instances.claim({ owner: "w1", now, limit: 10, leaseMs: 30_000, ...over });

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
    for (const r of rows) await ctx.store.instances.insert(r);
    expect(sortIds(ids(await claim()))).toEqual(["queued", "waiting"]);
    expect(await claim()).toEqual([]);
  });

  it("claims waking instances (priority 0) first, then by readyAt, up to the limit", async () => {
    await ctx.store.instances.insert(instance("p1-late", { priority: 1, readyAt: now - 100 }));
    await ctx.store.instances.insert(
      instance("p0-late", { priority: 0, readyAt: now - 50, status: "waiting" }),
    );
    await ctx.store.instances.insert(instance("p1-early", { priority: 1, readyAt: now - 900 }));
    await ctx.store.instances.insert(
      instance("p0-early", { priority: 0, readyAt: now - 80, status: "waiting" }),
    );
    await ctx.store.instances.insert(instance("p0-future", { priority: 0, readyAt: now + 5 }));
    const order: string[] = [];
    for (let i = 0; i < 5; i++) order.push(...ids(await claim({ limit: 1 })));
    expect(order).toEqual(["p0-early", "p0-late", "p1-early", "p1-late"]);
  });

  it("with maxRunning, claims only up to the running instances' cap, in or outside a transaction", async () => {
    const lease = { owner: "w9", leaseUntil: now + 60_000, epoch: 1, startedAt: now - 10 };
    await ctx.store.instances.insert(instance("r1", { status: "running", readyAt: null, ...lease }));
    await ctx.store.instances.insert(instance("r2", { status: "waitingForPause", readyAt: null, ...lease }));
    await ctx.store.instances.insert(instance("w1", { status: "waiting", readyAt: now + 1000, ...lease }));
    for (let n = 0; n < 5; n++) await ctx.store.instances.insert(instance(`q${n}`, { readyAt: now - n }));
    expect(await claim({ maxRunning: 4 })).toHaveLength(2);
    expect(await claim({ maxRunning: 4 })).toEqual([]);
    expect(await claim({ maxRunning: 2 })).toEqual([]);
    await ctx.store.instances.update(W, "r1", { status: "complete", owner: null, leaseUntil: null });
    expect(
      await ctx.store.transaction((tx) =>
        tx.instances.claim({ owner: "w1", now, limit: 10, leaseMs: 30_000, maxRunning: 4 }),
      ),
    ).toHaveLength(1);
    expect(await ctx.store.instances.countRunning()).toBe(4);
    expect(await ctx.store.transaction((tx) => tx.instances.countRunning({ lockClaims: true }))).toBe(4);
    expect(await claim({ maxRunning: 100, limit: 1 })).toHaveLength(1);
  });

  it("respects the limit", async () => {
    for (let n = 0; n < 7; n++) await ctx.store.instances.insert(instance(`i-${n}`, { readyAt: now - n }));
    expect(await claim({ limit: 3 })).toHaveLength(3);
    expect(await claim({ limit: 3 })).toHaveLength(3);
    expect(await claim({ limit: 3 })).toHaveLength(1);
    expect(await claim({ limit: 3 })).toHaveLength(0);
  });

  it("makes a claimed instance running, with a new epoch, the owner and a lease", async () => {
    await ctx.store.instances.insert(instance("new", { readyAt: now - 10, epoch: 2 }));
    await ctx.store.instances.insert(
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
    await ctx.store.instances.insert(
      instance("a", { status: "waiting", readyAt: now - 10, owner: "w1", leaseUntil: now + 500, epoch: 1 }),
    );
    expect(await claim({ owner: "w2" })).toEqual([]);
    expect((await ctx.store.instances.get(W, "a"))!.owner).toBe("w1");
    const later = await claim({ owner: "w2", now: now + 501 });
    expect(later).toHaveLength(1);
    expect(later[0]).toMatchObject({ id: "a", owner: "w2", epoch: 2, leaseUntil: now + 501 + 30_000 });
  });

  it("takes over instances left running by another worker whose lease expired, before ready ones", async () => {
    await ctx.store.instances.insert(instance("ready", { readyAt: now - 900, priority: 0 }));
    await ctx.store.instances.insert(
      instance("orphan", { status: "running", readyAt: null, owner: "dead", leaseUntil: now - 1, epoch: 4 }),
    );
    await ctx.store.instances.insert(
      instance("pausing", {
        status: "waitingForPause",
        readyAt: null,
        owner: "dead",
        leaseUntil: now - 1,
        startedAt: T0 + 3,
      }),
    );
    await ctx.store.instances.insert(
      instance("alive", { status: "running", readyAt: null, owner: "w2", leaseUntil: now + 1 }),
    );
    await ctx.store.instances.insert(
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
    await ctx.store.instances.insert(
      instance("a", { status: "running", readyAt: null, owner: "dead", leaseUntil: now + 60_000 }),
    );
    await ctx.store.instances.insert(
      instance("b", { status: "waiting", readyAt: now - 1, owner: "dead", leaseUntil: now + 60_000 }),
    );
    await ctx.store.instances.insert(instance("c", { status: "complete", readyAt: null }));
    expect(await claim()).toEqual([]);
    await ctx.store.instances.expireLeases();
    expect((await ctx.store.instances.get(W, "c"))!.leaseUntil).toBeNull();
    const taken = await claim();
    expect(sortIds(ids(taken))).toEqual(["a", "b"]);
    // Taken over from the process that left them: an attempt may have been in flight.
    expect(taken.map((r) => r.takenOver)).toEqual([true, true]);
    await ctx.store.instances.insert(instance("d", { readyAt: now - 1 }));
    expect((await claim()).map((r) => [r.id, r.takenOver])).toEqual([["d", undefined]]);
  });

  it("gives each instance to one of several concurrent claimers", async () => {
    for (let n = 0; n < 12; n++) await ctx.store.instances.insert(instance(`i-${n}`, { readyAt: now - n }));
    const results = await Promise.all(["w1", "w2", "w3"].map((owner) => claim({ owner, limit: 5 })));
    const claimed = results.flatMap(ids);
    expect(sortIds(claimed)).toEqual(sortIds(Array.from({ length: 12 }, (_, n) => `i-${n}`)));
    for (const [i, owner] of ["w1", "w2", "w3"].entries())
      for (const r of results[i]!) expect((await ctx.store.instances.get(W, r.id))!.owner).toBe(owner);
  });

  it("reports the earliest readyAt of claimable instances", async () => {
    expect(await ctx.store.instances.nextReadyAt()).toBeUndefined();
    await ctx.store.instances.insert(instance("paused", { status: "paused", readyAt: now - 500 }));
    await ctx.store.instances.insert(instance("running", { status: "running", readyAt: now - 400 }));
    await ctx.store.instances.insert(instance("never", { readyAt: null }));
    expect(await ctx.store.instances.nextReadyAt()).toBeUndefined();
    await ctx.store.instances.insert(instance("b", { readyAt: now + 200 }));
    await ctx.store.instances.insert(
      instance("c", { workflow: OTHER, status: "waiting", readyAt: now + 100 }),
    );
    expect(await ctx.store.instances.nextReadyAt()).toBe(now + 100);
    await ctx.store.instances.insert(instance("d", { readyAt: now - 300 }));
    expect(await ctx.store.instances.nextReadyAt()).toBe(now - 300);
    await claim();
    expect(await ctx.store.instances.nextReadyAt()).toBe(now + 100);
  });

  it("renews the leases of the owner's running instances only", async () => {
    const lease = now + 10;
    await ctx.store.instances.insert(instance("a", { status: "running", owner: "w1", leaseUntil: lease }));
    await ctx.store.instances.insert(instance("b", { status: "running", owner: "w1", leaseUntil: lease }));
    await ctx.store.instances.insert(
      instance("c", { status: "waitingForPause", owner: "w1", leaseUntil: lease }),
    );
    await ctx.store.instances.insert(
      instance("d", { workflow: OTHER, status: "running", owner: "w1", leaseUntil: lease }),
    );
    await ctx.store.instances.insert(instance("e", { status: "running", owner: "w2", leaseUntil: lease }));
    await ctx.store.instances.insert(instance("f", { status: "complete", owner: "w1", leaseUntil: lease }));
    expect(await ctx.store.instances.renewLeases("w1", now + 60_000)).toBe(4);
    for (const [workflow, id] of [
      [W, "a"],
      [W, "b"],
      [W, "c"],
      [OTHER, "d"],
    ] as const)
      expect((await ctx.store.instances.get(workflow, id))!.leaseUntil).toBe(now + 60_000);
    expect((await ctx.store.instances.get(W, "e"))!.leaseUntil).toBe(lease);
    expect((await ctx.store.instances.get(W, "f"))!.leaseUntil).toBe(lease);
    expect(await ctx.store.instances.renewLeases("nobody", now + 60_000)).toBe(0);
  });

  it("counts instances that use a concurrency slot", async () => {
    expect(await ctx.store.instances.countRunning()).toBe(0);
    const statuses: InstanceStatus[] = [
      "queued",
      "running",
      "paused",
      "waiting",
      "waitingForPause",
      "complete",
    ];
    for (const [n, status] of statuses.entries())
      await ctx.store.instances.insert(instance(`i-${n}`, { status }));
    await ctx.store.instances.insert(instance("x", { workflow: OTHER, status: "running" }));
    expect(await ctx.store.instances.countRunning()).toBe(3);
    // Claiming makes the ready queued (i-0) and waiting (i-3) instances running.
    expect(sortIds(ids(await claim()))).toEqual(["i-0", "i-3"]);
    expect(await ctx.store.instances.countRunning()).toBe(5);
  });
}

// ---------------------------------------------------------------------------------------------------
// Steps

function stepTests(ctx: Ctx): void {
  it("puts a step and reads it back exactly", async () => {
    const row = step("a", {
      kind: "do",
      name: "charge: card ✓",
      count: 2,
      status: "succeeded",
      attempts: 3,
      result: bytes(0, 1, 254, 255),
      error: { name: "Error", message: "first attempts failed" },
      endedAt: T0 + 50,
      wakeAt: T0 + 60,
    });
    await ctx.store.steps.put(row);
    const got = await ctx.store.steps.get(W, "a", "do", "charge: card ✓", 2);
    expect(got).toEqual({ ...row, result: expect.any(Uint8Array) });
    expectBytes(got!.result, row.result!);
  });

  it("keeps a step's rollback flag and config, and a rollback step (SPEC §9.1)", async () => {
    await ctx.store.instances.insert(instance("a"));
    const rollbackConfig = {
      retries: { limit: 3, delay: "15 seconds", backoff: "linear" as const },
      timeout: "2 minutes",
    };
    const forward = step("a", { status: "succeeded", hasRollback: true, rollbackConfig, endedAt: T0 + 5 });
    const compensation = step("a", { kind: "rollback", status: "retrying", attempts: 1, wakeAt: T0 + 9 });
    await ctx.store.steps.put(forward);
    await ctx.store.steps.put(compensation);
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toEqual(forward);
    expect(await ctx.store.steps.get(W, "a", "rollback", "load order", 1)).toEqual(compensation);
    const plain = await ctx.store.steps.get(W, "a", "rollback", "load order", 1);
    expect(plain && "hasRollback" in plain).toBe(false);
  });

  it("commits a step with a rollback config through steps.commit", async () => {
    await ctx.store.instances.insert(instance("a", { readyAt: T0 }));
    const [row] = await ctx.store.instances.claim({ owner: "w1", now: T0 + 1, limit: 1, leaseMs: 30_000 });
    const rollbackConfig = { retries: { limit: 1, delay: 5, backoff: "constant" as const }, timeout: 1000 };
    const s = step("a", { status: "succeeded", hasRollback: true, rollbackConfig, endedAt: T0 + 5 });
    await ctx.store.steps.commit({
      workflow: W,
      instanceId: "a",
      epoch: row!.epoch,
      status: "running",
      now: T0 + 5,
      step: s,
      history: [],
    });
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toEqual(s);
    const rollback = { trigger: "error" as const, triggerError: { name: "Error", message: "boom" } };
    expect(await ctx.store.instances.update(W, "a", { rollback }, { epoch: row!.epoch })).toBe(true);
    expect((await ctx.store.instances.get(W, "a"))?.rollback).toEqual(rollback);
    expect(await ctx.store.instances.update(W, "a", { rollback: null })).toBe(true);
    expect((await ctx.store.instances.get(W, "a"))?.rollback ?? null).toBeNull();
  });

  describe("commit (a run's fenced step outcome)", () => {
    /** An instance claimed by w1 (epoch 1), running. */
    async function owned(id: string): Promise<InstanceRow> {
      await ctx.store.instances.insert(instance(id, { readyAt: T0 }));
      const [row] = await ctx.store.instances.claim({ owner: "w1", now: T0 + 1, limit: 1, leaseMs: 30_000 });
      expect(row?.id).toBe(id);
      return row!;
    }
    const commit = (row: InstanceRow, over: Partial<StepCommit> = {}): StepCommit => ({
      workflow: W,
      instanceId: row.id,
      epoch: row.epoch,
      status: "running",
      now: T0 + 10,
      step: step(row.id, { status: "succeeded", result: bytes(7), endedAt: T0 + 10 }),
      history: [
        entry(row.id, { type: "step_completed", step: { kind: "do", name: "load order", count: 1 } }),
      ],
      statusEntry: entry(row.id, { type: "workflow_waiting", timestamp: T0 + 10 }),
      ...over,
    });

    it("puts the step and appends the history when the run owns the instance", async () => {
      const row = await owned("a");
      expect(await ctx.store.steps.commit(commit(row))).toBe("running");
      const stored = await ctx.store.steps.get(W, "a", "do", "load order", 1);
      expect(stored?.status).toBe("succeeded");
      expectBytes(stored!.result, bytes(7));
      // The status did not change, so the status entry is left out and updatedAt is kept.
      expect((await ctx.store.history.list(W, "a")).map((e) => e.type)).toEqual(["step_completed"]);
      expect(await ctx.store.instances.get(W, "a")).toEqual(row);
    });

    it("stores a status change with its entry after the others", async () => {
      const row = await owned("a");
      const first = commit(row, {
        status: "waiting",
        step: step("a", { status: "sleeping", wakeAt: T0 + 99 }),
      });
      expect(await ctx.store.steps.commit(first)).toBe("running");
      const after = await ctx.store.instances.get(W, "a");
      expect(after).toEqual({ ...row, status: "waiting", updatedAt: T0 + 10 });
      const history = await ctx.store.history.list(W, "a");
      expect(history.map((e) => e.type)).toEqual(["step_completed", "workflow_waiting"]);
      expectIncreasing(eventIds(history));
      expect(await ctx.store.steps.commit(commit(row, { now: T0 + 20, statusEntry: undefined }))).toBe(
        "waiting",
      );
      expect((await ctx.store.instances.get(W, "a"))?.status).toBe("running");
    });

    it("keeps a pending pause: waitingForPause stays, and the step is stored", async () => {
      const row = await owned("a");
      await ctx.store.instances.update(W, "a", { status: "waitingForPause" });
      expect(await ctx.store.steps.commit(commit(row, { status: "waiting" }))).toBe("waitingForPause");
      expect((await ctx.store.instances.get(W, "a"))?.status).toBe("waitingForPause");
      expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toBeDefined();
      expect((await ctx.store.history.list(W, "a")).map((e) => e.type)).toEqual(["step_completed"]);
    });

    it("writes nothing for a run that lost the instance (new epoch, or no longer active)", async () => {
      const row = await owned("a");
      expect(await ctx.store.steps.commit(commit(row, { epoch: row.epoch - 1 }))).toBeUndefined();
      for (const status of ["paused", "terminated", "queued", "complete"] as const) {
        await ctx.store.instances.update(W, "a", { status });
        expect(await ctx.store.steps.commit(commit(row)), status).toBeUndefined();
      }
      expect(await ctx.store.steps.commit(commit({ ...row, id: "missing" }))).toBeUndefined();
      expect(await ctx.store.steps.list(W, "a")).toEqual([]);
      expect(await ctx.store.history.list(W, "a")).toEqual([]);
      expect(await ctx.store.steps.list(W, "missing")).toEqual([]);
    });

    it("is refused after another worker took the instance over", async () => {
      const row = await owned("a");
      const [taken] = await ctx.store.instances.claim({
        owner: "w2",
        now: T0 + 60_000,
        limit: 1,
        leaseMs: 30_000,
      });
      expect(taken?.epoch).toBe(row.epoch + 1);
      expect(await ctx.store.steps.commit(commit(row))).toBeUndefined();
      expect(await ctx.store.steps.commit(commit(taken!))).toBe("running");
    });

    it("rolls back with the transaction it is part of", async () => {
      const row = await owned("a");
      await expect(
        ctx.store.transaction(async (tx) => {
          expect(await tx.steps.commit(commit(row, { status: "waiting" }))).toBe("running");
          throw new Error("undo");
        }),
      ).rejects.toThrow("undo");
      expect(await ctx.store.instances.get(W, "a")).toEqual(row);
      expect(await ctx.store.steps.list(W, "a")).toEqual([]);
      expect(await ctx.store.history.list(W, "a")).toEqual([]);
    });
  });

  it("round-trips a waiting step with null config and an event type", async () => {
    const row = step("a", {
      kind: "waitForEvent",
      name: "approval",
      status: "waiting",
      config: null,
      attempts: 0,
      wakeAt: T0 + 86_400_000,
      eventType: "approved",
    });
    await ctx.store.steps.put(row);
    expect(await ctx.store.steps.get(W, "a", "waitForEvent", "approval", 1)).toEqual(row);
  });

  it("returns undefined for a missing step", async () => {
    await ctx.store.steps.put(step("a"));
    const key = ["do", "load order", 1] as const;
    expect(await ctx.store.steps.get(W, "a", ...key)).toBeDefined();
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 2)).toBeUndefined();
    expect(await ctx.store.steps.get(W, "a", "sleep", "load order", 1)).toBeUndefined();
    expect(await ctx.store.steps.get(W, "a", "do", "load", 1)).toBeUndefined();
    expect(await ctx.store.steps.get(W, "b", ...key)).toBeUndefined();
    expect(await ctx.store.steps.get(OTHER, "a", ...key)).toBeUndefined();
  });

  it("replaces the row of an existing step", async () => {
    await ctx.store.steps.put(step("a"));
    const done = step("a", { status: "succeeded", attempts: 2, result: bytes(4), endedAt: T0 + 9 });
    await ctx.store.steps.put(done);
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toEqual({
      ...done,
      result: expect.any(Uint8Array),
    });
    expect(await ctx.store.steps.list(W, "a")).toHaveLength(1);
    await ctx.store.steps.put(step("a"));
    expect((await ctx.store.steps.get(W, "a", "do", "load order", 1))!.result).toBeNull();
  });

  it("lists an instance's steps in the order they started", async () => {
    const rows = [
      step("a", { kind: "sleep", name: "nap", seq: 3, startedAt: T0, status: "sleeping", wakeAt: T0 + 100 }),
      step("a", { name: "first", seq: 1, startedAt: T0 }),
      step("a", { name: "first", count: 2, seq: 2, startedAt: T0 }),
      step("a", {
        kind: "waitForEvent",
        name: "go",
        seq: 4,
        startedAt: T0,
        status: "waiting",
        eventType: "go",
      }),
    ];
    for (const r of rows) await ctx.store.steps.put(r);
    await ctx.store.steps.put(step("b", { name: "other" }));
    await ctx.store.steps.put(step("a", { workflow: OTHER, name: "other" }));
    const listed = await ctx.store.steps.list(W, "a");
    expect(listed.map((s) => `${s.kind}:${s.name}:${s.count}`)).toEqual([
      "do:first:1",
      "do:first:2",
      "sleep:nap:1",
      "waitForEvent:go:1",
    ]);
    expect(await ctx.store.steps.list(W, "missing")).toEqual([]);
  });

  it("deletes the given steps, or all of an instance's", async () => {
    const keys: [StepKind, string, number][] = [
      ["do", "a", 1],
      ["do", "a", 2],
      ["sleep", "a", 1],
      ["do", "b", 1],
    ];
    for (const [kind, name, count] of keys) await ctx.store.steps.put(step("i", { kind, name, count }));
    await ctx.store.steps.put(step("j", { name: "a" }));
    await ctx.store.steps.delete(W, "i", [
      { kind: "do", name: "a", count: 2 },
      { kind: "sleep", name: "a", count: 1 },
      { kind: "do", name: "missing", count: 1 },
    ]);
    expect((await ctx.store.steps.list(W, "i")).map((s) => `${s.kind}:${s.name}:${s.count}`).sort()).toEqual([
      "do:a:1",
      "do:b:1",
    ]);
    await ctx.store.steps.delete(W, "i", []);
    expect(await ctx.store.steps.list(W, "i")).toHaveLength(2);
    await ctx.store.steps.delete(W, "i");
    expect(await ctx.store.steps.list(W, "i")).toEqual([]);
    expect(await ctx.store.steps.list(W, "j")).toHaveLength(1);
  });

  it("shifts the wake times of pending steps only", async () => {
    const rows = [
      step("a", { name: "sleeping", status: "sleeping", wakeAt: T0 + 100 }),
      step("a", { name: "retrying", status: "retrying", wakeAt: T0 + 200 }),
      step("a", {
        name: "waiting",
        kind: "waitForEvent",
        status: "waiting",
        wakeAt: T0 + 300,
        eventType: "x",
      }),
      step("a", { name: "running", status: "running", wakeAt: T0 + 400 }),
      step("a", { name: "succeeded", status: "succeeded", wakeAt: T0 + 500 }),
      step("a", { name: "failed", status: "failed", wakeAt: T0 + 600 }),
      step("a", { name: "no-timer", status: "waiting", kind: "waitForEvent", wakeAt: null, eventType: "x" }),
      step("b", { name: "sleeping", status: "sleeping", wakeAt: T0 + 100 }),
    ];
    for (const r of rows) await ctx.store.steps.put(r);
    await ctx.store.steps.shiftWakeTimes(W, "a", 5000);
    const wake = async (instanceId: string, kind: StepKind, name: string) =>
      (await ctx.store.steps.get(W, instanceId, kind, name, 1))!.wakeAt;
    expect(await wake("a", "do", "sleeping")).toBe(T0 + 5100);
    expect(await wake("a", "do", "retrying")).toBe(T0 + 5200);
    expect(await wake("a", "waitForEvent", "waiting")).toBe(T0 + 5300);
    expect(await wake("a", "do", "running")).toBe(T0 + 400);
    expect(await wake("a", "do", "succeeded")).toBe(T0 + 500);
    expect(await wake("a", "do", "failed")).toBe(T0 + 600);
    expect(await wake("a", "waitForEvent", "no-timer")).toBeNull();
    expect(await wake("b", "do", "sleeping")).toBe(T0 + 100);
    await ctx.store.steps.shiftWakeTimes(W, "a", -100);
    expect(await wake("a", "do", "sleeping")).toBe(T0 + 5000);
  });

  it("knows whether a waitForEvent step waits for a type", async () => {
    await ctx.store.steps.put(
      step("a", { kind: "waitForEvent", name: "approval", status: "waiting", eventType: "approved" }),
    );
    await ctx.store.steps.put(
      step("a", { kind: "waitForEvent", name: "old", status: "succeeded", eventType: "shipped" }),
    );
    expect(await ctx.store.steps.hasWaiter(W, "a", "approved")).toBe(true);
    expect(await ctx.store.steps.hasWaiter(W, "a", "shipped")).toBe(false);
    expect(await ctx.store.steps.hasWaiter(W, "a", "other")).toBe(false);
    expect(await ctx.store.steps.hasWaiter(W, "b", "approved")).toBe(false);
    expect(await ctx.store.steps.hasWaiter(OTHER, "a", "approved")).toBe(false);
  });
}

// ---------------------------------------------------------------------------------------------------
// Events

function eventTests(ctx: Ctx): void {
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

  it("deletes all of an instance's events, or those consumed by given steps", async () => {
    await send("a", "x");
    await send("a", "x");
    await send("a", "x");
    await send("a", "y");
    await send("b", "x");
    await ctx.store.events.consume(W, "a", "x", "waitForEvent:1:w");
    await ctx.store.events.consume(W, "a", "x", "waitForEvent:2:w");
    await ctx.store.events.consume(W, "a", "x", "waitForEvent:3:w");
    await ctx.store.events.delete(W, "a", ["waitForEvent:1:w", "waitForEvent:3:w", "waitForEvent:9:w"]);
    expect((await ctx.store.events.list(W, "a")).map((e) => [e.type, e.consumedBy])).toEqual([
      ["x", "waitForEvent:2:w"],
      ["y", null],
    ]);
    await ctx.store.events.delete(W, "a", []);
    expect(await ctx.store.events.list(W, "a")).toHaveLength(2);
    await ctx.store.events.delete(W, "a");
    expect(await ctx.store.events.list(W, "a")).toEqual([]);
    expect(await ctx.store.events.list(W, "b")).toHaveLength(1);
  });
}

// ---------------------------------------------------------------------------------------------------
// History

function historyTests(ctx: Ctx): void {
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

  it("deletes all of an instance's entries", async () => {
    await ctx.store.history.append([entry("a"), entry("a"), entry("b")]);
    await ctx.store.history.delete(W, "a");
    expect(await ctx.store.history.list(W, "a")).toEqual([]);
    expect(await ctx.store.history.list(W, "b")).toHaveLength(1);
  });

  it("deletes the entries of given steps plus instance-level entries after an eventId", async () => {
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
    await ctx.store.history.delete(W, "a", {
      steps: [stepKeyString(s1), stepKeyString(s3)],
      afterEventId: before[4]!.eventId,
    });
    expect(eventIds(await ctx.store.history.list(W, "a"))).toEqual(
      [0, 3, 4, 7].map((i) => before[i]!.eventId),
    );
    expect(await ctx.store.history.list(W, "b")).toHaveLength(2);
  });

  it("never reuses an eventId after deletes", async () => {
    await ctx.store.history.append([entry("a"), entry("a"), entry("a")]);
    const first = eventIds(await ctx.store.history.list(W, "a"));
    await ctx.store.history.delete(W, "a", { steps: [], afterEventId: first[0]! });
    await ctx.store.history.append([entry("a")]);
    const second = eventIds(await ctx.store.history.list(W, "a"));
    expect(second).toHaveLength(2);
    expect(second[1]!).toBeGreaterThan(first[2]!);
    await ctx.store.history.delete(W, "a");
    await ctx.store.instances.insert(instance("a"));
    await ctx.store.instances.delete(W, "a");
    await ctx.store.history.append([entry("a")]);
    expect(eventIds(await ctx.store.history.list(W, "a"))[0]!).toBeGreaterThan(second[1]!);
  });
}

// ---------------------------------------------------------------------------------------------------
// Transactions

function transactionTests(ctx: Ctx): void {
  /** Writes one of everything for `id` through `tx`. */
  const writeAll = async (tx: StoreTx, id: string) => {
    await tx.instances.insert(instance(id));
    await tx.steps.put(step(id));
    await tx.events.insert({ workflow: W, instanceId: id, type: "t", payload: bytes(1), timestamp: T0 });
    await tx.history.append([entry(id)]);
  };
  const exists = async (id: string) => {
    const parts = [
      (await ctx.store.instances.get(W, id)) !== undefined,
      (await ctx.store.steps.list(W, id)).length > 0,
      (await ctx.store.events.list(W, id)).length > 0,
      (await ctx.store.history.list(W, id)).length > 0,
    ];
    if (parts.every(Boolean)) return true;
    if (!parts.some(Boolean)) return false;
    throw new Error(`instance ${id} was written in part: ${parts.join(", ")}`);
  };

  it("commits every write and resolves with the function's value", async () => {
    const value = await ctx.store.transaction(async (tx) => {
      await writeAll(tx, "a");
      return { ok: 42 };
    });
    expect(value).toEqual({ ok: 42 });
    expect(await exists("a")).toBe(true);
    expect(ids((await ctx.store.instances.list({ workflow: W, limit: 10 })).items)).toEqual(["a"]);
  });

  it("sees its own writes inside the transaction", async () => {
    await ctx.store.transaction(async (tx) => {
      await tx.instances.insert(instance("a"));
      expect(await tx.instances.get(W, "a")).toBeDefined();
      expect(await tx.instances.update(W, "a", { status: "running" }, { statusIn: ["queued"] })).toBe(true);
      expect((await tx.instances.get(W, "a"))!.status).toBe("running");
      await tx.history.append([entry("a")]);
      expect(await tx.history.list(W, "a")).toHaveLength(1);
    });
  });

  it("leaves nothing of a failed transaction and rejects with its error", async () => {
    await ctx.store.instances.insert(instance("pre"));
    const error = new Error("boom");
    await expect(
      ctx.store.transaction(async (tx) => {
        await writeAll(tx, "a");
        await tx.instances.update(W, "pre", { status: "complete" });
        await tx.instances.delete(W, "pre");
        throw error;
      }),
    ).rejects.toBe(error);
    expect(await exists("a")).toBe(false);
    expect((await ctx.store.instances.get(W, "pre"))!.status).toBe("queued");
  });

  it("rejects with a non-Error value thrown by the function", async () => {
    await expect(
      ctx.store.transaction(async (tx) => {
        await tx.instances.insert(instance("a"));
        throw "plain";
      }),
    ).rejects.toBe("plain");
    expect(await ctx.store.instances.get(W, "a")).toBeUndefined();
  });

  it("lets each of many concurrent transactions succeed or fail alone", async () => {
    const n = 40;
    const fails = (i: number) => i % 3 === 1;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        ctx.store.transaction(async (tx) => {
          await writeAll(tx, `t-${i}`);
          if (fails(i)) throw new Error(`fail ${i}`);
          return i;
        }),
      ),
    );
    for (const [i, r] of results.entries()) {
      if (fails(i)) expect(r).toEqual({ status: "rejected", reason: new Error(`fail ${i}`) });
      else expect(r).toEqual({ status: "fulfilled", value: i });
      expect(await exists(`t-${i}`), `t-${i}`).toBe(!fails(i));
    }
  });

  it("runs concurrent single writes each as their own transaction", async () => {
    const inserted = await Promise.all(
      Array.from({ length: 50 }, (_, i) => ctx.store.instances.insert(instance(`i-${i}`))),
    );
    expect(inserted.every(Boolean)).toBe(true);
    const seqs = await Promise.all(
      Array.from({ length: 20 }, () =>
        ctx.store.events.insert({
          workflow: W,
          instanceId: "i-0",
          type: "t",
          payload: bytes(),
          timestamp: T0,
        }),
      ),
    );
    expect(new Set(seqs).size).toBe(20);
    expect(await ctx.store.instances.countByStatus(W)).toEqual([
      { workflow: W, status: "queued", count: 50 },
    ]);
  });

  it("keeps working after a failed transaction", async () => {
    await expect(ctx.store.transaction(async () => Promise.reject(new Error("no")))).rejects.toThrow("no");
    await ctx.store.transaction((tx) => writeAll(tx, "a"));
    expect(await exists("a")).toBe(true);
  });

  it("never loses an update between fenced read-modify-write transactions", async () => {
    await ctx.store.instances.insert(instance("a", { epoch: 0 }));
    const won = await Promise.all(
      Array.from({ length: 20 }, () =>
        ctx.store.transaction(async (tx) => {
          const row = (await tx.instances.get(W, "a"))!;
          return tx.instances.update(W, "a", { epoch: row.epoch + 1 }, { epoch: row.epoch });
        }),
      ),
    );
    expect(won.filter(Boolean).length).toBeGreaterThan(0);
    expect((await ctx.store.instances.get(W, "a"))!.epoch).toBe(won.filter(Boolean).length);
  });
}

// ---------------------------------------------------------------------------------------------------
// Bytes

function byteTests(ctx: Ctx): void {
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
      await ctx.store.instances.insert(instance("a", { params: value }));
      await ctx.store.instances.update(W, "a", { output: value });
      await ctx.store.steps.put(step("a", { result: value, status: "succeeded" }));
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
    await ctx.store.instances.insert(instance("a", { params }));
    params[0] = 99;
    const row = (await ctx.store.instances.get(W, "a"))!;
    expectBytes(row.params, bytes(1, 2, 3));
    row.params[1] = 77;
    expectBytes((await ctx.store.instances.get(W, "a"))!.params, bytes(1, 2, 3));
  });
}

// ---------------------------------------------------------------------------------------------------
// Lifecycle

function lifecycleTests(ctx: Ctx): void {
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
    const pending = ctx.store.transaction(async (tx) => tx.instances.insert(instance("a")));
    await close();
    await expect(pending).resolves.toBe(true);
    await expect(ctx.store.transaction(async () => 1)).rejects.toThrow();
  });

  it.skipIf(!ctx.reopen)("keeps every kind of data across close and reopen", async () => {
    await ctx.store.instances.insert(instance("a", { params: bytes(0, 255) }));
    await ctx.store.instances.update(W, "a", {
      status: "waiting",
      output: bytes(3),
      error: { name: "E", message: "m" },
      readyAt: T0 + 9,
      owner: "w",
    });
    const seq = await ctx.store.transaction(async (tx) => {
      await tx.steps.put(step("a", { status: "succeeded", result: bytes(4, 5) }));
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
    await ctx.store.history.delete(W, "a");
    await ctx.store.events.delete(W, "a");
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
