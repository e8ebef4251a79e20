/**
 * The table of issue 18 (`npm run bench -- --issue18 [--quick] [--parked N]`): each figure with its
 * ratio to the raw single-row commit rate measured in the same run (SQLite FULL or NORMAL as the row
 * says, PostgreSQL rows against PostgreSQL's), its target and ✓/✗. Writes
 * `bench/results/issue18-<stamp>.json` (`-partial` for a quick run) and, for a full one,
 * `bench/results/latest-issue18.json`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { SectionContext, SectionResult, Synchronous, Unit } from "./lib/metrics.ts";
import { rawCommitRate } from "./lib/raw-commit.ts";
import { gitCommit, machine, saveResults, sqliteVersion } from "./lib/report.ts";
import { formatValue } from "./lib/table.ts";
import {
  concurrentCreateBurst,
  burst as pgBurst,
  latencies as pgLatencies,
  rawCommitRate as pgRawCommitRate,
  postgresBenchUrl,
  reachable,
} from "./postgres/run.ts";
import { burstRate } from "./sqlite/burst.ts";
import { eventRoundTripOf } from "./sqlite/event.ts";
import { latency } from "./sqlite/latency.ts";
import { longInstance } from "./sqlite/long.ts";
import { parkedMemoryOf } from "./sqlite/memory.ts";

export interface Issue18Options {
  quick: boolean;
  save: boolean;
  dir?: string;
  /** Instances parked in the memory row (default 1,000,000; quick 100,000). */
  parked?: number;
  command: string;
}

type Store = "SQLite FULL" | "SQLite NORMAL" | "PostgreSQL";

export interface Issue18Row {
  figure: string;
  store: Store;
  value: number;
  unit: Unit;
  /**
   * The figure against the raw commit rate of its store measured in this run: a rate divided by it
   * ("× raw"), a time multiplied by it (the time in raw commit times, "raw commits"); absent for memory.
   */
  ratio?: number;
  target: { op: ">=" | "<="; value: number };
  ok: boolean;
  detail?: unknown;
}

export interface Issue18Result {
  date: string;
  command: string;
  commit?: string;
  machine: ReturnType<typeof machine>;
  quick: boolean;
  seconds: number;
  loadAverage: { start: number; end: number };
  raw: Partial<Record<Store, number>>;
  rows: Issue18Row[];
  skipped: string[];
}

const log = (message: string) => process.stderr.write(`  ${message}\n`);

function metric(r: SectionResult, key: string): number {
  const m = r.metrics.find((x) => x.key === key);
  if (!m) throw new Error(`bench: no figure ${key}`);
  return m.value;
}

function ratioOf(value: number, unit: Unit, raw: number | undefined): number | undefined {
  if (!raw || !Number.isFinite(value)) return undefined;
  if (unit === "/s") return value / raw;
  if (unit === "ms") return (value / 1000) * raw;
  if (unit === "s") return value * raw;
  return undefined;
}

