import { WorkflowError } from "./errors.ts";
import type { HistoryEventType } from "./history.ts";
import { DAY_MS, MAX_METRICS_RANGE_MS } from "./limits.ts";

/**
 * Metrics of a workflow over time (SPEC §12.1–12.2), shaped like Cloudflare's GraphQL dataset
 * `workflowsAdaptiveGroups`: groups of history entries with a count, sums of wall and CPU time, and
 * wall-time quantiles. Pure: the store reads the entries (`MetricsRow`), this groups them.
 */

/** The dimensions a metrics query may group by (`group_by`, comma-separated). */
export const METRICS_GROUP_KEYS = [
  "eventType",
  "stepName",
  "instanceId",
  "datetimeHour",
  "datetimeMinute",
] as const;
export type MetricsGroupKey = (typeof METRICS_GROUP_KEYS)[number];

/** One history entry as metrics read it. `cpuTimeMs`/`wallTimeMs` are set on attempt ends. */
export interface MetricsRow {
  type: HistoryEventType;
  instanceId: string;
  stepName: string | null;
  timestamp: number;
  cpuTimeMs: number | null;
  wallTimeMs: number | null;
}

/** A parsed metrics query: `[from, to]` in epoch ms, and the keys to group by (none: one group). */
export interface MetricsQuery {
  from: number;
  to: number;
  groupBy: MetricsGroupKey[];
}

export interface MetricsGroup {
  count: number;
  /** Milliseconds, summed over the group's attempt ends. */
  sum: { wallTime: number; cpuTime: number };
  /** Wall-time quantiles (ms) of the group's attempt ends; `null` when it has none. */
  quantiles: { wallTimeP50: number | null; wallTimeP90: number | null; wallTimeP99: number | null };
  dimensions: Partial<Record<MetricsGroupKey, string | null>>;
}

/** Cloudflare's `eventType` names for Cairn's history entries; the others are upper-cased. */
const EVENT_TYPE: Partial<Record<HistoryEventType, string>> = {
  workflow_started: "WORKFLOW_START",
  workflow_completed: "WORKFLOW_SUCCESS",
  workflow_errored: "WORKFLOW_FAILURE",
  step_started: "STEP_START",
  step_completed: "STEP_SUCCESS",
  step_errored: "STEP_FAILURE",
  attempt_started: "ATTEMPT_START",
  attempt_completed: "ATTEMPT_SUCCESS",
  attempt_errored: "ATTEMPT_FAILURE",
  sleep_started: "SLEEP_START",
  sleep_completed: "SLEEP_COMPLETE",
  wait_started: "WAIT_START",
  wait_completed: "WAIT_COMPLETE",
  wait_timed_out: "WAIT_TIMEOUT",
  rollback_started: "ROLLBACK_START",
  rollback_step_started: "ROLLBACK_STEP_START",
  rollback_attempt_started: "ROLLBACK_ATTEMPT_START",
  rollback_attempt_completed: "ROLLBACK_ATTEMPT_SUCCESS",
  rollback_attempt_errored: "ROLLBACK_ATTEMPT_FAILURE",
  rollback_step_completed: "ROLLBACK_STEP_SUCCESS",
  rollback_step_errored: "ROLLBACK_STEP_FAILURE",
  rollback_completed: "ROLLBACK_SUCCESS",
  rollback_errored: "ROLLBACK_FAILURE",
};

/** The `eventType` dimension of a history entry type (`workflow_completed` → `WORKFLOW_SUCCESS`). */
export function metricsEventType(type: HistoryEventType): string {
  return EVENT_TYPE[type] ?? type.toUpperCase();
}

/** `date_start`/`date_end`: an ISO date or epoch milliseconds. */
function parseMetricsDate(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new WorkflowError(
      "body",
      `query ${field}: expected an ISO date or epoch milliseconds, got "${value}"`,
    );
  return ms;
}

/**
 * Validates a metrics query. Defaults: `date_end` now, `date_start` one day before `date_end`, no
 * grouping. The range may not be reversed or longer than 31 days; `group_by` names known keys,
 * each once. Errors are `body` (400) naming the field.
 */
export function parseMetricsQuery(
  q: { date_start?: string; date_end?: string; group_by?: string },
  now: number,
): MetricsQuery {
  const to = parseMetricsDate(q.date_end, "date_end") ?? now;
  const from = parseMetricsDate(q.date_start, "date_start") ?? to - DAY_MS;
  if (from > to) throw new WorkflowError("body", "query date_start: must not be after date_end");
  if (to - from > MAX_METRICS_RANGE_MS)
    throw new WorkflowError(
      "body",
      "query date_start: the range from date_start to date_end is longer than 31 days",
    );
  const groupBy: MetricsGroupKey[] = [];
  if (q.group_by !== undefined)
    for (const part of q.group_by.split(",")) {
      const key = part.trim();
      if (!(METRICS_GROUP_KEYS as readonly string[]).includes(key))
        throw new WorkflowError(
          "body",
          `query group_by: expected ${METRICS_GROUP_KEYS.join(", ")} (comma-separated), got "${key}"`,
        );
      if (groupBy.includes(key as MetricsGroupKey))
        throw new WorkflowError("body", `query group_by: "${key}" is given twice`);
      groupBy.push(key as MetricsGroupKey);
    }
  return { from, to, groupBy };
}

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

function dimension(row: MetricsRow, key: MetricsGroupKey): string | null {
  switch (key) {
    case "eventType":
      return metricsEventType(row.type);
    case "stepName":
      return row.stepName;
    case "instanceId":
      return row.instanceId;
    case "datetimeHour":
      return new Date(Math.floor(row.timestamp / HOUR_MS) * HOUR_MS).toISOString();
    case "datetimeMinute":
      return new Date(Math.floor(row.timestamp / MINUTE_MS) * MINUTE_MS).toISOString();
  }
}

/** The `q`-quantile (nearest rank) of sorted values. */
function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Groups metrics rows by `groupBy` (one group of everything when empty), in the order their keys
 * first appear in `rows`. Sums and quantiles take the rows that carry times (attempt ends).
 */
export function aggregateMetrics(
  rows: readonly MetricsRow[],
  groupBy: readonly MetricsGroupKey[],
): MetricsGroup[] {
  const groups = new Map<string, { group: MetricsGroup; walls: number[] }>();
  for (const row of rows) {
    const dims: Partial<Record<MetricsGroupKey, string | null>> = {};
    for (const k of groupBy) dims[k] = dimension(row, k);
    const id = JSON.stringify(groupBy.map((k) => dims[k]));
    let g = groups.get(id);
    if (!g) {
      g = {
        group: {
          count: 0,
          sum: { wallTime: 0, cpuTime: 0 },
          quantiles: { wallTimeP50: null, wallTimeP90: null, wallTimeP99: null },
          dimensions: dims,
        },
        walls: [],
      };
      groups.set(id, g);
    }
    g.group.count++;
    if (row.wallTimeMs !== null) {
      g.group.sum.wallTime += row.wallTimeMs;
      g.walls.push(row.wallTimeMs);
    }
    if (row.cpuTimeMs !== null) g.group.sum.cpuTime += row.cpuTimeMs;
  }
  const out: MetricsGroup[] = [];
  for (const { group, walls } of groups.values()) {
    walls.sort((a, b) => a - b);
    group.quantiles = {
      wallTimeP50: quantile(walls, 0.5),
      wallTimeP90: quantile(walls, 0.9),
      wallTimeP99: quantile(walls, 0.99),
    };
    group.sum.cpuTime = Math.round(group.sum.cpuTime * 100) / 100;
    out.push(group);
  }
  return out;
}
