/**
 * Test-side helpers for the scale-out tests: a fresh PostgreSQL schema per test (dropped at the end),
 * worker processes (`worker.ts`) that synchronise on JSON lines, the side files of step callback
 * executions, and direct SQL reads of what is committed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type { CallRecord, ScaleWorkerConfig } from "./worker.ts";

export type { CallRecord };

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
/** Node 24 from the repository's devDependencies (the system node may be older). */
const NODE = join(root, "node_modules/.bin/node");
const WORKER = join(here, "worker.ts");

/**
 * The server to test against, from `CAIRN_TEST_POSTGRES_URL`. Without one the suite is skipped with a
 * printed reason, unless `CAIRN_REQUIRE_POSTGRES=1`, where a missing server is a failure.
 */
export function postgresUrl(what: string): string | undefined {
  const url = process.env.CAIRN_TEST_POSTGRES_URL;
  if (url) return url;
  const reason = "CAIRN_TEST_POSTGRES_URL is not set";
  if (process.env.CAIRN_REQUIRE_POSTGRES === "1")
    throw new Error(`${reason}, and CAIRN_REQUIRE_POSTGRES=1 requires the PostgreSQL tests to run`);
  console.warn(`Skipping ${what}: ${reason}`);
  return undefined;
}

export type WorkerEvent = Record<string, any> & { event: string };

/** One test's world: a schema, a temp dir for side files, the workers started in it. */
export class Scene {
  readonly schema = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  readonly dir = mkdtempSync(join(tmpdir(), "cairn-scale-"));
  readonly workers: Worker[] = [];
  readonly #base: string;
  #db?: pg.Pool;

  constructor(base: string) {
    this.#base = base;
  }

