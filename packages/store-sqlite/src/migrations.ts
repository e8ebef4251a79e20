/**
 * The SQLite schema, as numbered forward-only migrations. Never edit an applied migration: add the
 * next number. `LATEST_VERSION` is what this code expects; a database with a newer version is refused.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: "initial schema",
    sql: `
CREATE TABLE instances (
  workflow    TEXT    NOT NULL,
  id          TEXT    NOT NULL,
  status      TEXT    NOT NULL,
  params      BLOB    NOT NULL,
  output      BLOB,
  error       TEXT,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  started_at  INTEGER,
  ended_at    INTEGER,
  paused_at   INTEGER,
  ready_at    INTEGER,
  priority    INTEGER NOT NULL DEFAULT 1,
  epoch       INTEGER NOT NULL DEFAULT 0,
  owner       TEXT,
  lease_until INTEGER,
  PRIMARY KEY (workflow, id)
);
CREATE INDEX instances_ready ON instances (priority, ready_at) WHERE ready_at IS NOT NULL;
CREATE INDEX instances_by_created ON instances (workflow, created_at, id);
CREATE INDEX instances_by_status ON instances (workflow, status, created_at, id);
CREATE INDEX instances_running ON instances (status) WHERE status IN ('running', 'waitingForPause');

CREATE TABLE steps (
  workflow    TEXT    NOT NULL,
  instance_id TEXT    NOT NULL,
  kind        TEXT    NOT NULL,
  name        TEXT    NOT NULL,
  count       INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  status      TEXT    NOT NULL,
  config      TEXT,
  attempts    INTEGER NOT NULL DEFAULT 0,
  result      BLOB,
  error       TEXT,
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER,
  wake_at     INTEGER,
  event_type  TEXT,
  PRIMARY KEY (workflow, instance_id, kind, name, count)
) WITHOUT ROWID;

CREATE TABLE events (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow    TEXT    NOT NULL,
  instance_id TEXT    NOT NULL,
  type        TEXT    NOT NULL,
  payload     BLOB    NOT NULL,
  timestamp   INTEGER NOT NULL,
  consumed_by TEXT
);
CREATE INDEX events_by_instance ON events (workflow, instance_id, type, seq);

CREATE TABLE history (
  event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow    TEXT    NOT NULL,
  instance_id TEXT    NOT NULL,
  type        TEXT    NOT NULL,
  timestamp   INTEGER NOT NULL,
  step_kind   TEXT,
  step_name   TEXT,
  step_count  INTEGER,
  data        TEXT
);
CREATE INDEX history_by_instance ON history (workflow, instance_id, event_id);
`,
  },
  {
    version: 2,
    name: "rollbacks: the step's handler flag and config, the instance's phase",
    sql: `
ALTER TABLE steps ADD COLUMN has_rollback INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN rollback_config TEXT;
ALTER TABLE instances ADD COLUMN rollback TEXT;
`,
  },
  {
    version: 3,
    name: "schedules: the latest slot settled per cron",
    sql: `
CREATE TABLE schedules (
  kind        TEXT    NOT NULL,
  name        TEXT    NOT NULL,
  cron        TEXT    NOT NULL,
  last_at     INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (kind, name, cron)
) WITHOUT ROWID;
`,
  },
  {
    version: 4,
    name: "metrics: an instance's CPU and wall time, and the trace its runs belong to",
    sql: `
ALTER TABLE instances ADD COLUMN cpu_time_ms REAL NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN wall_time_ms REAL NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN traceparent TEXT;
`,
  },
  {
    version: 5,
    name: "claims seek due and expired rows instead of scanning parked ones",
    // The claim's two halves and nextReadyAt read through these: rows ready by a time (a range on
    // ready_at, not an ordered walk of every parked row) and held rows whose lease expired. Without
    // them each claim pass scanned the table, 20 ms at 200,000 parked instances.
    sql: `
DROP INDEX instances_ready;
CREATE INDEX instances_ready_at ON instances (ready_at) WHERE ready_at IS NOT NULL AND status IN ('queued', 'waiting');
CREATE INDEX instances_leased ON instances (lease_until) WHERE status IN ('running', 'waiting', 'waitingForPause');
`,
  },
  {
    version: 6,
    name: "stream results in chunk rows",
    // A rowid table (its key an index beside it): WITHOUT ROWID suits small rows, not 256 KiB blobs.
    sql: `
CREATE TABLE step_chunks (
  workflow    TEXT    NOT NULL,
  instance_id TEXT    NOT NULL,
  kind        TEXT    NOT NULL,
  name        TEXT    NOT NULL,
  count       INTEGER NOT NULL,
  idx         INTEGER NOT NULL,
  bytes       BLOB    NOT NULL,
  PRIMARY KEY (workflow, instance_id, kind, name, count, idx)
);
`,
  },
  {
    version: 7,
    name: "history: one row for several entries of a step",
    // A packed row (type 'packed', see packHistory) holds `span` entries, numbered up to its event_id.
    sql: `
ALTER TABLE history ADD COLUMN span INTEGER;
`,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
