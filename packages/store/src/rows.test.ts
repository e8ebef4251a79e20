import { describe, expect, it } from "vitest";
import { rowReader, statusCount } from "./rows.ts";

const T0 = 1_767_225_600_000;

/** As node:sqlite returns rows: BLOBs as Uint8Arrays, JSON as text, integers as numbers. */
const sqlite = rowReader({
  bytes: (v) => (v as Uint8Array | null | undefined) ?? null,
  json: <T>(v: unknown): T | null => (typeof v === "string" ? (JSON.parse(v) as T) : null),
});

/** As `pg` returns rows: bytea as Buffers, jsonb parsed, bigint columns as strings. */
const pg = rowReader({
  bytes: (v) =>
    v === null || v === undefined
      ? null
      : new Uint8Array((v as Uint8Array).buffer, (v as Uint8Array).byteOffset, (v as Uint8Array).byteLength),
  json: <T>(v: unknown): T | null => (v as T | null | undefined) ?? null,
});

const instanceColumns = {
  workflow: "orders",
  id: "a",
  status: "waiting",
  params: new Uint8Array([1, 2]),
  output: null,
  error: null,
  created_at: T0,
  updated_at: T0 + 1,
  started_at: T0 + 2,
  ended_at: null,
  paused_at: null,
  ready_at: T0 + 3,
  priority: 0,
  epoch: 4,
  owner: "w1",
  lease_until: T0 + 30_000,
};

describe("rowReader", () => {
  it("decodes an instance row into camelCase fields with nulls kept", () => {
    expect(sqlite.instance(instanceColumns)).toEqual({
      workflow: "orders",
      id: "a",
      status: "waiting",
      params: new Uint8Array([1, 2]),
      output: null,
      error: null,
      createdAt: T0,
      updatedAt: T0 + 1,
      startedAt: T0 + 2,
      endedAt: null,
      pausedAt: null,
      readyAt: T0 + 3,
      priority: 0,
      epoch: 4,
      owner: "w1",
      leaseUntil: T0 + 30_000,
    });
  });

  it("turns bigint columns that arrive as strings into numbers, and missing ones into null", () => {
    const row = pg.instance({
      ...instanceColumns,
      created_at: String(T0),
      updated_at: String(T0 + 1),
      started_at: null,
      ready_at: String(T0 + 3),
      epoch: "4",
      lease_until: undefined,
      owner: undefined,
    });
    expect(row).toMatchObject({
      createdAt: T0,
      updatedAt: T0 + 1,
      startedAt: null,
      readyAt: T0 + 3,
      epoch: 4,
      leaseUntil: null,
      owner: null,
    });
  });

  it("reads JSON columns as each dialect stores them", () => {
    const error = { name: "TypeError", message: "boom — ü" };
    expect(sqlite.instance({ ...instanceColumns, error: JSON.stringify(error) }).error).toEqual(error);
    expect(pg.instance({ ...instanceColumns, error }).error).toEqual(error);
  });

  it("gives a Uint8Array over the driver's buffer, not a copy", () => {
    const buffer = Buffer.from([9, 8, 7]);
    const row = pg.instance({ ...instanceColumns, params: buffer, output: buffer });
    expect(row.params).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(row.params)).toBe(false);
    expect([...row.params]).toEqual([9, 8, 7]);
    expect(row.params.buffer).toBe(buffer.buffer);
  });

  it("flags a claimed row taken over only when its taken_over column is true", () => {
    expect(pg.claimed({ ...instanceColumns, taken_over: true }).takenOver).toBe(true);
    expect("takenOver" in pg.claimed({ ...instanceColumns, taken_over: false })).toBe(false);
    expect("takenOver" in pg.claimed(instanceColumns)).toBe(false);
  });

  it("decodes a step row with its frozen config, result and error", () => {
    const config = { retries: { limit: 3, delay: "5 seconds", backoff: "linear" }, timeout: 30_000 };
    const columns = {
      workflow: "orders",
      instance_id: "a",
      kind: "do",
      name: "charge",
      count: "2",
      seq: 5,
      status: "succeeded",
      attempts: 3,
      result: new Uint8Array([0, 255]),
      started_at: T0,
      ended_at: T0 + 9,
      wake_at: null,
      event_type: null,
    };
    const expected = {
      workflow: "orders",
      instanceId: "a",
      kind: "do",
      name: "charge",
      count: 2,
      seq: 5,
      status: "succeeded",
      config,
      attempts: 3,
      result: new Uint8Array([0, 255]),
      error: { name: "Error", message: "first" },
      startedAt: T0,
      endedAt: T0 + 9,
      wakeAt: null,
      eventType: null,
    };
    expect(
      sqlite.step({ ...columns, config: JSON.stringify(config), error: JSON.stringify(expected.error) }),
    ).toEqual(expected);
    expect(pg.step({ ...columns, config, error: expected.error })).toEqual(expected);
    expect(sqlite.step({ ...columns, config: null, error: null, result: null })).toMatchObject({
      config: null,
      error: null,
      result: null,
    });
  });

  it("decodes an event row", () => {
    expect(
      sqlite.event({
        workflow: "orders",
        instance_id: "a",
        seq: 7,
        type: "approved",
        payload: new Uint8Array([1]),
        timestamp: T0,
        consumed_by: "waitForEvent:1:approval",
      }),
    ).toEqual({
      workflow: "orders",
      instanceId: "a",
      seq: 7,
      type: "approved",
      payload: new Uint8Array([1]),
      timestamp: T0,
      consumedBy: "waitForEvent:1:approval",
    });
  });

  it("decodes history entries, leaving out the step and data they do not have", () => {
    const base = {
      event_id: "12",
      workflow: "orders",
      instance_id: "a",
      type: "workflow_queued",
      timestamp: T0,
    };
    const bare = { ...base, step_kind: null, step_name: null, step_count: null, data: null };
    expect(sqlite.history(bare)).toEqual([
      {
        eventId: 12,
        workflow: "orders",
        instanceId: "a",
        type: "workflow_queued",
        timestamp: T0,
      },
    ]);
    expect("step" in sqlite.history(bare)[0]!).toBe(false);
    expect("data" in pg.history(bare)[0]!).toBe(false);
    const data = { attempt: 2, ok: true };
    const stepped = { ...base, type: "attempt_completed", step_kind: "do", step_name: "x", step_count: 1 };
    expect(sqlite.history({ ...stepped, data: JSON.stringify(data) })[0]).toMatchObject({
      step: { kind: "do", name: "x", count: 1 },
      data,
    });
    expect(pg.history({ ...stepped, data })[0]).toMatchObject({
      step: { kind: "do", name: "x", count: 1 },
      data,
    });
  });

  it("reads status counts", () => {
    expect(statusCount({ workflow: "orders", status: "queued", count: "3" })).toEqual({
      workflow: "orders",
      status: "queued",
      count: 3,
    });
  });
});
