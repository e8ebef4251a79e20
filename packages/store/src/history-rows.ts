import type { HistoryEntry, HistoryEventType, MetricsRow, NewHistoryEntry, StepKind } from "@cairn/core";

/**
 * The `type` of a history row that holds several entries of one step. A step's outcome usually
 * appends four entries at once (`step_started`, `attempt_started`, `attempt_completed`,
 * `step_completed`); storing them as one row instead of four is a large part of a step commit's cost.
 * Readers expand it (`expandHistoryRow`, `packedMetricsRows`): nothing outside the store sees it.
 */
export const PACKED_HISTORY_TYPE = "packed";

/**
 * The most entries one packed row holds: a longer run is split. A store that numbers rows from a
 * sequence stepping by this much (PostgreSQL) has the ids below each row's free for its entries.
 */
export const MAX_PACKED_ENTRIES = 8;

/** One row to insert into a history table. */
export interface HistoryRowValues {
  workflow: string;
  instanceId: string;
  /** The entry's type, or `PACKED_HISTORY_TYPE`. */
  type: string;
  /** The entry's time; for a packed row, the latest of its entries' times. */
  timestamp: number;
  stepKind: string | null;
  stepName: string | null;
  stepCount: number | null;
  /** JSON: the entry's `data`; for a packed row, the array of `[type, timestamp, data?]`. */
  data: string | null;
  /**
   * How many entries a packed row holds (null for a row of one entry). They take the event ids
   * `eventId - span + 1` to `eventId`: the row's id is its last entry's.
   */
  span: number | null;
}

/** The JSON of an entry's `data` (a store may cache parts of it), or null when it has none. */
export type HistoryDataJson = (entry: NewHistoryEntry) => string | null;

const dataJson: HistoryDataJson = (e) => (e.data === undefined ? null : JSON.stringify(e.data));

const sameStep = (a: NewHistoryEntry, b: NewHistoryEntry): boolean =>
  a.step !== undefined &&
  b.step !== undefined &&
  a.workflow === b.workflow &&
  a.instanceId === b.instanceId &&
  a.step.kind === b.step.kind &&
  a.step.name === b.step.name &&
  a.step.count === b.step.count;

/**
 * The rows that store `entries`, in order: each run of two or more consecutive entries of the same
 * step (up to `MAX_PACKED_ENTRIES`) is one packed row; every other entry is a row of its own.
 */
export function packHistory(
  entries: readonly NewHistoryEntry[],
  json: HistoryDataJson = dataJson,
): HistoryRowValues[] {
  const out: HistoryRowValues[] = [];
  let i = 0;
  while (i < entries.length) {
    const e = entries[i]!;
    let end = i + 1;
    while (end < entries.length && end - i < MAX_PACKED_ENTRIES && sameStep(e, entries[end]!)) end++;
    if (end - i === 1) {
      out.push({
        workflow: e.workflow,
        instanceId: e.instanceId,
        type: e.type,
        timestamp: e.timestamp,
        stepKind: e.step?.kind ?? null,
        stepName: e.step?.name ?? null,
        stepCount: e.step?.count ?? null,
        data: json(e),
        span: null,
      });
    } else {
      // Entry types are identifiers and timestamps numbers: neither needs escaping.
      let text = "[";
      let latest = e.timestamp;
      for (let j = i; j < end; j++) {
        const x = entries[j]!;
        if (x.timestamp > latest) latest = x.timestamp;
        const d = json(x);
        text += `${j === i ? "" : ","}["${x.type}",${x.timestamp}${d === null ? "" : `,${d}`}]`;
      }
      out.push({
        workflow: e.workflow,
        instanceId: e.instanceId,
        type: PACKED_HISTORY_TYPE,
        timestamp: latest,
        stepKind: e.step!.kind,
        stepName: e.step!.name,
        stepCount: e.step!.count,
        data: `${text}]`,
        span: end - i,
      });
    }
    i = end;
  }
  return out;
}

/** A packed row's entries as stored: `[type, timestamp, data?]`. */
export type PackedEntry = [HistoryEventType, number, unknown?];

/** The fields of a history row that expanding it reads (`data` already parsed). */
export interface StoredHistoryRow {
  eventId: number;
  workflow: string;
  instanceId: string;
  type: string;
  timestamp: number;
  step: { kind: StepKind; name: string; count: number } | undefined;
  data: unknown;
  span: number | null;
}

/** The entries a stored row holds: itself, or a packed row's entries with their event ids. */
export function expandHistoryRow(r: StoredHistoryRow): HistoryEntry[] {
  if (r.span === null || r.type !== PACKED_HISTORY_TYPE) {
    const entry = {
      eventId: r.eventId,
      workflow: r.workflow,
      instanceId: r.instanceId,
      type: r.type,
      timestamp: r.timestamp,
    } as HistoryEntry;
    if (r.step) entry.step = r.step;
    if (r.data !== null && r.data !== undefined) entry.data = r.data as HistoryEntry["data"];
    return [entry];
  }
  const packed = r.data as PackedEntry[];
  const first = r.eventId - packed.length + 1;
  return packed.map(([type, timestamp, data], k) => {
    const entry = {
      eventId: first + k,
      workflow: r.workflow,
      instanceId: r.instanceId,
      type,
      timestamp,
    } as HistoryEntry;
    if (r.step) entry.step = { ...r.step };
    if (data !== undefined && data !== null) entry.data = data as HistoryEntry["data"];
    return entry;
  });
}

/**
 * `history.list`'s answer from the entries of the rows it read (`event_id > afterEventId`, at most
 * `limit` rows): the first row may hold entries up to `afterEventId`, and every row holds at least
 * one entry after it, so `limit` rows hold enough.
 */
export function historyPage(
  entries: readonly HistoryEntry[],
  afterEventId: number,
  limit: number | undefined,
): HistoryEntry[] {
  const from = entries.findIndex((e) => e.eventId > afterEventId);
  if (from < 0) return [];
  return entries.slice(from, limit === undefined ? undefined : from + limit);
}

/**
 * The metrics rows (SPEC §12.2) of a packed row's entries with `from <= timestamp <= to` (a packed
 * row is stamped with its latest time, so a range scan over rows has to expand it to know).
 */
export function packedMetricsRows(
  instanceId: string,
  stepName: string | null,
  packed: readonly PackedEntry[],
  from: number,
  to: number,
): MetricsRow[] {
  const out: MetricsRow[] = [];
  for (const [type, timestamp, data] of packed) {
    if (timestamp < from || timestamp > to) continue;
    const d = data as { cpuTimeMs?: unknown; wallTimeMs?: unknown } | undefined;
    out.push({
      type,
      instanceId,
      stepName,
      timestamp,
      cpuTimeMs: typeof d?.cpuTimeMs === "number" ? d.cpuTimeMs : null,
      wallTimeMs: typeof d?.wallTimeMs === "number" ? d.wallTimeMs : null,
    });
  }
  return out;
}