  /** The `postgres://…?schema=…` URL of this test's schema. */
  get url(): string {
    const u = new URL(this.#base);
    u.searchParams.set("schema", this.schema);
    return u.toString();
  }

  /** A pool of the test's own (not Cairn's), for reading what is committed. */
  get db(): pg.Pool {
    if (!this.#db) {
      this.#db = new pg.Pool({ connectionString: this.#base, max: 3 });
      this.#db.on("error", () => {});
    }
    return this.#db;
  }

  async query<R = Record<string, any>>(text: string, values?: unknown[]): Promise<R[]> {
    return (await this.db.query(text.replaceAll("$S", `"${this.schema}"`), values)).rows as R[];
  }

  async start(name: string, config: Partial<ScaleWorkerConfig> = {}): Promise<Worker> {
    const w = new Worker({ url: this.url, name, callsPath: join(this.dir, `${name}.calls`), ...config });
    this.workers.push(w);
    await w.waitFor((e) => e.event === "ready", { what: `${name} ready`, timeoutMs: 30_000 });
    return w;
  }

  /** Every step callback execution recorded by every worker. */
  calls(): CallRecord[] {
    const out: CallRecord[] = [];
    for (const f of readdirSync(this.dir))
      if (f.endsWith(".calls"))
        for (const line of readFileSync(join(this.dir, f), "utf8").split("\n"))
          if (line.trim()) out.push(JSON.parse(line) as CallRecord);
    return out;
  }

  /** Counts of instances by status. */
  async statuses(): Promise<Record<string, number>> {
    const rows = await this.query<{ status: string; n: string }>(
      "SELECT status, COUNT(*) AS n FROM $S.instances GROUP BY status",
    );
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  /** Polls until `total` instances are final (complete/errored/terminated); returns the counts. */
  async waitAllFinal(total: number, timeoutMs = 60_000): Promise<Record<string, number>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.statuses();
      const final = (s.complete ?? 0) + (s.errored ?? 0) + (s.terminated ?? 0);
      if (final >= total) return s;
      if (Date.now() > deadline) {
        const sessions = await this.query(
          "SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS xact_age, left(query, 120) AS query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ).catch((e: Error) => e.message);
        throw new Error(
          `timed out: ${final}/${total} final, ${JSON.stringify(s)}\nsessions: ${JSON.stringify(sessions)}\n${this.workers.map((w) => `${w.config.name}: ${w.stderr.slice(-2000)} ${JSON.stringify(w.events.filter((e) => e.event !== "ok").slice(-3))}`).join("\n")}`,
        );
      }
      await sleep(100);
    }
  }

  /** SIGKILLs every worker, drops the schema and the temp dir. */
  async dispose(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.kill()));
    try {
      await this.db.query(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
    } finally {
      await this.#db?.end();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One worker process. */
export class Worker {
  readonly events: WorkerEvent[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  #stderr = "";
  #buffer = "";
  #notify = new Set<() => void>();
  #tags = 0;
  #dead = false;

  constructor(readonly config: ScaleWorkerConfig) {
    this.child = spawn(
      NODE,
      ["--conditions=source", "--disable-warning=ExperimentalWarning", WORKER, JSON.stringify(config)],
      { cwd: root, stdio: ["pipe", "pipe", "pipe"] },
    );
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (chunk: string) => {
      this.#buffer += chunk;
      let nl = this.#buffer.indexOf("\n");
      while (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        if (line.trim()) {
          try {
            this.events.push(JSON.parse(line) as WorkerEvent);
          } catch {
            this.events.push({ event: "unparsed", line });
          }
        }
        nl = this.#buffer.indexOf("\n");
      }
      for (const n of this.#notify) n();
    });
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (chunk: string) => (this.#stderr += chunk));
    this.child.stdin!.on("error", () => {});
    this.exited = new Promise((r) =>
      this.child.once("exit", () => {
        this.#dead = true;
        for (const n of this.#notify) n();
        r();
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Engine errors the worker reported (`log` of createCairn). */
  get engineLogs(): WorkerEvent[] {
    return this.events.filter((e) => e.event === "engine-log");
  }

  /** The first event (from index `from` on) that matches; fails if the worker dies first or on `fatal`. */
  async waitFor(
    match: (e: WorkerEvent) => boolean,
    options: { from?: number; timeoutMs?: number; what?: string } = {},
  ): Promise<WorkerEvent> {
    const { from = 0, timeoutMs = 15_000, what = String(match) } = options;
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.events.length; i++) {
        const e = this.events[i]!;
        if (match(e)) return e;
        if (e.event === "fatal") throw new Error(`worker reported ${JSON.stringify(e)}`);
      }
      if (this.#dead)
        throw new Error(`${this.config.name} exited while waiting for ${what}\n${this.#stderr}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${what}; last events: ${JSON.stringify(this.events.slice(-5))}`,
        );
      await new Promise<void>((r) => {
        const done = () => {
          this.#notify.delete(done);
          clearTimeout(t);
          r();
        };
        const t = setTimeout(done, left);
        this.#notify.add(done);
      });
    }
  }

  /** Sends a command and waits for its answer; throws the worker's error. */
  async request(command: Record<string, unknown>, timeoutMs?: number): Promise<WorkerEvent> {
    const tag = `t${++this.#tags}`;
    const from = this.events.length;
    this.child.stdin!.write(`${JSON.stringify({ ...command, tag })}\n`);
    const answer = await this.waitFor((e) => e.tag === tag && (e.event === "ok" || e.event === "error"), {
      from,
      ...(timeoutMs ? { timeoutMs } : {}),
      what: `answer to ${JSON.stringify(command).slice(0, 200)}`,
    });
    if (answer.event === "error") throw new Error(`${this.config.name}: ${answer.message}`);
    return answer;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.#dead) this.child.kill(signal);
  }

  /** SIGKILL (SIGCONT first, in case it is stopped), and wait until the process is gone. */
  async kill(): Promise<void> {
    if (!this.#dead) {
      this.child.kill("SIGKILL");
      this.child.kill("SIGCONT");
    }
    await this.exited;
  }
}

/** The stored step rows: `instance/name` → result bytes and times. */
export async function storedSteps(
  scene: Scene,
): Promise<
  Map<string, { status: string; result: Buffer | null; startedAt: number; endedAt: number | null }>
> {
  const rows = await scene.query<Record<string, any>>(
    "SELECT instance_id, name, status, result, started_at, ended_at FROM $S.steps WHERE kind = 'do'",
  );
  return new Map(
    rows.map((r) => [
      `${r.instance_id}/${r.name}`,
      {
        status: r.status,
        result: r.result,
        startedAt: Number(r.started_at),
        endedAt: r.ended_at === null ? null : Number(r.ended_at),
      },
    ]),
  );
}

export const exists = existsSync;
