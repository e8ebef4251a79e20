import { describe, expect, it } from "vitest";
import { WorkflowError } from "./errors.ts";
import { aggregateMetrics, type MetricsRow, metricsEventType, parseMetricsQuery } from "./metrics.ts";
import { attemptEndData } from "./transitions.ts";

const NOW = Date.parse("2026-12-03T12:00:00.000Z");

const row = (r: Partial<MetricsRow>): MetricsRow => ({
  type: "attempt_completed",
  instanceId: "a",
  stepName: "s",
  timestamp: NOW,
  cpuTimeMs: null,
  wallTimeMs: null,
  ...r,
});

describe("parseMetricsQuery", () => {
  it("defaults to the last day, ungrouped", () => {
    expect(parseMetricsQuery({}, NOW)).toEqual({ from: NOW - 86_400_000, to: NOW, groupBy: [] });
  });

  it("takes ISO dates, epoch ms and several group keys", () => {
    const q = parseMetricsQuery(
      { date_start: "2026-12-03T10:00:00Z", date_end: String(NOW), group_by: "eventType, datetimeHour" },
      0,
    );
    expect(q).toEqual({ from: NOW - 7_200_000, to: NOW, groupBy: ["eventType", "datetimeHour"] });
  });

  const bad: [Record<string, string>, string][] = [
    [
      { date_start: "yesterday" },
      'query date_start: expected an ISO date or epoch milliseconds, got "yesterday"',
    ],
    [
      { date_end: "2026-13-45" },
      'query date_end: expected an ISO date or epoch milliseconds, got "2026-13-45"',
    ],
    [{ date_start: String(NOW + 1), date_end: String(NOW) }, "query date_start: must not be after date_end"],
    [
      { date_start: String(NOW - 32 * 86_400_000) },
      "query date_start: the range from date_start to date_end is longer than 31 days",
    ],
    [
      { group_by: "eventType,wallTime" },
      'query group_by: expected eventType, stepName, instanceId, datetimeHour, datetimeMinute (comma-separated), got "wallTime"',
    ],
    [{ group_by: "stepName,stepName" }, 'query group_by: "stepName" is given twice'],
  ];
  it.each(bad)("refuses %j", (q, text) => {
    let error: unknown;
    try {
      parseMetricsQuery(q, NOW);
    } catch (e) {
      error = e;
    }
    expect(WorkflowError.is(error) && error.code).toBe("body");
    expect((error as WorkflowError).text).toBe(text);
  });
});

describe("aggregateMetrics", () => {
  const rows: MetricsRow[] = [
    row({ type: "workflow_started", stepName: null }),
    row({ type: "attempt_completed", cpuTimeMs: 10, wallTimeMs: 20 }),
    row({ type: "attempt_errored", cpuTimeMs: 1.25, wallTimeMs: 200, instanceId: "b" }),
    row({
      type: "attempt_completed",
      cpuTimeMs: 5,
      wallTimeMs: 40,
      stepName: "t",
      timestamp: NOW + 3_600_000,
    }),
  ];

  it("groups by event type with sums and quantiles of attempt ends", () => {
    expect(aggregateMetrics(rows, ["eventType"])).toEqual([
      {
        count: 1,
        sum: { wallTime: 0, cpuTime: 0 },
        quantiles: { wallTimeP50: null, wallTimeP90: null, wallTimeP99: null },
        dimensions: { eventType: "WORKFLOW_START" },
      },
      {
        count: 2,
        sum: { wallTime: 60, cpuTime: 15 },
        quantiles: { wallTimeP50: 20, wallTimeP90: 40, wallTimeP99: 40 },
        dimensions: { eventType: "ATTEMPT_SUCCESS" },
      },
      {
        count: 1,
        sum: { wallTime: 200, cpuTime: 1.25 },
        quantiles: { wallTimeP50: 200, wallTimeP90: 200, wallTimeP99: 200 },
        dimensions: { eventType: "ATTEMPT_FAILURE" },
      },
    ]);
  });

  it("groups by instance and hour together, and everything in one group without keys", () => {
    const g = aggregateMetrics(rows, ["instanceId", "datetimeHour"]);
    expect(g.map((x) => [x.dimensions, x.count])).toEqual([
      [{ instanceId: "a", datetimeHour: "2026-12-03T12:00:00.000Z" }, 2],
      [{ instanceId: "b", datetimeHour: "2026-12-03T12:00:00.000Z" }, 1],
      [{ instanceId: "a", datetimeHour: "2026-12-03T13:00:00.000Z" }, 1],
    ]);
    expect(aggregateMetrics(rows, [])).toMatchObject([{ count: 4, sum: { wallTime: 260, cpuTime: 16.25 } }]);
    expect(aggregateMetrics([], ["eventType"])).toEqual([]);
  });

  it("names event types as Cloudflare does", () => {
    expect(metricsEventType("workflow_completed")).toBe("WORKFLOW_SUCCESS");
    expect(metricsEventType("workflow_terminated")).toBe("WORKFLOW_TERMINATED");
    expect(metricsEventType("sleep_completed")).toBe("SLEEP_COMPLETE");
  });
});

describe("attemptEndData", () => {
  const a = {
    call: { workflow: "w", instanceId: "i", key: { kind: "do" as const, name: "s", count: 1 }, seq: 1 },
    config: { retries: { limit: 0, delay: 0, backoff: "constant" as const }, timeout: "1 minute" },
    stepStartedAt: 100,
    attempt: 1,
    startedAt: 100,
    previousError: null,
  };
  it("records cost only when measured, and flags an attempt over the CPU limit", () => {
    expect(attemptEndData(a, 150)).toEqual({ attempt: 1 });
    expect(attemptEndData({ ...a, cpuTimeMs: 12.3456, cpuLimitMs: 30_000 }, 150)).toEqual({
      attempt: 1,
      cpuTimeMs: 12.35,
      wallTimeMs: 50,
    });
    expect(attemptEndData({ ...a, cpuTimeMs: 45, cpuLimitMs: 40 }, 150)).toEqual({
      attempt: 1,
      cpuTimeMs: 45,
      wallTimeMs: 50,
      cpuLimitExceeded: true,
    });
  });
});
