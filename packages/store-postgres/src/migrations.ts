/**
 * The PostgreSQL schema, as numbered forward-only migrations. Never edit an applied migration: add the
 * next number. Each migration is a function of the (quoted) schema name, because every table lives in
 * a schema of the store's choosing. `LATEST_VERSION` is what this code expects; a schema with a newer
 * version is refused.
 *
 * Column choices: values are `bytea`, config/error/data `jsonb`, times `bigint` epoch milliseconds,
 * ids and names `text COLLATE "C"` so ordering and cursors compare bytes, like SQLite.
 */
export interface Migration {
  version: number;
  name: string;
  sql: (schema: string) => string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    sql: (s) => `
CREATE TABLE ${s}.instances (
  workflow    text COLLATE "C" NOT NULL,
  id          text COLLATE "C" NOT NULL,
  status      text    NOT NULL,
  params      bytea   NOT NULL,
  output      bytea,
  error       jsonb,
  created_at  bigint  NOT NULL,
  updated_at  bigint  NOT NULL,
  started_at  bigint,
  ended_at    bigint,
  paused_at   bigint,
  ready_at    bigint,
  priority    integer NOT NULL DEFAULT 1,
  epoch       bigint  NOT NULL DEFAULT 0,
  owner       text,
  lease_until bigint,
  PRIMARY KEY (workflow, id)
);
-- claim (ready instances in claim order) and nextReadyAt: only claimable rows are indexed.
CREATE INDEX instances_ready ON ${s}.instances (priority, ready_at)
  WHERE ready_at IS NOT NULL AND status IN ('queued', 'waiting');
CREATE INDEX instances_ready_at ON ${s}.instances (ready_at)
  WHERE ready_at IS NOT NULL AND status IN ('queued', 'waiting');
-- claim (expired leases), renewLeases and countRunning: only rows holding a concurrency slot.
CREATE INDEX instances_leased ON ${s}.instances (lease_until) WHERE status IN ('running', 'waitingForPause');
CREATE INDEX instances_owned ON ${s}.instances (owner) WHERE status IN ('running', 'waitingForPause');
-- list, with and without a status filter.
CREATE INDEX instances_by_created ON ${s}.instances (workflow, created_at, id);
CREATE INDEX instances_by_status ON ${s}.instances (workflow, status, created_at, id);

CREATE TABLE ${s}.steps (
  workflow    text COLLATE "C" NOT NULL,
  instance_id text COLLATE "C" NOT NULL,
  kind        text    NOT NULL,
  name        text COLLATE "C" NOT NULL,
  count       integer NOT NULL,
  seq         integer NOT NULL,
  status      text    NOT NULL,
  config      jsonb,
  attempts    integer NOT NULL DEFAULT 0,
  result      bytea,
  error       jsonb,
  started_at  bigint  NOT NULL,
  ended_at    bigint,
  wake_at     bigint,
  event_type  text,
  PRIMARY KEY (workflow, instance_id, kind, name, count)
);

CREATE TABLE ${s}.events (
  seq         bigserial PRIMARY KEY,
  workflow    text COLLATE "C" NOT NULL,
  instance_id text COLLATE "C" NOT NULL,
  type        text   NOT NULL,
  payload     bytea  NOT NULL,
  timestamp   bigint NOT NULL,
  consumed_by text
);
CREATE INDEX events_by_instance ON ${s}.events (workflow, instance_id, type, seq);

CREATE TABLE ${s}.history (
  event_id    bigserial PRIMARY KEY,
  workflow    text COLLATE "C" NOT NULL,
  instance_id text COLLATE "C" NOT NULL,
  type        text   NOT NULL,
  timestamp   bigint NOT NULL,
  step_kind   text,
  step_name   text COLLATE "C",
  step_count  integer,
  data        jsonb
);
CREATE INDEX history_by_instance ON ${s}.history (workflow, instance_id, event_id);
`,
  },
  {
    version: 2,
    name: "count running instances under the claim lock",
    // In READ COMMITTED a statement sees the data of when it started; a function's own statement sees
    // what was committed when it runs. So one statement can wait for the claim lock and then count
    // every claim committed before it got the lock, without a transaction around it.
    sql: (s) => `
CREATE FUNCTION ${s}.running_after_claim_lock(lock_key text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
  RETURN (SELECT COUNT(*) FROM ${s}.instances WHERE status IN ('running', 'waitingForPause'));
END
$fn$;
`,
  },
  {
    version: 3,
    name: "rollbacks: the step's handler flag and config, the instance's phase",
    sql: (s) => `
ALTER TABLE ${s}.steps ADD COLUMN has_rollback boolean NOT NULL DEFAULT false;
ALTER TABLE ${s}.steps ADD COLUMN rollback_config jsonb;
ALTER TABLE ${s}.instances ADD COLUMN rollback jsonb;
`,
  },
  {
    version: 4,
    name: "schedules: the latest slot settled per cron",
    sql: (s) => `
CREATE TABLE ${s}.schedules (
  kind        text   NOT NULL,
  name        text COLLATE "C" NOT NULL,
  cron        text COLLATE "C" NOT NULL,
  last_at     bigint NOT NULL,
  updated_at  bigint NOT NULL,
  PRIMARY KEY (kind, name, cron)
);
`,
  },
  {
    version: 5,
    name: "metrics: an instance's CPU and wall time, and the trace its runs belong to",
    sql: (s) => `
ALTER TABLE ${s}.instances ADD COLUMN cpu_time_ms double precision NOT NULL DEFAULT 0;
ALTER TABLE ${s}.instances ADD COLUMN wall_time_ms double precision NOT NULL DEFAULT 0;
ALTER TABLE ${s}.instances ADD COLUMN traceparent text;
`,
  },
  {
    version: 6,
    name: "stream results in chunk rows",
    sql: (s) => `
CREATE TABLE ${s}.step_chunks (
  workflow    text COLLATE "C" NOT NULL,
  instance_id text COLLATE "C" NOT NULL,
  kind        text    NOT NULL,
  name        text COLLATE "C" NOT NULL,
  count       integer NOT NULL,
  idx         integer NOT NULL,
  bytes       bytea   NOT NULL,
  PRIMARY KEY (workflow, instance_id, kind, name, count, idx)
);
`,
  },
  {
    version: 7,
    name: "Durable Objects shared by workers: ownership leases, changesets and snapshots",
    sql: (s) => `
CREATE TABLE ${s}.do_objects (
  class       text COLLATE "C" NOT NULL,
  object_id   text COLLATE "C" NOT NULL,
  owner       text,
  epoch       bigint NOT NULL DEFAULT 0,
  lease_until bigint,
  seq         bigint NOT NULL DEFAULT 0,
  alarm_at    bigint,
  PRIMARY KEY (class, object_id)
);
CREATE INDEX do_objects_owner ON ${s}.do_objects (owner) WHERE owner IS NOT NULL;
CREATE INDEX do_objects_alarm ON ${s}.do_objects (alarm_at) WHERE alarm_at IS NOT NULL;
CREATE TABLE ${s}.do_changesets (
  class       text COLLATE "C" NOT NULL,
  object_id   text COLLATE "C" NOT NULL,
  seq         bigint NOT NULL,
  epoch       bigint NOT NULL,
  bytes       bytea  NOT NULL,
  PRIMARY KEY (class, object_id, seq)
);
CREATE TABLE ${s}.do_namespaces (
  class       text COLLATE "C" PRIMARY KEY,
  key         bytea  NOT NULL
);
CREATE TABLE ${s}.do_snapshots (
  class       text COLLATE "C" NOT NULL,
  object_id   text COLLATE "C" NOT NULL,
  seq         bigint NOT NULL,
  bytes       bytea  NOT NULL,
  PRIMARY KEY (class, object_id)
);
`,
  },
  {
    version: 8,
    name: "Durable Objects: the address of the worker holding an object (for forwarding), names and times of objects (for listing them from any worker), wrangler migrations applied once per store",
    sql: (s) => `
ALTER TABLE ${s}.do_objects ADD COLUMN owner_url text, ADD COLUMN name text, ADD COLUMN created_at bigint,
  ADD COLUMN last_access bigint;
CREATE INDEX do_objects_recent ON ${s}.do_objects (class, last_access DESC, object_id);
CREATE TABLE ${s}.do_migrations (
  seq         integer PRIMARY KEY,
  tag         text COLLATE "C" NOT NULL UNIQUE,
  applied_at  bigint NOT NULL
);
`,
  },
  {
    version: 9,
    name: "history: one row for several entries of a step",
    // A packed row (type 'packed', see packHistory) holds `span` entries, numbered up to its event_id:
    // the sequence steps by MAX_PACKED_ENTRIES (8), so the ids below each row's are free for them.
    sql: (s) => `
ALTER TABLE ${s}.history ADD COLUMN span integer;
DO $$
DECLARE seq text := pg_get_serial_sequence('${s}.history', 'event_id');
BEGIN
  EXECUTE format('ALTER SEQUENCE %s INCREMENT BY 8', seq);
  -- The first row's entries need ids of 1 and up below its own: no row takes an id under 8 + 1.
  EXECUTE format('SELECT setval(%L, GREATEST(last_value, 8)) FROM %s', seq, seq);
END $$;
`,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
