/**
 * The PostgreSQL section of `npm run bench`: the SQLite bench's main workloads on a PostgreSQL server
 * (`CAIRN_BENCH_POSTGRES_URL`, else `CAIRN_TEST_POSTGRES_URL`, else postgres://postgres@127.0.0.1:5432/test),
 * each on a fresh schema that is dropped afterwards. Skipped with a printed line when no server answers.
 *
 * - raw commit rate: one connection, `BEGIN; INSERT; COMMIT` in a loop (the limit for one writer);
 * - burst: 1,000 3-step instances created with `createBatch` (chunks of 100) by an API-only process,
 *   run by 1, 2 and 4 worker processes; from the first create until the store shows all complete;
 *   the median of three such bursts after a warm-up;
 * - unloaded create→complete latency and event round trip, with one worker in this process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createCairn } from "cairnjs";
import pg from "pg";
import { round, roundSummary, summarize } from "../lib/stats.ts";
import { AwaitEvent, ThreeSteps } from "../lib/workflows.ts";

export interface PostgresBenchResult {
  server: string;
  rawCommitsPerSecond: number;
  /** Per worker count: the median of the measured rounds, and each round's rate. */
  burst: { workers: number; instances: number; ms: number; perSecond: number; rounds: number[] }[];
  latency: ReturnType<typeof roundSummary>;
  event: ReturnType<typeof roundSummary>;
  seconds: number;
}

const ROOT = join(import.meta.dirname, "..", "..");
const NODE = process.execPath;

export function postgresBenchUrl(): string {
  return (
    process.env.CAIRN_BENCH_POSTGRES_URL ??
    process.env.CAIRN_TEST_POSTGRES_URL ??
    "postgres://postgres@127.0.0.1:5432/test"
  );
}

const withSchema = (base: string, schema: string) => {
  const u = new URL(base);
  u.searchParams.set("schema", schema);
  return u.toString();
};

async function admin(base: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: base, connectionTimeoutMillis: 3000 });
  await c.connect();
  return c;
}

/** Whether a server answers at `base`; the reason when not. */
export async function reachable(base: string): Promise<string | undefined> {
  try {
    const c = await admin(base);
    await c.end();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

export async function rawCommitRate(base: string, seconds: number): Promise<number> {
  const c = await admin(base);
  const table = `cairn_bench_raw_${process.pid}`;
  try {
    await c.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, v bytea NOT NULL)`);
    const v = Buffer.alloc(64);
    const start = performance.now();
    const end = start + seconds * 1000;
    let n = 0;
    let now = start;
    while (now < end) {
      await c.query("BEGIN");
      await c.query(`INSERT INTO ${table} (v) VALUES ($1)`, [v]);
      await c.query("COMMIT");
      n++;
      now = performance.now();
    }
    return n / ((now - start) / 1000);
  } finally {
    await c.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await c.end();
  }
}

function startWorker(url: string): Promise<ChildProcess> {
  const child = spawn(
    NODE,
    [
      "--disable-warning=ExperimentalWarning",
      join(import.meta.dirname, "worker.ts"),
      JSON.stringify({ url }),
    ],
    { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] },
  );
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bench worker exited with ${code}`)));
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      if (d.includes('"ready"')) resolve(child);
    });
  });
}

async function stopWorker(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once("exit", r));
  child.stdin!.end();
  const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(t);
}

/**
 * Bursts of `n` instances on `workers` worker processes, one after another on the same schema: a
 * warm-up of `n / 5`, then `rounds` measured ones; the figure is the median round (single bursts
 * of under a second vary by ±15% on a shared 2-core machine).
 */
export async function burst(
  base: string,
  workers: number,
  n: number,
  rounds: number,
): Promise<{ ms: number; perSecond: number; rounds: number[] }> {
  const schema = `bench_${process.pid}_${workers}_${Date.now()}`;
  const url = withSchema(base, schema);
  const db = await admin(base);
  const api = await createCairn({
    store: url,
    worker: false,
    workflows: [{ binding: "W", name: "three-steps", class: ThreeSteps }],
  });
  const children = await Promise.all(Array.from({ length: workers }, () => startWorker(url)));
  let done = 0;
  const oneBurst = async (size: number, prefix: string): Promise<number> => {
    const ids = Array.from({ length: size }, (_, i) => `${prefix}${i}`);
    const start = performance.now();
    const chunks: Promise<string[]>[] = [];
    for (let i = 0; i < size; i += 100)
      chunks.push(
        api.runtime.createBatch(
          "three-steps",
          ids.slice(i, i + 100).map((id) => ({ id })),
        ),
      );
    await Promise.all(chunks);
    done += size;
    for (;;) {
      const r = await db.query(`SELECT COUNT(*) AS n FROM "${schema}".instances WHERE status = 'complete'`);
      if (Number(r.rows[0].n) >= done) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    return performance.now() - start;
  };
  try {
    await oneBurst(Math.ceil(n / 5), "w");
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) times.push(await oneBurst(n, `r${r}-`));
    const ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    return {
      ms: round1(ms),
      perSecond: round1((n / ms) * 1000),
      rounds: times.map((t) => round1((n / t) * 1000)),
    };
  } finally {
    await Promise.all(children.map(stopWorker));
    await api.close();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.end();
  }
}

const round1 = (v: number) => round(v, 1);

/**
 * Bursts of `n` concurrent `create()` calls in one process that also runs them (one worker, in
 * process): a warm-up of `n / 5`, then `rounds` measured ones; from the first create until the store
 * shows all complete. The median round.
 */
