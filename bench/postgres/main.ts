/**
 * The PostgreSQL section of the bench on its own: `npm run bench:postgres [-- --quick] [-- --save]`.
 * Prints the figures; with `--save` (and not `--quick`) records them like `npm run bench` does, in
 * bench/results and the PostgreSQL table of docs/benchmarks.md.
 */
import { loadavg } from "node:os";
import { gitCommit, machine, sqliteVersion } from "../lib/report.ts";
import { savePostgres } from "./report.ts";
import { runPostgresBench } from "./run.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const save = argv.includes("--save");
const load = loadavg()[0]!;
const date = new Date().toISOString();
const commit = gitCommit();
const m = machine(sqliteVersion());
const r = await runPostgresBench({ quick, log: (msg) => process.stderr.write(`  ${msg}\n`) });
if (r) {
  const command = `npm run bench:postgres${argv.length ? ` -- ${argv.join(" ")}` : ""}`;
  console.log(
    `\nCairn PostgreSQL benchmark — ${command}\n${m.cpus} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, PostgreSQL ${r.server}, load average ${load.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}\n`,
  );
  console.log(`raw single-row commits: ${Math.round(r.rawCommitsPerSecond)}/s`);
  for (const b of r.burst)
    console.log(
      `burst, ${b.workers} worker(s): ${Math.round(b.perSecond)} instances/s (${b.instances} in ${Math.round(b.ms)} ms)`,
    );
  console.log(`unloaded create→complete: p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms`);
  console.log(`event round trip: p50 ${r.event.p50} ms, p99 ${r.event.p99} ms`);
  if (save && !quick)
    for (const file of savePostgres(r, { date, command, commit, machine: m }, true))
      console.log(`wrote ${file}`);
}
