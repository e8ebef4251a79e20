/**
 * Every query of the SQLite store, as named builders. Patch-shaped updates are built from the set of
 * columns they touch, so each distinct shape is prepared once.
 */
export { instanceColumn } from "@cairn/store";

/** Which guard conditions a statement checks; `statuses` is the length of `statusIn` (at least 1). */
type InstanceGuardShape = { epoch: boolean; owner: boolean; statuses: number };

function guardedInstance(guard: InstanceGuardShape): string {
  let where = "workflow = ? AND id = ?";
  if (guard.epoch) where += " AND epoch = ?";
  if (guard.owner) where += " AND owner = ?";
  if (guard.statuses > 0) where += ` AND status IN (${Array(guard.statuses).fill("?").join(", ")})`;
  return where;
}

export const sql = {
  insertInstance: `INSERT INTO instances (workflow, id, status, params, created_at, updated_at, started_at, ready_at, priority, epoch, owner, lease_until)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  getInstance: "SELECT * FROM instances WHERE workflow = ? AND id = ?",
  /** What a step commit checks: the run's epoch and the instance's status. */
  fenceOf: "SELECT status, epoch FROM instances WHERE workflow = ? AND id = ?",
  setStatus: "UPDATE instances SET status = ?, updated_at = ? WHERE workflow = ? AND id = ?",
  deleteInstance: "DELETE FROM instances WHERE workflow = ? AND id = ?",
  deleteInstanceSteps: "DELETE FROM steps WHERE workflow = ? AND instance_id = ?",
  deleteInstanceEvents: "DELETE FROM events WHERE workflow = ? AND instance_id = ?",
  deleteInstanceHistory: "DELETE FROM history WHERE workflow = ? AND instance_id = ?",
  deleteInstanceChunks: "DELETE FROM step_chunks WHERE workflow = ? AND instance_id = ?",
  updateInstance(sets: string[], guard: InstanceGuardShape): string {
    return `UPDATE instances SET ${sets.map((c) => `${c} = ?`).join(", ")} WHERE ${guardedInstance(guard)}`;
  },
  /** Whether the instance exists and matches the guard: what an update with an empty patch reports. */
  matchInstance(guard: InstanceGuardShape): string {
    return `SELECT 1 FROM instances WHERE ${guardedInstance(guard)}`;
  },
  listInstances(o: {
    status: boolean;
    after: boolean;
    desc: boolean;
    from: boolean;
    to: boolean;
    search: boolean;
  }): string {
    const where = ["workflow = ?"];
    if (o.status) where.push("status = ?");
    if (o.from) where.push("created_at >= ?");
    if (o.to) where.push("created_at <= ?");
    if (o.search) where.push("instr(id, ?) > 0");
    if (o.after) where.push(o.desc ? "(created_at, id) < (?, ?)" : "(created_at, id) > (?, ?)");
    const dir = o.desc ? "DESC" : "ASC";
    return `SELECT * FROM instances WHERE ${where.join(" AND ")} ORDER BY created_at ${dir}, id ${dir} LIMIT ?`;
  },
  countByStatus: "SELECT workflow, status, COUNT(*) AS count FROM instances GROUP BY workflow, status",
  countByStatusFor:
    "SELECT workflow, status, COUNT(*) AS count FROM instances WHERE workflow = ? GROUP BY workflow, status",
  /**
   * A claim is the candidates (a read through the partial indexes), then each updated by its key
   * with the same conditions, in one transaction when there are several. Most claim passes find
   * nothing, and the read alone costs 4 µs where the one-statement `UPDATE … WHERE (workflow, id) IN
   * (subquery) RETURNING *` it replaces cost 63 µs even when it changed nothing (2,000 instances).
   * The candidates are two reads, held rows whose lease expired (`claimExpired`, first: they go
   * before any ready row) and ready rows by priority (`claimReady`): one `UNION ALL … ORDER BY` of
   * both cost 14 µs against 3 µs for the two, its sorter set up even for no rows.
   */
  claimExpired: `SELECT workflow, id FROM instances
    WHERE status IN ('running', 'waiting', 'waitingForPause') AND lease_until < ? AND (owner IS NULL OR owner <> ?)
    LIMIT ?`,
  claimReady: `SELECT workflow, id FROM instances
    WHERE ready_at IS NOT NULL AND ready_at <= ? AND status IN ('queued', 'waiting')
      AND (lease_until IS NULL OR lease_until < ?)
    ORDER BY priority, ready_at LIMIT ?`,
  /** One candidate, if it still is one (another connection may have changed it since). */
  claimOne: `UPDATE instances
    SET status = CASE WHEN status = 'waitingForPause' THEN status ELSE 'running' END, epoch = epoch + 1,
        owner = ?, lease_until = ?, ready_at = NULL, updated_at = ?, started_at = COALESCE(started_at, ?)
    WHERE workflow = ? AND id = ? AND (
      (ready_at IS NOT NULL AND ready_at <= ? AND status IN ('queued', 'waiting') AND (lease_until IS NULL OR lease_until < ?))
      OR (status IN ('running', 'waiting', 'waitingForPause') AND lease_until < ? AND (owner IS NULL OR owner <> ?)))
    RETURNING *`,
  expireLeases:
    "UPDATE instances SET lease_until = 0 WHERE lease_until IS NOT NULL RETURNING workflow, id, status",
  nextReadyAt:
    "SELECT MIN(ready_at) AS t FROM instances WHERE ready_at IS NOT NULL AND status IN ('queued', 'waiting')",
  renewLeases:
    "UPDATE instances SET lease_until = ? WHERE owner = ? AND status IN ('running', 'waiting', 'waitingForPause')",
  countRunning: "SELECT COUNT(*) AS n FROM instances WHERE status IN ('running', 'waitingForPause')",
  // The status IN (…) term matches the partial index instances_ready_at, so the count seeks through it.
  countDue: `SELECT COUNT(*) AS n FROM instances
    WHERE ready_at IS NOT NULL AND ready_at <= ? AND status IN ('queued', 'waiting') AND status = 'waiting'`,

  /** Read as arrays (see `stepFromArray`): the columns in this order, without the instance's own. */
  listSteps:
    "SELECT kind, name, count, seq, status, config, attempts, result, error, started_at, ended_at, wake_at, event_type, has_rollback, rollback_config FROM steps WHERE workflow = ? AND instance_id = ? ORDER BY seq, started_at, kind, name, count",
  getStep:
    "SELECT * FROM steps WHERE workflow = ? AND instance_id = ? AND kind = ? AND name = ? AND count = ?",
  putStep: `INSERT OR REPLACE INTO steps (workflow, instance_id, kind, name, count, seq, status, config, attempts, result,
    error, started_at, ended_at, wake_at, event_type, has_rollback, rollback_config)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  deleteStep:
    "DELETE FROM steps WHERE workflow = ? AND instance_id = ? AND kind = ? AND name = ? AND count = ?",
  insertChunk:
    "INSERT INTO step_chunks (workflow, instance_id, kind, name, count, idx, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
  getChunk: `SELECT bytes FROM step_chunks WHERE workflow = ? AND instance_id = ? AND kind = ? AND name = ? AND count = ?
    AND idx = ?`,
  deleteStepChunks:
    "DELETE FROM step_chunks WHERE workflow = ? AND instance_id = ? AND kind = ? AND name = ? AND count = ?",
  shiftWakeTimes: `UPDATE steps SET wake_at = wake_at + ? WHERE workflow = ? AND instance_id = ? AND wake_at IS NOT NULL
    AND status IN ('sleeping', 'retrying', 'waiting')`,
  hasWaiter: `SELECT 1 FROM steps WHERE workflow = ? AND instance_id = ? AND kind = 'waitForEvent' AND status = 'waiting'
    AND event_type = ? LIMIT 1`,

  insertEvent: "INSERT INTO events (workflow, instance_id, type, payload, timestamp) VALUES (?, ?, ?, ?, ?)",
  listEvents: "SELECT * FROM events WHERE workflow = ? AND instance_id = ? ORDER BY seq",
  consumeEvent: `UPDATE events SET consumed_by = ? WHERE seq = (
    SELECT seq FROM events WHERE workflow = ? AND instance_id = ? AND type = ? AND consumed_by IS NULL ORDER BY seq LIMIT 1)
    RETURNING *`,
  deleteEventsConsumedBy: "DELETE FROM events WHERE workflow = ? AND instance_id = ? AND consumed_by = ?",

  appendHistory: (rows: number) =>
    `INSERT INTO history (event_id, workflow, instance_id, type, timestamp, step_kind, step_name, step_count, data, span) VALUES ${Array(
      rows,
    )
      .fill("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .join(", ")}`,
  /** The last event id given (AUTOINCREMENT's counter), read once per transaction. */
  lastEventId: "SELECT seq FROM sqlite_sequence WHERE name = 'history'",
  listHistory:
    "SELECT * FROM history WHERE workflow = ? AND instance_id = ? AND event_id > ? ORDER BY event_id LIMIT ?",
  // A packed row is stamped with its latest entry's time, so it is read when that is in range or
  // later, and its entries are filtered by time when expanded.
  metricsHistory: `SELECT type, instance_id, step_name, timestamp, span,
    CASE WHEN span IS NULL THEN json_extract(data, '$.cpuTimeMs') END AS cpu,
    CASE WHEN span IS NULL THEN json_extract(data, '$.wallTimeMs') END AS wall,
    CASE WHEN span IS NULL THEN NULL ELSE data END AS packed
    FROM history WHERE workflow = ? AND timestamp >= ? AND (timestamp <= ? OR span IS NOT NULL)
    ORDER BY event_id`,
  deleteHistoryOfStep: `DELETE FROM history WHERE workflow = ? AND instance_id = ? AND step_kind = ? AND step_name = ?
    AND step_count = ?`,
  deleteHistoryAfter:
    "DELETE FROM history WHERE workflow = ? AND instance_id = ? AND step_kind IS NULL AND event_id > ?",

  listSchedules: "SELECT * FROM schedules ORDER BY kind, name, cron",
  /** Inserts the row, or moves `last_at` forward; changes nothing (0 rows) for a `to` not later. */
  advanceSchedule: `INSERT INTO schedules (kind, name, cron, last_at, updated_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (kind, name, cron) DO UPDATE SET last_at = excluded.last_at, updated_at = excluded.updated_at
    WHERE schedules.last_at < excluded.last_at`,
} as const;
