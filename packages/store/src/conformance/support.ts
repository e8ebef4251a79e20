/** What every file of the conformance suite shares: the context, fixed values and row builders. */
import type { NewHistoryEntry, ResolvedStepConfig } from "@cairn/core";
import { expect } from "vitest";
import type { Store, StoreTx } from "../store.ts";
import type { HistoryEntry, InstanceRow, NewInstance, StepRow } from "../types.ts";

export interface Ctx {
  store: Store;
  closed: boolean;
  reopen: (() => Promise<Store>) | undefined;
}

export const W = "orders";
export const OTHER = "invoices";
/** A realistic epoch-milliseconds time, so large integers are exercised everywhere. */
export const T0 = 1_767_225_600_000;
export const CONFIG: ResolvedStepConfig = {
  retries: { limit: 3, delay: "5 seconds", backoff: "linear" },
  timeout: 30_000,
  sensitive: "output",
};

export function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

export function expectBytes(actual: Uint8Array | null | undefined, expected: Uint8Array): void {
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

export function instance(id: string, over: Partial<NewInstance> = {}): NewInstance {
  return { workflow: W, id, params: bytes(1, 2, 3), createdAt: T0, ...over };
}

export function step(instanceId: string, over: Partial<StepRow> = {}): StepRow {
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
export function entry(
  instanceId: string,
  over: Partial<Omit<NewHistoryEntry, "data">> & { data?: Record<string, unknown> } = {},
): NewHistoryEntry {
  return { workflow: W, instanceId, type: "workflow_running", timestamp: T0, ...over } as NewHistoryEntry;
}

export const ids = (rows: { id: string }[]) => rows.map((r) => r.id);
export const eventIds = (rows: HistoryEntry[]) => rows.map((r) => r.eventId);
export const sortIds = (a: string[]) => [...a].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

export function expectIncreasing(values: number[]): void {
  for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThan(values[i - 1]!);
}

/** Reads every page of a listing and checks the page shape on the way. */
export async function listAll(
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

/** Inserts one instance row (through `insertMany`); returns whether it was inserted. */
export async function insert(store: StoreTx, row: NewInstance): Promise<boolean> {
  const [inserted] = await store.instances.insertMany([row]);
  return inserted!;
}

/** The epoch at which `putStep` writes: instances it seeds are running at it. */
const SEED_EPOCH = 0;

/**
 * Stores a step row the way runs do: a commit of the run that owns the instance, which must be
 * `running` or `waiting` at epoch 0 (an instance that does not exist yet is inserted running).
 * `status` is the instance's status, kept as it is.
 */
export async function putStep(
  store: StoreTx,
  row: StepRow,
  status: "running" | "waiting" = "running",
): Promise<void> {
  const seed = { workflow: row.workflow, id: row.instanceId, params: bytes(), createdAt: T0 };
  await store.instances.insertMany([{ ...seed, status: "running", readyAt: null, epoch: SEED_EPOCH }]);
  const before = await store.steps.commit({
    workflow: row.workflow,
    instanceId: row.instanceId,
    epoch: SEED_EPOCH,
    status,
    now: T0,
    step: row,
    history: [],
  });
  expect(before, `the instance of a seeded step (${row.instanceId}) is ${status} at epoch 0`).toBe(status);
}

/** Fills the store with the three kinds of per-instance data (the instance runs, at epoch 0). */
export async function populate(store: Store, instanceId: string): Promise<void> {
  await insert(store, instance(instanceId, { status: "running", readyAt: null }));
  await putStep(store, step(instanceId));
  await store.events.insert({
    workflow: W,
    instanceId,
    type: "approval",
    payload: bytes(9),
    timestamp: T0,
  });
  await store.history.append([entry(instanceId), entry(instanceId, { type: "workflow_completed" })]);
}
