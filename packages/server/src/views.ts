import type {
  AttemptDetail,
  DoStepDetail,
  InstanceDetail,
  InstanceMetrics,
  InstanceSummary,
  RollbackStepDetail,
  SleepStepDetail,
  StepDetail,
  StepResult,
  SubscribeEvent,
  WaitStepDetail,
} from "@cairn/api";
import { toJson } from "@cairn/api";
import { apiStatus, type HistoryEntry, REDACTED_STEP_OUTPUT, stepKeyString, stepLabel } from "@cairn/core";
import { decodeValue, isStreamValue, storedByteLength, streamByteLength } from "@cairn/runtime";
import type { EventRow, InstanceRow, StepRow } from "@cairn/store";

/**
 * Pure conversions from stored rows and history entries to the API's response shapes. Nothing here
 * reads the store; the routes pass in what they read.
 */

/** What a sensitive step (`sensitive: "output"`) shows instead of its output. */
export const REDACTED = REDACTED_STEP_OUTPUT;

/** Step outputs longer than this (as JSON text) are cut in the instance detail. */
export const DETAIL_OUTPUT_LIMIT = 4096;

/**
 * A step output too long for the instance detail: the first `DETAIL_OUTPUT_LIMIT` characters of its
 * JSON text. `GET …/step` returns it whole.
 */
