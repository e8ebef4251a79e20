/**
 * Every query of the PostgreSQL store, as named builders over one schema. `queries(schema)` is built
 * once per store; patch-shaped updates are built from the set of columns they touch. Every method of
 * the store outside `transaction` is one statement here, so it is atomic on its own (deletes that span
 * tables use data-modifying CTEs, multi-row writes use `unnest`).
 */
import { PACKED_HISTORY_TYPE } from "@cairn/store";

export { instanceColumn } from "@cairn/store";

/** A schema name Cairn accepts: a plain identifier, quoted so its case is kept. */
export function quoteSchema(schema: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema))
    throw new Error(`Invalid Cairn schema name "${schema}": use letters, digits and _ (at most 63)`);
  return `"${schema}"`;
}

/** Which guard conditions a statement checks, in parameter order after workflow and id. */
export type InstanceGuardShape = { epoch: boolean; owner: boolean; statuses: boolean };

function guardedInstance(guard: InstanceGuardShape, first: number): string {
  let n = first;
  let where = `workflow = $${n++} AND id = $${n++}`;
  if (guard.epoch) where += ` AND epoch = $${n++}`;
  if (guard.owner) where += ` AND owner = $${n++}`;
  if (guard.statuses) where += ` AND status = ANY($${n++}::text[])`;
  return where;
}

/** The SQL type of each patchable instance column. */
const COLUMN_TYPES: Record<string, string> = {
  status: "text",
  output: "bytea",
  error: "jsonb",
  updated_at: "bigint",
  started_at: "bigint",
  ended_at: "bigint",
  paused_at: "bigint",
  ready_at: "bigint",
  priority: "integer",
  epoch: "bigint",
  owner: "text",
  lease_until: "bigint",
  rollback: "jsonb",
  cpu_time_ms: "double precision",
  wall_time_ms: "double precision",
  traceparent: "text",
};

/**
 * Appends history entries from parallel arrays (the columns of `appendHistory`), starting at
 * parameter `$first`, plus `extra` integer arrays; `rest` follows the unnest (joins, a filter), and
 * rows keep the arrays' order, so event ids do too.
 */
function historyInsert(s: string, first: number, rest = "", extra: string[] = [], from = ""): string {
  const types = [
    "text",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "integer",
    "jsonb",
    ...extra.map(() => "integer"),
  ];
  const arrays = types.map((t, i) => `$${first + i}::${t}[]`).join(", ");
  const cols = [
    "workflow",
    "instance_id",
    "type",
    "timestamp",
    "step_kind",
    "step_name",
    "step_count",
    "data",
    ...extra,
  ];
  return `INSERT INTO ${s}.history (workflow, instance_id, type, timestamp, step_kind, step_name, step_count, data, span)
        SELECT x.workflow, x.instance_id, x.type, x.timestamp, x.step_kind, x.step_name, x.step_count, x.data,
          CASE WHEN x.type = '${PACKED_HISTORY_TYPE}' THEN jsonb_array_length(x.data) END
        FROM ${from}unnest(${arrays}) WITH ORDINALITY AS x(${cols.join(", ")}, n)
        ${rest}
        ORDER BY x.n`;
}

/**
 * The claim statement: $1 owner, $2 now, $3 lease until, $4 limit; `limit` is how many to take in all.
 */
function claimSql(s: string, limit: string, extra = ""): string {
  return `WITH orphans AS (
        SELECT workflow, id FROM ${s}.instances
        WHERE status IN ('running', 'waiting', 'waitingForPause') AND lease_until < $2 AND (owner IS NULL OR owner <> $1)
        ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED),
      ready AS (
        SELECT workflow, id, priority, ready_at FROM ${s}.instances
        WHERE ready_at IS NOT NULL AND ready_at <= $2 AND status IN ('queued', 'waiting')
          AND (lease_until IS NULL OR lease_until < $2)
        ORDER BY priority, ready_at LIMIT $4 FOR UPDATE SKIP LOCKED),
      picked AS (
        SELECT workflow, id, row_number() OVER (ORDER BY p, r) AS rank FROM (
          SELECT workflow, id, -1 AS p, 0::bigint AS r FROM orphans
          UNION ALL SELECT workflow, id, priority, ready_at FROM ready) c
        ORDER BY p, r LIMIT ${limit}),
      claimed AS (
        UPDATE ${s}.instances i
        SET status = CASE WHEN i.status = 'waitingForPause' THEN i.status ELSE 'running' END,
            epoch = i.epoch + 1, owner = $1, lease_until = $3, ready_at = NULL, updated_at = $2,
            started_at = COALESCE(i.started_at, $2)
        FROM picked WHERE i.workflow = picked.workflow AND i.id = picked.id
        RETURNING i.*, picked.rank,
          EXISTS (SELECT 1 FROM orphans o WHERE o.workflow = i.workflow AND o.id = i.id) AS taken_over)
      SELECT claimed.*${extra} FROM claimed ORDER BY rank`;
}

