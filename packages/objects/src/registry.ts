import { randomBytes } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { sqlite } from "./node-sqlite.ts";

/** One object the host has seen: what the Objects page and `cairn objects list` show. */
export interface ObjectRecord {
  className: string;
  /** 64 hex digits. */
  id: string;
  /** The name it was first reached by (`idFromName`/`getByName`), if any. */
  name: string | null;
  createdAt: number;
  lastAccess: number;
  /** When its alarm is due (ms since the epoch), or null. */
  alarm: number | null;
  /** Failed runs of the current alarm so far. */
  alarmRetries: number;
}

/** A due alarm. */
export interface DueAlarm {
  className: string;
  id: string;
  time: number;
  retries: number;
}

/**
 * The host's own small SQLite database (`<dir>/objects.db`): applied migrations (`do_migrations`),
 * each namespace's id key (`do_namespaces`), and one row per object with its name, last access and
 * alarm (`do_objects`), so alarms fire after a restart without opening every object's file.
 */
export class Registry {
  readonly #db: DatabaseSync;
  readonly #s: Record<string, StatementSync>;

  constructor(path: string, synchronous: "FULL" | "NORMAL" = "FULL") {
    this.#db = new (sqlite().DatabaseSync)(path);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = ${synchronous};
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS do_migrations (tag TEXT PRIMARY KEY, seq INTEGER NOT NULL, applied_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS do_namespaces (class TEXT PRIMARY KEY, key BLOB NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS do_objects (
        class TEXT NOT NULL, id TEXT NOT NULL, name TEXT, created_at INTEGER NOT NULL,
        last_access INTEGER NOT NULL, alarm_at INTEGER, alarm_retries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (class, id)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS do_objects_alarm ON do_objects (alarm_at) WHERE alarm_at IS NOT NULL;
    `);
    const p = (sql: string) => this.#db.prepare(sql);
    this.#s = {
      getKey: p("SELECT key FROM do_namespaces WHERE class = ?"),
      putKey: p("INSERT OR IGNORE INTO do_namespaces (class, key, created_at) VALUES (?, ?, ?)"),
      touch: p(
        `INSERT INTO do_objects (class, id, name, created_at, last_access) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (class, id) DO UPDATE SET last_access = excluded.last_access,
           name = coalesce(do_objects.name, excluded.name)`,
      ),
      getAlarm: p("SELECT alarm_at, alarm_retries FROM do_objects WHERE class = ? AND id = ?"),
      setAlarm: p(
        `INSERT INTO do_objects (class, id, created_at, last_access, alarm_at, alarm_retries) VALUES (?, ?, ?, ?, ?, 0)
         ON CONFLICT (class, id) DO UPDATE SET alarm_at = excluded.alarm_at, alarm_retries = 0`,
      ),
      retryAlarm: p("UPDATE do_objects SET alarm_at = ?, alarm_retries = ? WHERE class = ? AND id = ?"),
      clearAlarm: p("UPDATE do_objects SET alarm_at = NULL, alarm_retries = 0 WHERE class = ? AND id = ?"),
      clearAlarmIf: p(
        "UPDATE do_objects SET alarm_at = NULL, alarm_retries = 0 WHERE class = ? AND id = ? AND alarm_at = ?",
      ),
      nextAlarm: p("SELECT min(alarm_at) AS t FROM do_objects WHERE alarm_at IS NOT NULL"),
      dueAlarms: p(
        "SELECT class, id, alarm_at, alarm_retries FROM do_objects WHERE alarm_at IS NOT NULL AND alarm_at <= ? ORDER BY alarm_at LIMIT 1000",
      ),
      applied: p("SELECT tag FROM do_migrations ORDER BY seq"),
      addMigration: p("INSERT INTO do_migrations (tag, seq, applied_at) VALUES (?, ?, ?)"),
    };
  }

  /** The namespace's id key, made on first use. */
  namespaceKey(className: string, now: number): Uint8Array {
    const row = this.#s.getKey!.get(className) as { key: Uint8Array } | undefined;
    if (row) return row.key;
    this.#s.putKey!.run(className, randomBytes(32), now);
    return (this.#s.getKey!.get(className) as { key: Uint8Array }).key;
  }

  #touches = new Map<string, [string, string, string | null, number]>();

  /**
   * Records an access (creating the row the first time). Accesses are written together at the end
   * of the turn (one transaction), so loading many objects at once costs one commit.
   */
  touch(className: string, id: string, name: string | undefined, now: number): void {
    if (this.#touches.size === 0) setImmediate(() => this.flushTouches());
    const key = `${className}/${id}`;
    const prev = this.#touches.get(key);
    this.#touches.set(key, [className, id, name ?? prev?.[2] ?? null, now]);
  }

  /** Writes the pending accesses now. */
  flushTouches(): void {
    if (this.#touches.size === 0 || !this.#db.isOpen) return;
    const rows = [...this.#touches.values()];
    this.#touches.clear();
    this.#db.exec("BEGIN");
    try {
      for (const [c, id, name, now] of rows) this.#s.touch!.run(c, id, name, now, now);
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }

  getAlarm(className: string, id: string): { time: number; retries: number } | null {
    const row = this.#s.getAlarm!.get(className, id) as
      | { alarm_at: number | null; alarm_retries: number }
      | undefined;
    return row && row.alarm_at !== null
      ? { time: Number(row.alarm_at), retries: Number(row.alarm_retries) }
      : null;
  }

  setAlarm(className: string, id: string, time: number, now: number): void {
    this.#s.setAlarm!.run(className, id, now, now, time);
  }

  retryAlarm(className: string, id: string, time: number, retries: number): void {
    this.#s.retryAlarm!.run(time, retries, className, id);
  }

  clearAlarm(className: string, id: string, ifTime?: number): void {
    if (ifTime === undefined) this.#s.clearAlarm!.run(className, id);
    else this.#s.clearAlarmIf!.run(className, id, ifTime);
  }

  nextAlarm(): number | null {
    const row = this.#s.nextAlarm!.get() as { t: number | null };
    return row.t === null ? null : Number(row.t);
  }

  dueAlarms(now: number): DueAlarm[] {
    return (
      this.#s.dueAlarms!.all(now) as { class: string; id: string; alarm_at: number; alarm_retries: number }[]
    ).map((r) => ({
      className: r.class,
      id: r.id,
      time: Number(r.alarm_at),
      retries: Number(r.alarm_retries),
    }));
  }

  appliedMigrations(): string[] {
    return (this.#s.applied!.all() as { tag: string }[]).map((r) => r.tag);
  }

  /** Runs `fn` and records the migration `tag` in one transaction. */
  applyMigration(tag: string, now: number, fn: () => void): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      const seq = this.appliedMigrations().length + 1;
      this.#s.addMigration!.run(tag, seq, now);
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }

  /** A class renamed by a migration keeps its key and objects. */
  renameClass(from: string, to: string): void {
    this.#db.prepare("UPDATE do_namespaces SET class = ? WHERE class = ?").run(to, from);
    this.#db.prepare("UPDATE do_objects SET class = ? WHERE class = ?").run(to, from);
  }

  /** A class deleted by a migration loses its key and objects. */
  deleteClass(className: string): void {
    this.#db.prepare("DELETE FROM do_namespaces WHERE class = ?").run(className);
    this.#db.prepare("DELETE FROM do_objects WHERE class = ?").run(className);
  }

  /** Objects of a class, most recently used first. */
  list(className: string, options: { limit?: number; offset?: number } = {}): ObjectRecord[] {
    this.flushTouches();
    const rows = this.#db
      .prepare("SELECT * FROM do_objects WHERE class = ? ORDER BY last_access DESC, id LIMIT ? OFFSET ?")
      .all(className, options.limit ?? 100, options.offset ?? 0) as Record<string, any>[];
    return rows.map(toRecord);
  }

  count(className: string): number {
    this.flushTouches();
    return Number(
      (
        this.#db.prepare("SELECT count(*) AS n FROM do_objects WHERE class = ?").get(className) as {
          n: number;
        }
      ).n,
    );
  }

  get(className: string, id: string): ObjectRecord | undefined {
    this.flushTouches();
    const row = this.#db.prepare("SELECT * FROM do_objects WHERE class = ? AND id = ?").get(className, id) as
      | Record<string, any>
      | undefined;
    return row ? toRecord(row) : undefined;
  }

  close(): void {
    this.flushTouches();
    this.#db.close();
  }
}

function toRecord(r: Record<string, any>): ObjectRecord {
  return {
    className: r.class,
    id: r.id,
    name: r.name ?? null,
    createdAt: Number(r.created_at),
    lastAccess: Number(r.last_access),
    alarm: r.alarm_at === null ? null : Number(r.alarm_at),
    alarmRetries: Number(r.alarm_retries),
  };
}
