/**
 * Cairn's SQLite benchmark: `npm run bench [-- --quick] [-- --only a,b]`; `-- --issue18` runs only
 * the targets table of issue 18 (bench/issue18.ts); `-- --cost` only the cost of CPU accounting and
 * metrics (bench/cost.ts).
 * Runs every selected workload once per `synchronous` mode, each mode in a fresh temp directory,
 * prints a table and writes `bench/results/*.json` (and, for a full run, `docs/benchmarks.md`).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { renderCost, runCost, saveCost } from "./cost.ts";
import { renderIssue18, runIssue18, saveIssue18 } from "./issue18.ts";
import { type Args, parseArgs, SECTION_IDS, type SectionId } from "./lib/args.ts";
import { MODES, type Section, type SectionContext, type Synchronous } from "./lib/metrics.ts";
import { rawCommitRate } from "./lib/raw-commit.ts";
import { type BenchResult, gitCommit, type ModeResult, machine, save, sqliteVersion } from "./lib/report.ts";
import { renderText, tableRows } from "./lib/table.ts";
import { savePostgres } from "./postgres/report.ts";
import { type PostgresBenchResult, runPostgresBench } from "./postgres/run.ts";
import { burst } from "./sqlite/burst.ts";
import { createBatchRate } from "./sqlite/create-batch.ts";
import { eventRoundTrip } from "./sqlite/event.ts";
import { latency } from "./sqlite/latency.ts";
import { longInstance } from "./sqlite/long.ts";
import { parkedMemory } from "./sqlite/memory.ts";
import { sleepAccuracy } from "./sqlite/sleep.ts";

const SECTIONS: Record<SectionId, Section> = {
  a: burst,
  b: latency,
  c: eventRoundTrip,
  d: sleepAccuracy,
  e: createBatchRate,
  f: parkedMemory,
  g: longInstance,
};

const log = (message: string) => process.stderr.write(`  ${message}\n`);

async function runMode(args: Args, synchronous: Synchronous): Promise<ModeResult> {
  const dir = mkdtempSync(join(args.dir ?? tmpdir(), `cairn-bench-${synchronous.toLowerCase()}-`));
  process.stderr.write(`synchronous=${synchronous} in ${dir}\n`);
  try {
    const rawCommitsPerSecond = rawCommitRate(dir, synchronous, args.quick ? 1 : 3);
    log(`raw commits: ${Math.round(rawCommitsPerSecond)}/s`);
    const mode: ModeResult = { synchronous, dir, rawCommitsPerSecond, sections: {} };
    for (const id of args.only) {
      const ctx: SectionContext = { dir, synchronous, quick: args.quick, log };
      const start = performance.now();
      const result = await SECTIONS[id](ctx);
      const seconds = (performance.now() - start) / 1000;
      log(`(${id}) done in ${seconds.toFixed(1)} s`);
      mode.sections[id] = { ...result, seconds };
    }
    return mode;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  if (args.cost) {
    const r = await runCost({
      quick: args.quick,
      save: args.save,
      dir: args.dir,
      command: `npm run bench -- ${argv.join(" ")}`,
    });
    console.log(renderCost(r));
    if (args.save) for (const file of saveCost(r)) console.log(`wrote ${file}`);
    return;
  }
  if (args.issue18) {
    const r = await runIssue18({
      quick: args.quick,
      save: args.save,
      dir: args.dir,
      parked: args.parked,
      command: `npm run bench -- ${argv.join(" ")}`,
    });
    console.log(renderIssue18(r));
    if (args.save)
      for (const file of saveIssue18(r, !args.quick && args.parked === undefined))
        console.log(`wrote ${file}`);
    return;
  }
  const start = performance.now();
  const result: BenchResult = {
    date: new Date().toISOString(),
    command: `npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}`,
    commit: gitCommit(),
    machine: machine(sqliteVersion()),
    quick: args.quick,
    only: args.only,
    seconds: 0,
    loadAverage: { start: loadavg()[0]!, end: 0 },
    modes: [],
  };
  for (const mode of MODES) result.modes.push(await runMode(args, mode));
  result.seconds = (performance.now() - start) / 1000;
  result.loadAverage.end = loadavg()[0]!;
  console.log(`\nCairn SQLite benchmark — ${result.command}`);
  console.log(
    `${result.machine.cpus} cores, ${result.machine.memoryGiB} GiB, Node ${result.machine.node}, SQLite ${result.machine.sqlite}, ${result.seconds.toFixed(0)} s, load average ${result.loadAverage.start.toFixed(1)} → ${result.loadAverage.end.toFixed(1)}\n`,
  );
  console.log(renderText(tableRows(result)));
  if (args.save) {
    const full = !args.quick && args.only.length === SECTION_IDS.length;
    for (const file of save(result, full)) console.log(`wrote ${file}`);
  }
  // PostgreSQL: the burst, latency and event workloads with 1, 2 and 4 worker processes.
  const pgResult: PostgresBenchResult | undefined = await runPostgresBench({ quick: args.quick, log });
  if (pgResult) {
    const files = savePostgres(pgResult, result, args.save && !args.quick);
    for (const file of files) console.log(`wrote ${file}`);
  }
  // HTTP: create throughput and detail latency, loaded from this process over loopback.
  console.log("\nCairn HTTP benchmark (bench/http.ts)");
  execFileSync(
    process.execPath,
    [join(import.meta.dirname, "http.ts"), "--seconds", args.quick ? "3" : "10"],
    {
      stdio: "inherit",
    },
  );
  // API latency while a step keeps its thread busy (`cairn start`), written to bench/results/busy-*.json.
  console.log("\nCairn busy-step benchmark (bench/busy.ts)");
  execFileSync(
    process.execPath,
    [
      join(import.meta.dirname, "busy.ts"),
      "--busy-ms",
      args.quick ? "3000" : "8000",
      ...(args.save && !args.quick ? [] : ["--no-save"]),
    ],
    { stdio: "inherit" },
  );
  // Durable Objects: RPC, WebSockets, idle objects with open sockets.
  console.log("\nCairn Durable Objects benchmark (bench/objects.ts)");
  execFileSync(
    process.execPath,
    [
      "--expose-gc",
      "--conditions=source",
      join(import.meta.dirname, "objects.ts"),
      ...(args.quick ? ["--quick"] : []),
      ...(args.save ? [] : ["--no-save"]),
    ],
    { stdio: "inherit" },
  );
}

await main();