export async function runIssue18(options: Issue18Options): Promise<Issue18Result> {
  const t0 = performance.now();
  const result: Issue18Result = {
    date: new Date().toISOString(),
    command: options.command,
    commit: gitCommit(),
    machine: machine(sqliteVersion()),
    quick: options.quick,
    seconds: 0,
    loadAverage: { start: loadavg()[0]!, end: 0 },
    raw: {},
    rows: [],
    skipped: [],
  };
  const row = (
    figure: string,
    store: Store,
    value: number,
    unit: Unit,
    target: Issue18Row["target"],
    detail?: unknown,
  ) => {
    const ok = target.op === ">=" ? value >= target.value : value <= target.value;
    const r: Issue18Row = { figure, store, value, unit, target, ok, detail };
    const ratio = ratioOf(value, unit, result.raw[store]);
    if (ratio !== undefined) r.ratio = ratio;
    result.rows.push(r);
    log(`${store}: ${figure}: ${formatValue(value, unit)} ${ok ? "✓" : "✗"}`);
  };
  const n = options.quick ? 2000 : 10_000;
  const rounds = options.quick ? 1 : 3;
  const parked = options.parked ?? (options.quick ? 100_000 : 1_000_000);

  for (const synchronous of ["NORMAL", "FULL"] as const satisfies Synchronous[]) {
    const store: Store = `SQLite ${synchronous}`;
    const dir = mkdtempSync(join(options.dir ?? tmpdir(), `cairn-bench18-${synchronous.toLowerCase()}-`));
    process.stderr.write(`synchronous=${synchronous} in ${dir}\n`);
    const ctx: SectionContext = { dir, synchronous, quick: options.quick, log };
    try {
      result.raw[store] = rawCommitRate(dir, synchronous, options.quick ? 1 : 3);
      log(`raw commits: ${Math.round(result.raw[store]!)}/s`);
      const b = await burstRate(ctx, "create", n, rounds);
      row(
        `burst, ${n.toLocaleString("en-US")} × 3 steps, concurrent create()`,
        store,
        b.perSecond,
        "/s",
        { op: ">=", value: synchronous === "NORMAL" ? 12_000 : 8_000 },
        b.rounds,
      );
      if (synchronous === "FULL") {
        const l = await latency(ctx);
        row(
          "unloaded create→complete p50",
          store,
          metric(l, "latency.p50"),
          "ms",
          { op: "<=", value: 1 },
          l.detail,
        );
      }
      const eventTarget = synchronous === "FULL" ? 1.5 : 0.5;
      const ev = await eventRoundTripOf(ctx, "evicted");
      row(
        "event round trip p50 (evicted waiter)",
        store,
        metric(ev, "event.p50"),
        "ms",
        { op: "<=", value: eventTarget },
        ev.detail,
      );
      const hot = await eventRoundTripOf(ctx, "hot");
      row(
        "event round trip p50 (hot waiter)",
        store,
        metric(hot, "event.hot.p50"),
        "ms",
        { op: "<=", value: eventTarget },
        hot.detail,
      );
      if (synchronous === "FULL") {
        const m = await parkedMemoryOf(ctx, parked);
        const d = m.detail as { createdPerSecond: number };
        const what = `${parked.toLocaleString("en-US")} parked in a 1-day sleep`;
        row(`${what}: RSS`, store, metric(m, "memory.rssAfter"), "MiB", { op: "<=", value: 300 }, m.detail);
        row(`${what}: created and parked with createBatch`, store, d.createdPerSecond, "/s", {
          op: ">=",
          value: 20_000,
        });
      } else {
        const g = await longInstance(ctx);
        const steps = options.quick ? 10_000 : 100_000;
        const what = `one instance, ${steps.toLocaleString("en-US")} steps`;
        row(
          `${what}: steps/s`,
          store,
          metric(g, "long.stepsPerSecond"),
          "/s",
          { op: ">=", value: 8_000 },
          g.detail,
        );
        const resume = (metric(g, "replay.load") + metric(g, "replay.replay")) / 1000;
        row(`${what}: resume (claim + load + replay of half)`, store, resume, "s", { op: "<=", value: 0.4 });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const base = postgresBenchUrl();
  const reason = await reachable(base);
  if (reason) {
    const why = `PostgreSQL rows skipped: no server (${reason})`;
    console.log(why);
    result.skipped.push(why);
  } else {
    process.stderr.write("postgres\n");
    const store: Store = "PostgreSQL";
    result.raw[store] = await pgRawCommitRate(base, options.quick ? 1 : 3);
    log(`raw commits: ${Math.round(result.raw[store]!)}/s`);
    const c = await concurrentCreateBurst(base, n, rounds);
    row(
      `burst, ${n.toLocaleString("en-US")} concurrent create(), 1 process`,
      store,
      c.perSecond,
      "/s",
      { op: ">=", value: 4_000 },
      c,
    );
    const one = await pgBurst(base, 1, n, rounds);
    row(
      `burst, ${n.toLocaleString("en-US")} with createBatch, 1 worker process`,
      store,
      one.perSecond,
      "/s",
      { op: ">=", value: 6_000 },
      one,
    );
    const l = await pgLatencies(base, options.quick ? 50 : 200);
    row("unloaded create→complete p50", store, l.latency.p50, "ms", { op: "<=", value: 2 });
    row("event round trip p50 (evicted waiter)", store, l.event.p50, "ms", { op: "<=", value: 2.5 });
    for (const workers of [2, 4]) {
      const w = await pgBurst(base, workers, n, rounds);
      row(
        `burst, ${n.toLocaleString("en-US")} with createBatch, ${workers} worker processes (≥ 1 process)`,
        store,
        w.perSecond,
        "/s",
        { op: ">=", value: one.perSecond },
        w,
      );
    }
  }
  result.seconds = (performance.now() - t0) / 1000;
  result.loadAverage.end = loadavg()[0]!;
  return result;
}

export function renderIssue18(r: Issue18Result): string {
  const table: string[][] = [["store", "figure", "value", "ratio to raw commits", "target", ""]];
  for (const [store, raw] of Object.entries(r.raw))
    table.push([
      store,
      "raw single-row commits (BEGIN; INSERT; COMMIT)",
      formatValue(raw, "/s"),
      "1.00×",
      "",
      "",
    ]);
  for (const x of r.rows)
    table.push([
      x.store,
      x.figure,
      formatValue(x.value, x.unit),
      x.ratio === undefined
        ? ""
        : x.unit === "/s"
          ? `${x.ratio.toFixed(2)}× raw`
          : `${x.ratio.toFixed(1)} raw commits`,
      `${x.target.op === ">=" ? "≥" : "≤"} ${formatValue(x.target.value, x.unit)}`,
      x.ok ? "✓" : "✗",
    ]);
  const m = r.machine;
  return `\nCairn issue 18 table — ${r.command}
${m.cpus} cores, ${m.memoryGiB} GiB, Node ${m.node}, SQLite ${m.sqlite}, ${r.seconds.toFixed(0)} s, load average ${r.loadAverage.start.toFixed(1)} → ${r.loadAverage.end.toFixed(1)}

${render(table)}`;
}

/** Text columns left-aligned (store, figure), figures right-aligned. */
function render(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...(r[c] ?? "")].length)));
  const line = (r: string[]) =>
    r
      .map((v, c) => (c < 2 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!)))
      .join("  ")
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}

/** Writes `bench/results/issue18-<stamp>[-partial].json`, and `latest-issue18.json` for a full run. */
export function saveIssue18(r: Issue18Result, full: boolean): string[] {
  return saveResults("issue18", r, full);
}
