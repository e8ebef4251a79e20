import type { NewHistoryEntry } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { expandHistoryRow, PACKED_HISTORY_TYPE, packedMetricsRows, packHistory } from "./history-rows.ts";

const T0 = 1_767_225_600_000;
const charge = { kind: "do" as const, name: "charge", count: 1 };
const ship = { kind: "do" as const, name: "ship", count: 1 };

const entry = (e: Partial<NewHistoryEntry> & Pick<NewHistoryEntry, "type">): NewHistoryEntry =>
  ({ workflow: "orders", instanceId: "a", timestamp: T0, ...e }) as NewHistoryEntry;

/** A step's outcome as one append writes it when its attempt's marker was not stored. */
const outcome = (step = charge, at = T0): NewHistoryEntry[] => [
  entry({ type: "step_started", timestamp: at, step, data: { config: { retries: { limit: 0 } } } as never }),
  entry({ type: "attempt_started", timestamp: at + 1, step, data: { attempt: 1 } }),
  entry({
    type: "attempt_completed",
    timestamp: at + 5,
    step,
    data: { attempt: 1, cpuTimeMs: 0.5, wallTimeMs: 4 },
  }),
  entry({ type: "step_completed", timestamp: at + 5, step }),
];

/** What a store reads back: the row's values with the ids it gave them and `data` parsed. */
function stored(entries: NewHistoryEntry[], firstId = 1) {
  let id = firstId - 1;
  return packHistory(entries).map((r) => {
    id += r.span ?? 1;
    return {
      eventId: id,
      workflow: r.workflow,
      instanceId: r.instanceId,
      type: r.type,
      timestamp: r.timestamp,
      step:
        r.stepKind === null
          ? undefined
          : { kind: r.stepKind as "do", name: r.stepName!, count: r.stepCount! },
      data: r.data === null ? null : JSON.parse(r.data),
      span: r.span,
    };
  });
}

describe("packed history rows", () => {
  it("packs each run of one step's entries into one row and keeps the others apart", () => {
    const entries = [entry({ type: "workflow_running" }), ...outcome(), ...outcome(ship, T0 + 10)];
    const rows = packHistory(entries);
    expect(rows.map((r) => [r.type, r.span, r.stepName])).toEqual([
      ["workflow_running", null, null],
      [PACKED_HISTORY_TYPE, 4, "charge"],
      [PACKED_HISTORY_TYPE, 4, "ship"],
    ]);
    expect(rows[1]!.timestamp).toBe(T0 + 5);
    expect(rows[0]!.data).toBeNull();
  });

  it("expands rows back to the entries appended, numbered one id per entry", () => {
    const entries = [
      entry({ type: "workflow_running" }),
      ...outcome(),
      entry({ type: "workflow_completed" }),
    ];
    const read = stored(entries, 41).flatMap(expandHistoryRow);
    expect(read.map((e) => e.eventId)).toEqual([41, 42, 43, 44, 45, 46]);
    expect(read.map(({ eventId: _, ...e }) => e)).toEqual(entries);
    expect("data" in read[4]!).toBe(false);
    expect("step" in read[0]!).toBe(false);
  });

  it("does not pack entries of different instances, steps or counts", () => {
    const rows = packHistory([
      entry({ type: "attempt_started", step: charge, data: { attempt: 1 } }),
      entry({ type: "attempt_started", step: { ...charge, count: 2 }, data: { attempt: 1 } }),
      entry({
        type: "attempt_started",
        instanceId: "b",
        step: { ...charge, count: 2 },
        data: { attempt: 1 },
      }),
      entry({ type: "attempt_started", instanceId: "b", step: { ...charge, kind: "sleep", count: 2 } }),
    ]);
    expect(rows.map((r) => r.span)).toEqual([null, null, null, null]);
  });

  it("stamps a packed row with its latest time even when the clock went back", () => {
    const [a, b] = outcome();
    const rows = packHistory([{ ...a!, timestamp: T0 + 9 }, b!]);
    expect(rows[0]!.timestamp).toBe(T0 + 9);
  });

  it("keeps a type or data that needs escaping intact", () => {
    const odd = entry({
      type: "attempt_errored",
      step: charge,
      data: { attempt: 1, error: { message: 'a"\\\n]' } } as never,
    });
    const read = stored([odd, entry({ type: "step_errored", step: charge })]).flatMap(expandHistoryRow);
    expect(read[0]!.data).toEqual(odd.data);
  });

  it("gives metrics the entries of a packed row inside the range, with attempt times", () => {
    const packed = JSON.parse(packHistory(outcome())[0]!.data!);
    expect(packedMetricsRows("a", "charge", packed, T0 + 1, T0 + 5)).toEqual([
      {
        type: "attempt_started",
        instanceId: "a",
        stepName: "charge",
        timestamp: T0 + 1,
        cpuTimeMs: null,
        wallTimeMs: null,
      },
      {
        type: "attempt_completed",
        instanceId: "a",
        stepName: "charge",
        timestamp: T0 + 5,
        cpuTimeMs: 0.5,
        wallTimeMs: 4,
      },
      {
        type: "step_completed",
        instanceId: "a",
        stepName: "charge",
        timestamp: T0 + 5,
        cpuTimeMs: null,
        wallTimeMs: null,
      },
    ]);
    expect(packedMetricsRows("a", "charge", packed, T0 + 6, T0 + 9)).toEqual([]);
  });
});
