/**
 * The PostgreSQL section of the bench on its own: `npm run bench:postgres [-- --quick]`. Prints the
 * figures; `npm run bench` runs the same section and records it in bench/results and the docs.
 */
import { cpus, loadavg, totalmem } from "node:os";
import { runPostgresBench } from "./run.ts";

const quick = process.argv.includes("--quick");
const load = loadavg()[0]!;
const r = await runPostgresBench({ quick, log: (m) => process.stderr.write(`  ${m}\n`) });
if (r) {
  console.log(
    `\nCairn PostgreSQL benchmark — npm run bench:postgres${quick ? " -- --quick" : ""}\n${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}, PostgreSQL ${r.server}, load average ${load.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}\n`,
  );
  console.log(`raw single-row commits: ${Math.round(r.rawCommitsPerSecond)}/s`);
  for (const b of r.burst)
    console.log(
      `burst, ${b.workers} worker(s): ${Math.round(b.perSecond)} instances/s (${b.instances} in ${Math.round(b.ms)} ms)`,
    );
  console.log(`unloaded create→complete: p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms`);
  console.log(`event round trip: p50 ${r.event.p50} ms, p99 ${r.event.p99} ms`);
}
