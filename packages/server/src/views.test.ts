import type { HistoryEntry } from "@cairn/core";
import { encodeStreamMarker, encodeValue } from "@cairn/runtime";
import type { InstanceRow, StepRow } from "@cairn/store";
import { describe, expect, it } from "vitest";
import {
  attemptsOf,
  instanceDetail,
  instanceMetrics,
  stepDetails,
  stepResult,
  storedJson,
  subscribeEvent,
  truncate,
} from "./views.ts";

const T = Date.UTC(2026, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();
const step = { kind: "do" as const, name: "load", count: 1 };

function entry(
  eventId: number,
  type: HistoryEntry["type"],
  at: number,
  data?: Record<string, unknown>,
): HistoryEntry {
  return {
    eventId,
    workflow: "w",
    instanceId: "i",
    type,
    timestamp: T + at,
    step,
    ...(data ? { data } : {}),
  };
}

function row(patch: Partial<StepRow>): StepRow {
  return {
    workflow: "w",
    instanceId: "i",
    ...step,
    seq: 1,
    status: "succeeded",
    config: { retries: { limit: 2, delay: 1000, backoff: "constant" }, timeout: "1 minute" },
    attempts: 1,
    result: encodeValue({ ok: true }),
    error: null,
    startedAt: T,
    endedAt: T + 10,
    wakeAt: null,
    eventType: null,
    ...patch,
  };
}

describe("views", () => {
  it("rebuilds attempts from history entries, including one still running", () => {
    const err = { name: "Error", message: "no" };
    expect(
      attemptsOf([
        entry(1, "step_started", 0),
        entry(2, "attempt_started", 0, { attempt: 1 }),
        entry(3, "attempt_errored", 5, { attempt: 1, error: err, retryDelayMs: 1000 }),
        entry(4, "attempt_started", 1005, { attempt: 2 }),
        entry(5, "attempt_completed", 1010, { attempt: 2 }),
        entry(6, "attempt_started", 2000, { attempt: 3 }),
      ]),
    ).toEqual([
      { start: iso(T), end: iso(T + 5), success: false, error: err },
      { start: iso(T + 1005), end: iso(T + 1010), success: true, error: null },
      { start: iso(T + 2000), end: null, success: null, error: null },
    ]);
  });

  it("orders steps by seq and shows retrying steps with their next attempt", () => {
    const steps = stepDetails(
      [
        row({ seq: 2, name: "b", status: "retrying", wakeAt: T + 2000, endedAt: null, result: null }),
        row({ seq: 1, name: "a" }),
        row({
          seq: 3,
          kind: "sleep",
          name: "s",
          status: "sleeping",
          wakeAt: T + 60_000,
          config: null,
          result: null,
        }),
      ],
      [],
    );
    expect(steps.map((s) => s.name)).toEqual(["a", "b", "s"]);
    expect(steps[1]).toMatchObject({ success: null, output: null, retry_at: iso(T + 2000) });
    expect(steps[2]).toMatchObject({ type: "sleep", until: iso(T + 60_000), finished: false });
  });

  it("truncates long outputs and leaves short ones", () => {
    expect(truncate("short")).toBe("short");
    expect(truncate(42)).toBe(42);
    expect(truncate({ a: "é".repeat(5000) }, 100)).toEqual({
      $truncated: true,
      bytes: JSON.stringify({ a: "é".repeat(5000) }).length + 5000,
      preview: JSON.stringify({ a: "é".repeat(5000) }).slice(0, 100),
    });
  });

  it("redacts sensitive outputs everywhere", () => {
    const secret = row({
      config: { retries: { limit: 0, delay: 0, backoff: "constant" }, timeout: 1, sensitive: "output" },
    });
    expect(stepResult(secret).output).toBe("[REDACTED]");
    expect(stepDetails([secret], [])[0]).toMatchObject({ output: "[REDACTED]" });
    expect(subscribeEvent(entry(9, "step_completed", 10), { step: secret }).output).toBe("[REDACTED]");
  });

  it("shows an instance with its params and output as JSON", () => {
    const instance: InstanceRow = {
      workflow: "w",
      id: "i",
      status: "complete",
      params: encodeValue({ at: new Date(0), n: 10n }),
      output: encodeValue(new Map([["k", new Set([1])]])),
      error: null,
      createdAt: T,
      updatedAt: T + 20,
      startedAt: T + 1,
      endedAt: T + 20,
      pausedAt: null,
      readyAt: null,
      priority: 1,
      epoch: 1,
      owner: null,
      leaseUntil: null,
    };
    const d = instanceDetail(instance, [row({})], [entry(1, "attempt_started", 0, { attempt: 1 })]);
    expect(d).toMatchObject({
      id: "i",
      workflow: "w",
      params: { at: "1970-01-01T00:00:00.000Z", n: { $bigint: "10" } },
      output: { $map: [["k", { $set: [1] }]] },
      queued: iso(T),
      start: iso(T + 1),
      end: iso(T + 20),
      success: true,
      step_count: 1,
    });
    expect(subscribeEvent({ ...entry(2, "workflow_completed", 20), step: undefined }, { instance })).toEqual({
      type: "workflow_completed",
      instanceId: "i",
      eventId: 2,
      timestamp: T + 20,
      output: { $map: [["k", { $set: [1] }]] },
    });
  });
});

describe("stream results (SPEC §9.3)", () => {
  it("show their size, not their bytes", () => {
    expect(storedJson(encodeStreamMarker(3 * 1024 * 1024))).toEqual({ $stream: { bytes: 3 * 1024 * 1024 } });
    // As stored whole before chunk rows: the marker, then the bytes.
    const inline = new Uint8Array([0, ...new TextEncoder().encode("cairn-stream"), 0, 1, 2, 3]);
    expect(storedJson(inline)).toEqual({ $stream: { bytes: 3 } });
    expect(storedJson(encodeValue(new Uint8Array(4)))).not.toHaveProperty("$stream");
  });

  it("count their bytes, not their marker's, in the instance's storage", () => {
    const instance = { params: new Uint8Array(5), output: null } as unknown as InstanceRow;
    const plain = row({ result: new Uint8Array(7) });
    const stream = row({ name: "blob", result: encodeStreamMarker(3 * 1024 * 1024) });
    expect(instanceMetrics(instance, [plain, stream]).storage_bytes).toBe(5 + 7 + 3 * 1024 * 1024);
  });
});