export async function concurrentCreateBurst(
  base: string,
  n: number,
  rounds: number,
): Promise<{ ms: number; perSecond: number; rounds: number[] }> {
  const schema = `bench_${process.pid}_create_${Date.now()}`;
  const db = await admin(base);
  const cairn = await createCairn({
    store: withSchema(base, schema),
    workflows: [{ binding: "W", name: "three-steps", class: ThreeSteps }],
  });
  let done = 0;
  const oneBurst = async (size: number, prefix: string): Promise<number> => {
    const start = performance.now();
    await Promise.all(
      Array.from({ length: size }, (_, i) => cairn.runtime.create("three-steps", { id: `${prefix}${i}` })),
    );
    done += size;
    for (;;) {
      const r = await db.query(`SELECT COUNT(*) AS n FROM "${schema}".instances WHERE status = 'complete'`);
      if (Number(r.rows[0].n) >= done) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    return performance.now() - start;
  };
  try {
    await oneBurst(Math.ceil(n / 5), "w");
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) times.push(await oneBurst(n, `r${r}-`));
    const ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    return {
      ms: round1(ms),
      perSecond: round1((n / ms) * 1000),
      rounds: times.map((t) => round1((n / t) * 1000)),
    };
  } finally {
    await cairn.close();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await db.end();
  }
}

/** Unloaded latency (create→complete) and event round trip (sendEvent→complete) with one in-process worker. */
export async function latencies(base: string, samples: number) {
  const schema = `bench_${process.pid}_lat_${Date.now()}`;
  const cairn = await createCairn({
    store: withSchema(base, schema),
    workflows: [
      { binding: "W", name: "three-steps", class: ThreeSteps },
      { binding: "E", name: "await-event", class: AwaitEvent },
    ],
  });
  const { runtime } = cairn;
  const waits = new Map<string, { until: string; resolve: (t: number) => void }>();
  const stop = runtime.onChange((_wf, id, status) => {
    const w = waits.get(id);
    if (w && status === w.until) {
      waits.delete(id);
      w.resolve(performance.now());
    }
  });
  const when = (id: string, until: string) =>
    new Promise<number>((resolve) => waits.set(id, { until, resolve }));
  const warmup = 20;
  const total: number[] = [];
  const event: number[] = [];
  try {
    for (let i = 0; i < warmup + samples; i++) {
      const id = `l${i}`;
      const done = when(id, "complete");
      const start = performance.now();
      await runtime.create("three-steps", { id });
      const end = await done;
      if (i >= warmup) total.push(end - start);
    }
    const ids = Array.from({ length: warmup + samples }, (_, i) => `e${i}`);
    const parked = ids.map((id) => when(id, "waiting"));
    for (let i = 0; i < ids.length; i += 100)
      await runtime.createBatch(
        "await-event",
        ids.slice(i, i + 100).map((id) => ({ id })),
      );
    await Promise.all(parked);
    // Parked = evicted to the store: wait until no instance is owned any more.
    const db = await admin(base);
    for (;;) {
      const r = await db.query(`SELECT COUNT(*) AS n FROM "${schema}".instances WHERE owner IS NOT NULL`);
      if (Number(r.rows[0].n) === 0) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    for (const [i, id] of ids.entries()) {
      const done = when(id, "complete");
      const start = performance.now();
      await runtime.sendEvent("await-event", id, { type: "go", payload: i });
      const end = await done;
      if (i >= warmup) event.push(end - start);
    }
    await db.end();
  } finally {
    stop();
    await cairn.close();
    const db = await admin(base);
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await db.end();
  }
  return { latency: summarize(total), event: summarize(event) };
}

export async function runPostgresBench(options: {
  quick: boolean;
  log: (m: string) => void;
}): Promise<PostgresBenchResult | undefined> {
  const base = postgresBenchUrl();
  const reason = await reachable(base);
  const shown = base.replace(/\/\/[^@/]*@/, "//…@");
  if (reason) {
    console.log(`PostgreSQL section skipped: no server at ${shown} (${reason})`);
    return undefined;
  }
  const t0 = performance.now();
  process.stderr.write(`postgres at ${shown}\n`);
  const c = await admin(base);
  const server = String((await c.query("SHOW server_version")).rows[0].server_version);
  await c.end();
  const rawCommitsPerSecond = await rawCommitRate(base, options.quick ? 1 : 3);
  options.log(`raw commits: ${Math.round(rawCommitsPerSecond)}/s`);
  const n = options.quick ? 500 : 1000;
  const result: PostgresBenchResult = {
    server,
    rawCommitsPerSecond,
    burst: [],
    latency: roundSummary(summarize([0])),
    event: roundSummary(summarize([0])),
    seconds: 0,
  };
  for (const workers of [1, 2, 4]) {
    const r = await burst(base, workers, n, options.quick ? 1 : 3);
    options.log(
      `burst with ${workers} worker(s): ${Math.round(r.perSecond)} instances/s (median of ${r.rounds.map(Math.round).join(", ")})`,
    );
    result.burst.push({ workers, instances: n, ...r });
  }
  const l = await latencies(base, options.quick ? 50 : 200);
  result.latency = roundSummary(l.latency);
  result.event = roundSummary(l.event);
  options.log(`latency p50 ${l.latency.p50.toFixed(2)} ms, event p50 ${l.event.p50.toFixed(2)} ms`);
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
