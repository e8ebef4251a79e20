/**
 * Child process of the parked-memory workload: `node --expose-gc memory-child.ts <dir> <FULL|NORMAL> <n>`.
 * Prints one JSON line (a MemoryReport) on stdout.
 */
import { readFileSync } from "node:fs";
import { openCairn } from "../lib/cairn.ts";
import type { Synchronous } from "../lib/metrics.ts";
import { round } from "../lib/stats.ts";
import { sleep } from "../lib/time.ts";
import { isParked, Tracker } from "../lib/tracker.ts";
import { ParkForADay } from "../lib/workflows.ts";

export interface Sample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** Linux: RSS split into anonymous memory, file mappings and shared memory (kB lines of /proc/self/status). */
  rssParts?: Record<string, number>;
}

function rssParts(): Record<string, number> | undefined {
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    const parts: Record<string, number> = {};
    for (const m of status.matchAll(/^(RssAnon|RssFile|RssShmem):\s+(\d+) kB/gm))
      parts[m[1]!] = Number(m[2]) * 1024;
    return parts;
  } catch {
    return undefined;
  }
}

export interface MemoryReport {
  instances: number;
  before: Sample;
  after: Sample;
  perInstance: { rss: number; heap: number };
  peakRssMiB: number;
  parkSeconds: number;
}

const WORKFLOW = "park-for-a-day";
const CHUNK = 100;

async function settledSample(): Promise<Sample> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(50);
  }
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    rssParts: rssParts(),
  };
}

/** Creates `n` instances chunk by chunk, each chunk parked before the next (few are ever hot at once). */
async function park(
  tracker: Tracker,
  create: (ids: string[]) => Promise<unknown>,
  prefix: string,
  n: number,
): Promise<void> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  for (let i = 0; i < n; i += CHUNK) {
    const chunk = ids.slice(i, i + CHUNK);
    const parked = chunk.map((id) => tracker.when(id, isParked));
    await create(chunk);
    await Promise.all(parked);
    const done = i + chunk.length;
    if (done % 100_000 === 0 && done < n)
      process.stderr.write(
        `  parked ${done.toLocaleString("en-US")} of ${n.toLocaleString("en-US")}, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB\n`,
      );
  }
}

async function main(): Promise<void> {
  const [dir, synchronous, count] = process.argv.slice(2);
  const n = Number(count);
  const bench = await openCairn(dir!, synchronous as Synchronous, [
    { binding: "W", name: WORKFLOW, class: ParkForADay },
  ]);
  const tracker = new Tracker(bench, WORKFLOW);
  const create = (ids: string[]) =>
    bench.cairn.runtime.createBatch(
      WORKFLOW,
      ids.map((id) => ({ id })),
    );
  // Warm up code paths and statement caches, so the difference is the parked instances.
  await park(tracker, create, "warm-", 200);
  const before = await settledSample();
  const start = performance.now();
  await park(tracker, create, "i", n);
  const parkSeconds = (performance.now() - start) / 1000;
  await sleep(200);
  const after = await settledSample();
  tracker.dispose();
  const report: MemoryReport = {
    instances: n,
    before,
    after,
    perInstance: {
      rss: round((after.rss - before.rss) / n, 1),
      heap: round((after.heapUsed - before.heapUsed) / n, 1),
    },
    peakRssMiB: round(process.resourceUsage().maxRSS / 1024, 1),
    parkSeconds: round(parkSeconds, 2),
  };
  await bench.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
