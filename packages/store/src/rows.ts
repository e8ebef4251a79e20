import type { HistoryEntry, InstanceStatus, MetricsRow, StepKind } from "@cairn/core";
import { expandHistoryRow, packedMetricsRows } from "./history-rows.ts";
import type { ClaimedInstance, EventRow, InstanceRow, StepRow } from "./types.ts";

/** A row as a SQL driver returns it: snake_case columns (see `instanceColumn`). */
export type SqlRow = Record<string, unknown>;

/** How a dialect's driver hands back the two column types that differ between SQL stores. */
export interface ColumnReaders {
  /** A binary column (`BLOB`, `bytea`) as a Uint8Array, or null. */
  bytes(value: unknown): Uint8Array | null;
  /** A JSON column (`TEXT` holding JSON, `jsonb`) as its value, or null. */
  json<T>(value: unknown): T | null;
}

/** Decodes the rows of Cairn's tables, the same for every SQL store. */
export interface RowReader {
  instance(r: SqlRow): InstanceRow;
  /** An instance row a claim returned: `takenOver` when its `taken_over` column is true. */
  claimed(r: SqlRow): ClaimedInstance;
  step(r: SqlRow): StepRow;
  event(r: SqlRow): EventRow;
  /** The entries a history row holds: one, or several for a packed row (`packHistory`). */
  history(r: SqlRow): HistoryEntry[];
  /**
   * The metrics rows of a row of a metrics scan (`type`, `instance_id`, `step_name`, `timestamp`,
   * `span`, `cpu`, `wall`, and `packed`: a packed row's data): the row itself, or the entries of a
   * packed row with `from <= timestamp <= to`.
   */
  metrics(r: SqlRow, from: number, to: number): MetricsRow[];
}

/** A nullable integer column (SQLite and `pg` may return bigint columns as strings or bigints). */
export const nullableNumber = (v: unknown): number | null =>
  v === null || v === undefined ? null : Number(v);

const text = (v: unknown): string | null => (v === null || v === undefined ? null : (v as string));

/**
 * The row decoders of a SQL store, given how its driver returns bytes and JSON. The tables and their
 * column names are the same in every dialect (the migrations of each store create them).
 */
export function rowReader(columns: ColumnReaders): RowReader {
  const { bytes, json } = columns;
  const num = nullableNumber;
  const instance = (r: SqlRow): InstanceRow => {
    const row: InstanceRow = {
      workflow: r.workflow as string,
      id: r.id as string,
      status: r.status as InstanceStatus,
      params: bytes(r.params) ?? new Uint8Array(0),
      output: bytes(r.output),
      error: json(r.error),
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
      startedAt: num(r.started_at),
      endedAt: num(r.ended_at),
      pausedAt: num(r.paused_at),
      readyAt: num(r.ready_at),
      priority: Number(r.priority),
      epoch: Number(r.epoch),
      owner: text(r.owner),
      leaseUntil: num(r.lease_until),
    };
    const rollback = json<InstanceRow["rollback"]>(r.rollback);
    if (rollback) row.rollback = rollback;
    // Rows of a store before migration 4 (SQLite) / 5 (PostgreSQL) have none of these columns.
    if (r.cpu_time_ms !== undefined) {
      row.cpuTimeMs = Number(r.cpu_time_ms);
      row.wallTimeMs = Number(r.wall_time_ms);
    }
    if (typeof r.traceparent === "string") row.traceparent = r.traceparent;
    return row;
  };
  return {
    instance,
    claimed(r) {
      const row: ClaimedInstance = instance(r);
      if (r.taken_over === true) row.takenOver = true;
      return row;
    },
    step(r) {
      const step: StepRow = {
        workflow: r.workflow as string,
        instanceId: r.instance_id as string,
        kind: r.kind as StepKind,
        name: r.name as string,
        count: Number(r.count),
        seq: Number(r.seq),
        status: r.status as StepRow["status"],
        config: json(r.config),
        attempts: Number(r.attempts),
        result: bytes(r.result),
        error: json(r.error),
        startedAt: Number(r.started_at),
        endedAt: num(r.ended_at),
        wakeAt: num(r.wake_at),
        eventType: text(r.event_type),
      };
      // `has_rollback` is a boolean in PostgreSQL and 0/1 in SQLite; rows without one get no fields.
      if (Number(r.has_rollback) === 1) {
        step.hasRollback = true;
        step.rollbackConfig = json(r.rollback_config);
      }
      return step;
    },
    event: (r) => ({
      workflow: r.workflow as string,
      instanceId: r.instance_id as string,
      seq: Number(r.seq),
      type: r.type as string,
      payload: bytes(r.payload) ?? new Uint8Array(0),
      timestamp: Number(r.timestamp),
      consumedBy: text(r.consumed_by),
    }),
    history: (r) =>
      expandHistoryRow({
        eventId: Number(r.event_id),
        workflow: r.workflow as string,
        instanceId: r.instance_id as string,
        type: r.type as string,
        timestamp: Number(r.timestamp),
        step:
          r.step_kind !== null && r.step_kind !== undefined
            ? { kind: r.step_kind as StepKind, name: r.step_name as string, count: Number(r.step_count) }
            : undefined,
        data: json(r.data),
        span: num(r.span),
      }),
    metrics: (r, from, to) =>
      r.span === null || r.span === undefined
        ? [
            {
              type: r.type as MetricsRow["type"],
              instanceId: r.instance_id as string,
              stepName: text(r.step_name),
              timestamp: Number(r.timestamp),
              cpuTimeMs: num(r.cpu),
              wallTimeMs: num(r.wall),
            },
          ]
        : packedMetricsRows(r.instance_id as string, text(r.step_name), json(r.packed) ?? [], from, to),
  };
}

/** `instances.countByStatus` rows (`workflow`, `status`, `count` columns). */
export function statusCount(r: SqlRow): { workflow: string; status: InstanceStatus; count: number } {
  return { workflow: r.workflow as string, status: r.status as InstanceStatus, count: Number(r.count) };
}