export interface TruncatedOutput {
  $truncated: true;
  /** Length of the whole JSON text, in bytes. */
  bytes: number;
  preview: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : iso(ms);

/** Decodes stored bytes and shows them as JSON (`null` when there is nothing stored). */
export function storedJson(bytes: Uint8Array | null): unknown {
  if (bytes === null) return null;
  // A `ReadableStream` step result (SPEC §9.3) shows its size, not its bytes.
  if (isStreamValue(bytes)) return { $stream: { bytes: streamByteLength(bytes) } };
  return toJson(decodeValue(bytes));
}

/** Cuts a JSON value whose text exceeds `limit` characters, with a marker saying so. */
export function truncate(json: unknown, limit = DETAIL_OUTPUT_LIMIT): unknown {
  if (json === null || typeof json === "number" || typeof json === "boolean") return json;
  const text = JSON.stringify(json);
  if (text === undefined || text.length <= limit) return json;
  const truncated: TruncatedOutput = {
    $truncated: true,
    bytes: Buffer.byteLength(text),
    preview: text.slice(0, limit),
  };
  return truncated;
}

function isSensitive(row: StepRow): boolean {
  return row.config?.sensitive === "output";
}

/** A step's output as the API shows it: redacted for sensitive steps, `null` until it has one. */
export function stepOutput(row: StepRow): unknown {
  if (row.status !== "succeeded" || row.kind === "sleep") return null;
  if (isSensitive(row)) return REDACTED;
  return storedJson(row.result);
}

export function instanceSummary(row: InstanceRow): InstanceSummary {
  return {
    id: row.id,
    status: apiStatus(row),
    workflow: row.workflow,
    created_on: iso(row.createdAt),
    modified_on: iso(row.updatedAt),
    started_on: isoOrNull(row.startedAt),
    ended_on: isoOrNull(row.endedAt),
  };
}

/** Entries of one step, by `stepKeyString`. */
function entriesByStep(history: HistoryEntry[]): Map<string, HistoryEntry[]> {
  const byStep = new Map<string, HistoryEntry[]>();
  for (const e of history) {
    if (!e.step) continue;
    const key = stepKeyString(e.step);
    let list = byStep.get(key);
    if (!list) byStep.set(key, (list = []));
    list.push(e);
  }
  return byStep;
}

/** An attempt entry's part: `started`, `completed` or `errored` (a rollback step's too). */
const ATTEMPT_ENTRY: Partial<Record<HistoryEntry["type"], "started" | "completed" | "errored">> = {
  attempt_started: "started",
  attempt_completed: "completed",
  attempt_errored: "errored",
  rollback_attempt_started: "started",
  rollback_attempt_completed: "completed",
  rollback_attempt_errored: "errored",
};

/** Rebuilds a do-step's (or rollback step's) attempts from its `[rollback_]attempt_*` entries. */
export function attemptsOf(entries: HistoryEntry[]): AttemptDetail[] {
  const byNumber = new Map<number, AttemptDetail>();
  const order: AttemptDetail[] = [];
  for (const e of entries) {
    const part = ATTEMPT_ENTRY[e.type];
    if (!part) continue;
    const data = e.data as
      | {
          attempt?: unknown;
          error?: AttemptDetail["error"];
          cpuTimeMs?: unknown;
          wallTimeMs?: unknown;
          cpuLimitExceeded?: unknown;
        }
      | undefined;
    const n = typeof data?.attempt === "number" ? data.attempt : undefined;
    if (n === undefined) continue;
    if (part === "started") {
      const a: AttemptDetail = { start: iso(e.timestamp), end: null, success: null, error: null };
      byNumber.set(n, a);
      order.push(a);
    } else {
      let a = byNumber.get(n);
      if (!a) {
        a = { start: iso(e.timestamp), end: null, success: null, error: null };
        byNumber.set(n, a);
        order.push(a);
      }
      a.end = iso(e.timestamp);
      a.success = part === "completed";
      a.error = part === "errored" ? (data?.error ?? null) : null;
      if (typeof data?.cpuTimeMs === "number") a.cpu_time_ms = data.cpuTimeMs;
      if (typeof data?.wallTimeMs === "number") a.wall_time_ms = data.wallTimeMs;
      if (data?.cpuLimitExceeded === true) a.cpu_limit_exceeded = true;
    }
  }
  return order;
}

function doStep(row: StepRow, entries: HistoryEntry[], limit: number): DoStepDetail | RollbackStepDetail {
  const output = stepOutput(row);
  return {
    type: row.kind === "rollback" ? "rollback" : "step",
    name: row.name,
    label: stepLabel(row),
    count: row.count,
    start: iso(row.startedAt),
    end: isoOrNull(row.endedAt),
    success: row.status === "succeeded" ? true : row.status === "failed" ? false : null,
    output: output === REDACTED ? output : truncate(output, limit),
    error: row.error,
    config: row.config,
    attempts: attemptsOf(entries),
    retry_at: row.status === "retrying" ? isoOrNull(row.wakeAt) : null,
  };
}

function sleepStep(row: StepRow, entries: HistoryEntry[]): SleepStepDetail {
  const started = entries.find((e) => e.type === "sleep_started");
  const wakeAt =
    row.wakeAt ??
    (typeof started?.data?.wakeAt === "number"
      ? started.data.wakeAt
      : typeof started?.data?.durationMs === "number"
        ? row.startedAt + started.data.durationMs
        : null);
  return {
    type: "sleep",
    name: row.name,
    label: stepLabel(row),
    count: row.count,
    start: iso(row.startedAt),
    end: isoOrNull(row.endedAt),
    until: isoOrNull(wakeAt),
    finished: row.status === "succeeded",
  };
}

function waitStep(row: StepRow, limit: number): WaitStepDetail {
  return {
    type: "waitForEvent",
    name: row.name,
    label: stepLabel(row),
    count: row.count,
    start: iso(row.startedAt),
    end: isoOrNull(row.endedAt),
    finished: row.status === "succeeded" || row.status === "failed",
    event_type: row.eventType,
    timeout_at: row.status === "waiting" ? isoOrNull(row.wakeAt) : null,
    output: truncate(stepOutput(row), limit),
    error: row.error,
  };
}

/** The steps of an instance detail, in the order they started (`seq`). */
export function stepDetails(
  steps: StepRow[],
  history: HistoryEntry[],
  limit = DETAIL_OUTPUT_LIMIT,
): StepDetail[] {
  const byStep = entriesByStep(history);
  return [...steps]
    .sort((a, b) => a.seq - b.seq)
    .map((row) => {
      const entries = byStep.get(stepKeyString(row)) ?? [];
      if (row.kind === "sleep") return sleepStep(row, entries);
      if (row.kind === "waitForEvent") return waitStep(row, limit);
      return doStep(row, entries, limit);
    });
}

/**
 * What an instance cost (SPEC §12.2): its stored CPU and wall time, its step calls and attempts,
 * and the bytes it stores (params, output, step results with stream results' chunks, event payloads, as
 * encoded).
 */
export function instanceMetrics(
  row: InstanceRow,
  steps: StepRow[],
  events: EventRow[] = [],
): InstanceMetrics {
  let stepCount = 0;
  let attempts = 0;
  let bytes = row.params.byteLength + (row.output?.byteLength ?? 0);
  for (const s of steps) {
    if (s.kind !== "rollback") stepCount++;
    if (s.kind === "do" || s.kind === "rollback") attempts += s.attempts;
    bytes += storedByteLength(s.result);
  }
  for (const e of events) bytes += e.payload.byteLength;
  return {
    cpu_time_ms: row.cpuTimeMs ?? 0,
    wall_time_ms: row.wallTimeMs ?? 0,
    steps: stepCount,
    attempts,
    storage_bytes: bytes,
  };
}

export function instanceDetail(
  row: InstanceRow,
  steps: StepRow[],
  history: HistoryEntry[],
  events: EventRow[] = [],
): InstanceDetail {
  return {
    ...instanceSummary(row),
    params: storedJson(row.params),
    output: row.status === "complete" ? storedJson(row.output) : null,
    error: row.error,
    queued: iso(row.createdAt),
    start: isoOrNull(row.startedAt),
    end: isoOrNull(row.endedAt),
    success: row.status === "complete" ? true : row.status === "errored" ? false : null,
    step_count: steps.length,
    steps: stepDetails(steps, history),
    ...(row.rollback?.outcome
      ? {
          rollback: {
            outcome: row.rollback.outcome,
            ...(row.rollback.error ? { error: row.rollback.error } : {}),
          },
        }
      : {}),
    metrics: instanceMetrics(row, steps, events),
  };
}

/** `GET …/step`: one step's full output or error. */
export function stepResult(row: StepRow): StepResult {
  const status: StepResult["status"] =
    row.status === "succeeded"
      ? "complete"
      : row.status === "failed"
        ? "errored"
        : row.status === "running" || row.status === "retrying"
          ? "running"
          : "waiting";
  const result: StepResult = { status, output: stepOutput(row), error: row.error };
  if (row.kind === "waitForEvent") result.event_type = row.eventType;
  return result;
}

/**
 * One history entry as a subscribe event. `lookup` supplies what the entry refers to: the step row
 * (for step outputs) and the instance row (for `workflow_started` params and the final output).
 */
export function subscribeEvent(
  entry: HistoryEntry,
  lookup: { step?: StepRow; instance?: InstanceRow },
): SubscribeEvent {
  const event: SubscribeEvent = {
    ...(entry.data ?? {}),
    type: entry.type,
    instanceId: entry.instanceId,
    eventId: entry.eventId,
    timestamp: entry.timestamp,
  };
  if (entry.step) {
    event.stepName = stepLabel(entry.step);
    event.step = { type: entry.step.kind, name: entry.step.name, count: entry.step.count };
  }
  if (entry.type === "step_completed" || entry.type === "wait_completed") {
    if (lookup.step) event.output = stepOutput(lookup.step);
  } else if (entry.type === "workflow_completed") {
    if (lookup.instance?.status === "complete") event.output = storedJson(lookup.instance.output);
  } else if (entry.type === "workflow_started") {
    if (lookup.instance) event.params = storedJson(lookup.instance.params);
  }
  return event;
}
