/**
 * The column that stores each patchable instance field: one naming convention (snake_case) shared by
 * every SQL store's schema.
 */
const INSTANCE_COLUMNS: Record<string, string> = {
  status: "status",
  output: "output",
  error: "error",
  updatedAt: "updated_at",
  startedAt: "started_at",
  endedAt: "ended_at",
  pausedAt: "paused_at",
  readyAt: "ready_at",
  priority: "priority",
  epoch: "epoch",
  owner: "owner",
  leaseUntil: "lease_until",
  rollback: "rollback",
  cpuTimeMs: "cpu_time_ms",
  wallTimeMs: "wall_time_ms",
  traceparent: "traceparent",
};

export function instanceColumn(key: string): string {
  const c = INSTANCE_COLUMNS[key];
  if (!c) throw new Error(`unknown instance field ${key}`);
  return c;
}