export function queries(schema: string) {
  const s = quoteSchema(schema);
  const claimLockKey = `cairn.claim:${schema}`;
  /** Waits for the claim lock, then counts the running instances (see migration 2). */
  const runningAfterLock = `${s}.running_after_claim_lock('${claimLockKey.replaceAll("'", "''")}')`;
  return {
    /** The advisory lock key that serialises migrations of this schema across processes. */
    migrationLockKey: `cairn.migrate:${schema}`,
    claimLockKey,
    /** The LISTEN/NOTIFY channel of this schema. */
    channel: `cairn_${schema}`,
    notify: "SELECT pg_notify($1, $2)",
    schemaExists: "SELECT 1 FROM pg_namespace WHERE nspname = $1",
    createSchema: `CREATE SCHEMA IF NOT EXISTS ${s}`,
    /** Takes the advisory lock named $1 until the transaction ends (migrations, claims). */
    advisoryLock: "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
    createMigrations: `CREATE TABLE IF NOT EXISTS ${s}.cairn_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
    schemaVersion: `SELECT COALESCE(MAX(version), 0) AS v FROM ${s}.cairn_migrations`,
    recordMigration: `INSERT INTO ${s}.cairn_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,

    insertInstance: `INSERT INTO ${s}.instances (workflow, id, status, params, created_at, updated_at, started_at,
      ready_at, priority, epoch, owner, lease_until)
      VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
    /**
     * Many `insertInstance`s: parallel arrays in its parameter order (without the repeated created_at).
     * Returns the 1-based positions of the rows inserted; of equal keys only the first can be.
     */
    insertInstances: `WITH r AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::bigint[],
          $7::bigint[], $8::integer[], $9::bigint[], $10::text[], $11::bigint[]) WITH ORDINALITY
          AS r(workflow, id, status, params, created_at, started_at, ready_at, priority, epoch, owner,
            lease_until, n)),
      ins AS (
        INSERT INTO ${s}.instances (workflow, id, status, params, created_at, updated_at, started_at, ready_at,
          priority, epoch, owner, lease_until)
        SELECT workflow, id, status, params, created_at, created_at, started_at, ready_at, priority, epoch,
          owner, lease_until FROM r ORDER BY n
        ON CONFLICT DO NOTHING RETURNING workflow, id)
      SELECT MIN(r.n) AS n FROM ins JOIN r ON r.workflow = ins.workflow AND r.id = ins.id
      GROUP BY r.workflow, r.id`,
    /**
     * `instances.create` in one statement (counting under the claim lock when $6 is set): $1 workflow, $2 id,
     * $3 params, $4 created at, $5 start it, $6 max running (NULL: no cap), $7 owner, $8 lease until,
     * $9 channel, $10 message to send when queued (or NULL), $11–$18 history arrays. Returns the
     * inserted row's status, no row when the id exists.
     */
    createInstance: `WITH go AS (
        SELECT $5::boolean AND ($6::integer IS NULL OR ${runningAfterLock} < $6::integer) AS started),
      ins AS (
        INSERT INTO ${s}.instances (workflow, id, status, params, created_at, updated_at, started_at, ready_at,
          priority, epoch, owner, lease_until)
        SELECT $1::text, $2::text, CASE WHEN started THEN 'running' ELSE 'queued' END, $3::bytea, $4::bigint,
          $4::bigint, CASE WHEN started THEN $4::bigint END, CASE WHEN started THEN NULL ELSE $4::bigint END,
          1, CASE WHEN started THEN 1 ELSE 0 END, CASE WHEN started THEN $7::text END,
          CASE WHEN started THEN $8::bigint END
        FROM go
        ON CONFLICT DO NOTHING RETURNING status),
      entries AS (
        ${historyInsert(s, 11, "WHERE EXISTS (SELECT 1 FROM ins)")}),
      note AS (
        SELECT pg_notify($9::text, $10::text) FROM ins WHERE ins.status = 'queued' AND $10::text IS NOT NULL)
      SELECT status, (SELECT COUNT(*) FROM note) AS notified FROM ins`,
    /**
     * `instances.create` of several instances (distinct ids) in one statement: $1–$7 arrays of
     * workflow, id, params, createdAt, owner, leaseUntil and the message to notify when queued; $8
     * whether to start them, $9 maxRunning (one count under the claim lock for all), $10 the channel,
     * then the history arrays with each entry's item (1-based) and place. Started are the first new
     * items that fit below maxRunning (an id another transaction inserts meanwhile takes a place
     * too, so the count never goes over).
     * Returns each new instance's item and status; an item without a row already existed.
     */
    createInstances: `WITH c AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::text[], $6::bigint[], $7::text[])
          WITH ORDINALITY AS c(workflow, id, params, created_at, owner, lease_until, notify, i)),
      free AS (
        SELECT CASE WHEN NOT $8::boolean THEN 0 WHEN $9::integer IS NULL THEN NULL
          ELSE $9::integer - ${runningAfterLock} END AS n),
      fresh AS (
        SELECT c.*, NOT EXISTS (SELECT 1 FROM ${s}.instances e WHERE e.workflow = c.workflow AND e.id = c.id) AS new
        FROM c),
      go AS (
        SELECT fresh.*, $8::boolean AND new
          AND (free.n IS NULL OR COUNT(*) FILTER (WHERE new) OVER (ORDER BY i) <= free.n) AS started
        FROM fresh, free),
      ins AS (
        INSERT INTO ${s}.instances (workflow, id, status, params, created_at, updated_at, started_at, ready_at,
          priority, epoch, owner, lease_until)
        SELECT workflow, id, CASE WHEN started THEN 'running' ELSE 'queued' END, params, created_at,
          created_at, CASE WHEN started THEN created_at END, CASE WHEN started THEN NULL ELSE created_at END,
          1, CASE WHEN started THEN 1 ELSE 0 END, CASE WHEN started THEN owner END,
          CASE WHEN started THEN lease_until END
        FROM go ORDER BY i
        ON CONFLICT DO NOTHING RETURNING workflow, id, status),
      done AS (SELECT go.i, go.notify, ins.status FROM ins JOIN go ON go.workflow = ins.workflow AND go.id = ins.id),
      entries AS (
        ${historyInsert(s, 11, "JOIN done ON done.i = x.ci", ["ci", "place"])}),
      note AS (
        SELECT pg_notify($10::text, done.notify) FROM done WHERE done.status = 'queued' AND done.notify IS NOT NULL)
      SELECT done.i, done.status, (SELECT COUNT(*) FROM note) AS notified FROM done`,
    /**
     * $1 class, $2 id, $3 owner, $4 now, $5 lease until, $6 the owner's forwarding address, $7 the
     * object's name: the epoch when taken, no row when held.
     */
    acquireObject: `INSERT INTO ${s}.do_objects AS o
        (class, object_id, owner, epoch, lease_until, owner_url, name, created_at, last_access)
      VALUES ($1, $2, $3, 1, $5, $6, $7, $4, $4)
      ON CONFLICT (class, object_id) DO UPDATE SET owner = $3, epoch = o.epoch + 1, lease_until = $5,
        owner_url = $6, name = COALESCE(o.name, $7), created_at = COALESCE(o.created_at, $4), last_access = $4
        WHERE o.owner IS NULL OR o.owner = $3 OR o.lease_until IS NULL OR o.lease_until < $4
      RETURNING epoch, alarm_at`,
    /** $1 class, $2 limit, $3 offset: the objects most recently taken first. */
    listObjects: `SELECT object_id, name, created_at, last_access, alarm_at, owner, lease_until FROM ${s}.do_objects
      WHERE class = $1 ORDER BY last_access DESC NULLS LAST, object_id LIMIT $2 OFFSET $3`,
    getObject: `SELECT object_id, name, created_at, last_access, alarm_at, owner, lease_until FROM ${s}.do_objects
      WHERE class = $1 AND object_id = $2`,
    countObjects: `SELECT class, COUNT(*)::bigint AS n FROM ${s}.do_objects WHERE class = ANY($1::text[]) GROUP BY class`,
    /** $1 classes, $2 keys proposed for those not stored yet: every class's stored key. */
    namespaceKeys: `WITH ins AS (
        INSERT INTO ${s}.do_namespaces (class, key) SELECT * FROM unnest($1::text[], $2::bytea[])
        ON CONFLICT DO NOTHING RETURNING class, key)
      SELECT class, key FROM ins
      UNION ALL SELECT class, key FROM ${s}.do_namespaces WHERE class = ANY($1::text[])`,
    objectsMigrationLockKey: `cairn.do-migrations:${schema}`,
    objectMigrations: `SELECT tag FROM ${s}.do_migrations ORDER BY seq`,
    recordObjectMigration: `INSERT INTO ${s}.do_migrations (seq, tag, applied_at)
      VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM ${s}.do_migrations), $1, $2)`,
    /** $1 from, $2 to: a renamed class keeps its objects, their logs and its namespace key (so its ids). */
    renameObjectClass: `WITH a AS (UPDATE ${s}.do_objects SET class = $2 WHERE class = $1),
      b AS (UPDATE ${s}.do_changesets SET class = $2 WHERE class = $1),
      c AS (UPDATE ${s}.do_snapshots SET class = $2 WHERE class = $1)
      UPDATE ${s}.do_namespaces SET class = $2 WHERE class = $1`,
    deleteObjectClass: `WITH a AS (DELETE FROM ${s}.do_objects WHERE class = $1),
      b AS (DELETE FROM ${s}.do_changesets WHERE class = $1),
      c AS (DELETE FROM ${s}.do_snapshots WHERE class = $1)
      DELETE FROM ${s}.do_namespaces WHERE class = $1`,
    objectHolder: `SELECT owner, lease_until, owner_url FROM ${s}.do_objects WHERE class = $1 AND object_id = $2`,
    /** The latest snapshot and the changesets after it. */
    objectLog: `SELECT seq, 'snapshot' AS kind, bytes FROM ${s}.do_snapshots WHERE class = $1 AND object_id = $2
      UNION ALL
      SELECT c.seq, 'changeset', c.bytes FROM ${s}.do_changesets c
      WHERE c.class = $1 AND c.object_id = $2
        AND c.seq > COALESCE((SELECT seq FROM ${s}.do_snapshots WHERE class = $1 AND object_id = $2), 0)
      ORDER BY 1`,
    /**
     * $1 class, $2 id, $3 owner, $4 epoch, $5 seq, $6 bytes, $7 whether to set the alarm, $8 the alarm:
     * a changeset, fenced; returns a row when written.
     */
    appendChangeset: `WITH o AS (
        UPDATE ${s}.do_objects SET seq = $5, alarm_at = CASE WHEN $7::boolean THEN $8::bigint ELSE alarm_at END
        WHERE class = $1 AND object_id = $2 AND owner = $3 AND epoch = $4 RETURNING 1)
      INSERT INTO ${s}.do_changesets (class, object_id, seq, epoch, bytes)
      SELECT $1, $2, $5, $4, $6::bytea FROM o RETURNING 1`,
    /** As `appendChangeset`, for a snapshot: it replaces the object's snapshot and changesets. */
    appendSnapshot: `WITH o AS (
        UPDATE ${s}.do_objects SET seq = $5, alarm_at = CASE WHEN $7::boolean THEN $8::bigint ELSE alarm_at END
        WHERE class = $1 AND object_id = $2 AND owner = $3 AND epoch = $4 RETURNING 1),
      gone AS (DELETE FROM ${s}.do_changesets WHERE class = $1 AND object_id = $2 AND seq <= $5
        AND EXISTS (SELECT 1 FROM o))
      INSERT INTO ${s}.do_snapshots (class, object_id, seq, bytes) SELECT $1, $2, $5, $6::bytea FROM o
      ON CONFLICT (class, object_id) DO UPDATE SET seq = EXCLUDED.seq, bytes = EXCLUDED.bytes
      RETURNING 1`,
    renewObjects: `UPDATE ${s}.do_objects SET lease_until = $2 WHERE owner = $1`,
    releaseObject: `UPDATE ${s}.do_objects SET owner = NULL, lease_until = NULL
      WHERE class = $1 AND object_id = $2 AND owner = $3 AND epoch = $4`,
    /** $1 owner, $2 now, $3 limit. */
    dueObjectAlarms: `SELECT class, object_id, alarm_at FROM ${s}.do_objects
      WHERE alarm_at IS NOT NULL AND alarm_at <= $2
        AND (owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until < $2)
      ORDER BY alarm_at LIMIT $3`,
    /** A held object's alarm counts from when its lease runs out (its owner may be gone). */
    nextObjectAlarm: `SELECT MIN(CASE WHEN owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until < $2
        THEN alarm_at ELSE GREATEST(alarm_at, lease_until + 1) END) AS t
      FROM ${s}.do_objects WHERE alarm_at IS NOT NULL`,
    getInstance: `SELECT * FROM ${s}.instances WHERE workflow = $1 AND id = $2`,
    getInstanceForUpdate: `SELECT * FROM ${s}.instances WHERE workflow = $1 AND id = $2 FOR UPDATE`,
    /** The instance with its steps, events and history, in one statement. */
    deleteInstance: `WITH st AS (DELETE FROM ${s}.steps WHERE workflow = $1 AND instance_id = $2),
      ch AS (DELETE FROM ${s}.step_chunks WHERE workflow = $1 AND instance_id = $2),
      ev AS (DELETE FROM ${s}.events WHERE workflow = $1 AND instance_id = $2),
      hi AS (DELETE FROM ${s}.history WHERE workflow = $1 AND instance_id = $2)
      DELETE FROM ${s}.instances WHERE workflow = $1 AND id = $2`,
    /** `instances.rewind` of everything: the instance's steps, events and history, in one statement. */
    rewindInstance: `WITH st AS (DELETE FROM ${s}.steps WHERE workflow = $1 AND instance_id = $2),
      ch AS (DELETE FROM ${s}.step_chunks WHERE workflow = $1 AND instance_id = $2),
      ev AS (DELETE FROM ${s}.events WHERE workflow = $1 AND instance_id = $2)
      DELETE FROM ${s}.history WHERE workflow = $1 AND instance_id = $2`,
    /**
     * `instances.rewind` from given steps, in one statement: $3 kinds, $4 names, $5 counts (parallel
     * arrays of the step keys), $6 the event id after which instance-level entries go, $7 the step
     * keys (`stepKeyString`) of the events' consumers to delete.
     */
    rewindInstanceFrom: `WITH st AS (DELETE FROM ${s}.steps WHERE workflow = $1 AND instance_id = $2
        AND (kind, name, count) IN (SELECT * FROM unnest($3::text[], $4::text[], $5::integer[]))),
      ch AS (DELETE FROM ${s}.step_chunks WHERE workflow = $1 AND instance_id = $2
        AND (kind, name, count) IN (SELECT * FROM unnest($3::text[], $4::text[], $5::integer[]))),
      ev AS (DELETE FROM ${s}.events WHERE workflow = $1 AND instance_id = $2 AND consumed_by = ANY($7::text[]))
      DELETE FROM ${s}.history WHERE workflow = $1 AND instance_id = $2 AND (
        (step_kind, step_name, step_count) IN (SELECT * FROM unnest($3::text[], $4::text[], $5::integer[]))
        OR (step_kind IS NULL AND event_id > $6))`,
    /** `$1..$n` are the patched values in `sets` order, then workflow, id and the guard's values. */
    updateInstance(sets: string[], guard: InstanceGuardShape): string {
      const assignments = sets.map((c, i) => `${c} = $${i + 1}${c === "error" ? "::jsonb" : ""}`);
      return `UPDATE ${s}.instances SET ${assignments.join(", ")} WHERE ${guardedInstance(guard, sets.length + 1)}`;
    },
    /**
     * `updateInstance` that also appends history entries when it applies, in one statement: the
     * history arrays (as `appendHistory`) start at parameter `$first`. An empty `sets` locks and
     * matches the row without changing it.
     */
    updateInstanceLogged(sets: string[], guard: InstanceGuardShape, first: number): string {
      const assignments = sets.map((c, i) => `${c} = $${i + 1}${c === "error" ? "::jsonb" : ""}`);
      const target =
        sets.length === 0
          ? `SELECT 1 FROM ${s}.instances WHERE ${guardedInstance(guard, 1)} FOR UPDATE`
          : `UPDATE ${s}.instances SET ${assignments.join(", ")} WHERE ${guardedInstance(guard, sets.length + 1)} RETURNING 1`;
      return `WITH applied AS (${target}),
        entries AS (
          ${historyInsert(s, first, "WHERE EXISTS (SELECT 1 FROM applied)")})
        SELECT 1 FROM applied`;
    },
    /**
     * Many `updateInstanceLogged`s of distinct instances with the same columns and guard shape, in
     * one statement. Parameters: $1 workflows, $2 ids, an array per column in `sets`, the guard's
     * epoch and owner arrays (those in the shape), its statuses (one array for all), then the history
     * arrays (as `appendHistory`) and the 1-based update each entry belongs to. Returns the positions
     * of the updates that applied.
     */
    updateInstancesLogged(sets: string[], guard: InstanceGuardShape): string {
      let n = 1;
      const p = () => `$${n++}`;
      const cols = ["workflow", "id", ...sets.map((c) => `v_${c}`)];
      const arrays = [`${p()}::text[]`, `${p()}::text[]`, ...sets.map((c) => `${p()}::${COLUMN_TYPES[c]}[]`)];
      const where = ["t.workflow = v.workflow", "t.id = v.id"];
      if (guard.epoch) {
        cols.push("g_epoch");
        arrays.push(`${p()}::bigint[]`);
        where.push("t.epoch = v.g_epoch");
      }
      if (guard.owner) {
        cols.push("g_owner");
        arrays.push(`${p()}::text[]`);
        where.push("t.owner = v.g_owner");
      }
      if (guard.statuses) where.push(`t.status = ANY(${p()}::text[])`);
      return `WITH v AS (
          SELECT * FROM unnest(${arrays.join(", ")}) WITH ORDINALITY AS v(${cols.join(", ")}, i)),
        locked AS (
          SELECT v.* FROM ${s}.instances t JOIN v ON ${where.join(" AND ")}
          ORDER BY t.workflow, t.id FOR UPDATE OF t),
        applied AS (
          UPDATE ${s}.instances t SET ${sets.map((c) => `${c} = v.v_${c}`).join(", ")} FROM locked v
          WHERE ${where.join(" AND ")} RETURNING v.i),
        entries AS (
          ${historyInsert(s, n, "JOIN applied ON applied.i = x.ci", ["ci"])})
        SELECT i FROM applied`;
    },
    /** Whether the instance exists and matches the guard: what an update with an empty patch reports. */
    matchInstance(guard: InstanceGuardShape): string {
      return `SELECT 1 FROM ${s}.instances WHERE ${guardedInstance(guard, 1)}`;
    },
    /** Parameters in order: workflow, then status, from, to, search, cursor pair (those present), limit. */
    listInstances(o: {
      status: boolean;
      after: boolean;
      desc: boolean;
      from: boolean;
      to: boolean;
      search: boolean;
    }): string {
      let n = 1;
      const where = [`workflow = $${n++}`];
      if (o.status) where.push(`status = $${n++}`);
      if (o.from) where.push(`created_at >= $${n++}`);
      if (o.to) where.push(`created_at <= $${n++}`);
      if (o.search) where.push(`strpos(id, $${n++}) > 0`);
      if (o.after) where.push(`(created_at, id) ${o.desc ? "<" : ">"} ($${n++}, $${n++})`);
      const dir = o.desc ? "DESC" : "ASC";
      return `SELECT * FROM ${s}.instances WHERE ${where.join(" AND ")}
        ORDER BY created_at ${dir}, id ${dir} LIMIT $${n}`;
    },
    countByStatus: `SELECT workflow, status, COUNT(*) AS count FROM ${s}.instances GROUP BY workflow, status`,
    countByStatusFor: `SELECT workflow, status, COUNT(*) AS count FROM ${s}.instances WHERE workflow = $1
      GROUP BY workflow, status`,
    /**
     * $1 owner, $2 now, $3 lease until, $4 limit. Candidates are locked with SKIP LOCKED, so concurrent
     * claimers pass over each other's rows instead of waiting or taking them twice; a row another claimer
     * changed after this statement's snapshot is re-checked against the conditions when locked.
     * Instances of dead workers come first, then ready ones by priority and readyAt; rows come back in
     * that order.
     */
    claim: claimSql(s, "$4"),
    /**
     * `claim` taking at most $5 (maxRunning) minus the instances running on every worker, counted
     * under the claim lock (held until the statement's transaction ends).
     */
    claimLimited: claimSql(
      s,
      `LEAST($4, GREATEST(0, $5 - ${runningAfterLock}))`,
      // Its commit need not wait for the WAL flush: a claim lost in a server crash only returns the
      // instances to the queue, and any later durable write of the claimer flushes it first.
      ", (SELECT set_config('synchronous_commit', 'off', true)) AS async",
    ),
    /** The status IN (…) term matches the partial index instances_ready_at. */
    countDue: `SELECT COUNT(*) AS n FROM ${s}.instances
      WHERE ready_at IS NOT NULL AND ready_at <= $1 AND status IN ('queued', 'waiting') AND status = 'waiting'`,
    expireLeases: `UPDATE ${s}.instances SET lease_until = 0 WHERE lease_until IS NOT NULL`,
    nextReadyAt: `SELECT MIN(ready_at) AS t FROM ${s}.instances
      WHERE ready_at IS NOT NULL AND status IN ('queued', 'waiting')`,
    /** Locks its rows in key order first, like every statement that locks several instances. */
    renewLeases: `WITH owned AS (
        SELECT workflow, id FROM ${s}.instances
        WHERE owner = $2 AND status IN ('running', 'waiting', 'waitingForPause')
        ORDER BY workflow, id FOR UPDATE)
      UPDATE ${s}.instances i SET lease_until = $1 FROM owned
      WHERE i.workflow = owned.workflow AND i.id = owned.id`,
    countRunning: `SELECT COUNT(*) AS n FROM ${s}.instances WHERE status IN ('running', 'waitingForPause')`,

    listSteps: `SELECT * FROM ${s}.steps WHERE workflow = $1 AND instance_id = $2
      ORDER BY seq, started_at, kind, name, count`,
    /** `listSteps` of many instances: $1 workflows, $2 ids; rows grouped by instance, each in order. */
    listStepsOf: `SELECT st.* FROM unnest($1::text[], $2::text[]) AS k(workflow, instance_id)
      JOIN ${s}.steps st ON st.workflow = k.workflow AND st.instance_id = k.instance_id
      ORDER BY st.workflow, st.instance_id, st.seq, st.started_at, st.kind, st.name, st.count`,
    getStep: `SELECT * FROM ${s}.steps
      WHERE workflow = $1 AND instance_id = $2 AND kind = $3 AND name = $4 AND count = $5`,
    getChunk: `SELECT bytes FROM ${s}.step_chunks
      WHERE workflow = $1 AND instance_id = $2 AND kind = $3 AND name = $4 AND count = $5 AND idx = $6`,
    deleteStepChunks: `DELETE FROM ${s}.step_chunks
      WHERE workflow = $1 AND instance_id = $2 AND kind = $3 AND name = $4 AND count = $5`,
    /**
     * `n` chunk rows of one step: $1–$5 the step's key (workflow, instance, kind, name, count), then
     * each chunk's index and bytes (sent as binary parameters, not an array's hex text).
     */
    insertChunks(n: number): string {
      const rows = Array.from({ length: n }, (_, i) => `($${6 + 2 * i}::integer, $${7 + 2 * i}::bytea)`);
      return `INSERT INTO ${s}.step_chunks (workflow, instance_id, kind, name, count, idx, bytes)
        SELECT $1::text, $2::text, $3::text, $4::text, $5::integer, v.idx, v.bytes FROM (VALUES ${rows.join(", ")}) AS v(idx, bytes)`;
    },
    /**
     * `steps.commit` in one statement. $1 workflow, $2 id, $3 epoch, $4 status, $5 now; $6–$18 the
     * step row (as in `commitStep`); $19–$26 history arrays (as `appendHistory`) where entries
     * after the first $27 are the status entry, kept only when the status changes; $28 `rollback_config`. The fence locks the
     * row, so a concurrent claim is ordered before (fenced) or after (sees the step) this commit.
     */
    commitStep: `WITH inst AS (
        SELECT workflow, id, status FROM ${s}.instances
        WHERE workflow = $1::text AND id = $2::text AND epoch = $3::bigint
          AND status IN ('running', 'waiting', 'waitingForPause')
        FOR UPDATE),
      changed AS (
        UPDATE ${s}.instances i SET status = $4::text, updated_at = $5::bigint FROM inst
        WHERE i.workflow = inst.workflow AND i.id = inst.id
          AND inst.status <> 'waitingForPause' AND inst.status <> $4::text
        RETURNING 1),
      step AS (
        INSERT INTO ${s}.steps (workflow, instance_id, kind, name, count, seq, status, config, attempts,
          result, error, started_at, ended_at, wake_at, event_type, has_rollback, rollback_config)
        SELECT inst.workflow, inst.id, $6::text, $7::text, $8::integer, $9::integer, $10::text, $11::jsonb,
          $12::integer, $13::bytea, $14::jsonb, $15::bigint, $16::bigint, $17::bigint, $18::text,
          $28::jsonb IS NOT NULL, $28::jsonb FROM inst
        ON CONFLICT (workflow, instance_id, kind, name, count) DO UPDATE SET seq = EXCLUDED.seq,
          status = EXCLUDED.status, config = EXCLUDED.config, attempts = EXCLUDED.attempts,
          result = EXCLUDED.result, error = EXCLUDED.error, started_at = EXCLUDED.started_at,
          ended_at = EXCLUDED.ended_at, wake_at = EXCLUDED.wake_at, event_type = EXCLUDED.event_type,
          has_rollback = EXCLUDED.has_rollback, rollback_config = EXCLUDED.rollback_config),
      entries AS (
        ${historyInsert(s, 19, "WHERE x.n <= $27::integer OR EXISTS (SELECT 1 FROM changed)", [], "inst, ")})
      SELECT status FROM inst`,
    /**
     * Many `steps.commit`s of different instances in one statement, each fenced on its own. Arrays
     * with one element per commit: $1 workflow, $2 id, $3 epoch, $4 status, $5 now, $6–$18 the step
     * columns (as in `commitStep`), $19 how many of the commit's history entries are not its
     * status entry. History arrays $20–$27 (as `appendHistory`) with $28 the commit each entry belongs
     * to (1-based) and $29 its place in it; $30 the steps' `rollback_config`. Returns each commit's index with the instance's status
     * before it, or NULL when fenced. Rows are locked in key order, as in every statement that locks
     * several instances, so such statements never deadlock each other.
     */
    commitSteps: `WITH c AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[],
          $7::text[], $8::integer[], $9::integer[], $10::text[], $11::jsonb[], $12::integer[], $13::bytea[],
          $14::jsonb[], $15::bigint[], $16::bigint[], $17::bigint[], $18::text[], $19::integer[], $30::jsonb[])
          WITH ORDINALITY AS c(workflow, id, epoch, status, now, kind, name, count, seq, step_status, config,
            attempts, result, error, started_at, ended_at, wake_at, event_type, plain, rollback_config, i)),
      inst AS (
        SELECT c.i, i.workflow, i.id, i.status FROM ${s}.instances i
        JOIN c ON i.workflow = c.workflow AND i.id = c.id AND i.epoch = c.epoch
        WHERE i.status IN ('running', 'waiting', 'waitingForPause')
        ORDER BY i.workflow, i.id FOR UPDATE OF i),
      changed AS (
        UPDATE ${s}.instances i SET status = c.status, updated_at = c.now FROM inst JOIN c ON c.i = inst.i
        WHERE i.workflow = inst.workflow AND i.id = inst.id
          AND inst.status <> 'waitingForPause' AND inst.status <> c.status
        RETURNING inst.i),
      step AS (
        INSERT INTO ${s}.steps (workflow, instance_id, kind, name, count, seq, status, config, attempts,
          result, error, started_at, ended_at, wake_at, event_type, has_rollback, rollback_config)
        SELECT c.workflow, c.id, c.kind, c.name, c.count, c.seq, c.step_status, c.config, c.attempts,
          c.result, c.error, c.started_at, c.ended_at, c.wake_at, c.event_type,
          c.rollback_config IS NOT NULL, c.rollback_config
        FROM c JOIN inst ON inst.i = c.i
        ON CONFLICT (workflow, instance_id, kind, name, count) DO UPDATE SET seq = EXCLUDED.seq,
          status = EXCLUDED.status, config = EXCLUDED.config, attempts = EXCLUDED.attempts,
          result = EXCLUDED.result, error = EXCLUDED.error, started_at = EXCLUDED.started_at,
          ended_at = EXCLUDED.ended_at, wake_at = EXCLUDED.wake_at, event_type = EXCLUDED.event_type,
          has_rollback = EXCLUDED.has_rollback, rollback_config = EXCLUDED.rollback_config),
      entries AS (
        ${historyInsert(
          s,
          20,
          `JOIN c ON c.i = x.ci JOIN inst ON inst.i = x.ci
        WHERE x.place <= c.plain OR EXISTS (SELECT 1 FROM changed WHERE changed.i = x.ci)`,
          ["ci", "place"],
        )})
      SELECT c.i, inst.status FROM c LEFT JOIN inst ON inst.i = c.i ORDER BY c.i`,
    shiftWakeTimes: `UPDATE ${s}.steps SET wake_at = wake_at + $1 WHERE workflow = $2 AND instance_id = $3
      AND wake_at IS NOT NULL AND status IN ('sleeping', 'retrying', 'waiting')`,
    hasWaiter: `SELECT 1 FROM ${s}.steps WHERE workflow = $1 AND instance_id = $2 AND kind = 'waitForEvent'
      AND status = 'waiting' AND event_type = $3 LIMIT 1`,

    insertEvent: `INSERT INTO ${s}.events (workflow, instance_id, type, payload, timestamp)
      VALUES ($1, $2, $3, $4, $5) RETURNING seq`,
    listEvents: `SELECT * FROM ${s}.events WHERE workflow = $1 AND instance_id = $2 ORDER BY seq`,
    /** `listEvents` of many instances: $1 workflows, $2 ids. */
    listEventsOf: `SELECT e.* FROM unnest($1::text[], $2::text[]) AS k(workflow, instance_id)
      JOIN ${s}.events e ON e.workflow = k.workflow AND e.instance_id = k.instance_id ORDER BY e.seq`,
    /** $1 step key, then workflow, instance, type. Concurrent consumers never get the same event. */
    consumeEvent: `WITH oldest AS (
        SELECT seq FROM ${s}.events
        WHERE workflow = $2 AND instance_id = $3 AND type = $4 AND consumed_by IS NULL
        ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
      UPDATE ${s}.events e SET consumed_by = $1 FROM oldest WHERE e.seq = oldest.seq RETURNING e.*`,

    /** Parallel arrays, one element per entry; ids are assigned in array order. */
    appendHistory: historyInsert(s, 1),
    /** $3 after event id, $4 limit (NULL for all). */
    /**
     * `history.metrics`: $2–$3 the time range, $4 the limit. A packed row (stamped with its latest
     * entry's time) is read when its entries' times span part of the range; its entries are filtered
     * by time when expanded.
     */
    metricsHistory: `SELECT type, instance_id, step_name, timestamp, span,
      CASE WHEN span IS NULL THEN (data->>'cpuTimeMs')::double precision END AS cpu,
      CASE WHEN span IS NULL THEN (data->>'wallTimeMs')::double precision END AS wall,
      CASE WHEN span IS NOT NULL THEN data END AS packed
      FROM ${s}.history WHERE workflow = $1 AND timestamp >= $2 AND (timestamp <= $3 OR (span IS NOT NULL
        AND (SELECT min((e->>1)::bigint) FROM jsonb_array_elements(data) e) <= $3))
      ORDER BY event_id LIMIT $4`,
    listHistory: `SELECT * FROM ${s}.history WHERE workflow = $1 AND instance_id = $2 AND event_id > $3
      ORDER BY event_id LIMIT $4`,

    listSchedules: `SELECT * FROM ${s}.schedules ORDER BY kind, name, cron`,
    /**
     * $1 kind, $2 name, $3 cron, $4 the slot to move to, $5 now. Inserts the row, or moves `last_at`
     * forward; a concurrent call waits for the row's lock and then sees the moved value, so of calls
     * for one slot exactly one changes a row.
     */
    advanceSchedule: `INSERT INTO ${s}.schedules (kind, name, cron, last_at, updated_at) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (kind, name, cron) DO UPDATE SET last_at = excluded.last_at, updated_at = excluded.updated_at
      WHERE ${s}.schedules.last_at < excluded.last_at`,
  } as const;
}

export type Queries = ReturnType<typeof queries>;
