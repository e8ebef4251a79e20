import { spawn } from "node:child_process";
import { join } from "node:path";
import type { SectionContext, SectionResult } from "../lib/metrics.ts";
import type { MemoryReport } from "./memory-child.ts";

const CHILD = join(import.meta.dirname, "memory-child.ts");

/**
 * The child runs workflows with the young generation `cairn dev`/`cairn start` give the project's
 * thread, where workflows run (`maxYoungGenerationSizeMb: 48` in packages/compat/src/worker-host.ts,
 * three 16 MiB semi-spaces). Left to itself, V8 sizes it from the machine's memory (128 MiB of
 * new space on a 24 GiB machine), and after a burst those pages stay resident: 100 MiB of RSS
 * that holds no instance (docs/benchmarks.md, "Parked memory").
 */
export const YOUNG_GENERATION_FLAGS = ["--max-semi-space-size=16"];

/**
 * (f) Memory of instances parked in a one-day sleep, measured in a child process (clean RSS, forced
 * GC): RSS and V8 heap before and after parking them, per instance.
 */
export async function parkedMemory(ctx: SectionContext): Promise<SectionResult> {
  return parkedMemoryOf(ctx, ctx.quick ? 2000 : 10_000);
}

/** The parked-memory workload with `n` instances; the child prints progress every 100,000 on stderr. */
export async function parkedMemoryOf(ctx: SectionContext, n: number): Promise<SectionResult> {
  const r = await runChild([ctx.dir, ctx.synchronous, String(n)]);
  ctx.log(
    `parked memory: RSS +${((r.after.rss - r.before.rss) / 2 ** 20).toFixed(1)} MiB, ${Math.round(r.perInstance.rss)} B/instance`,
  );
  return {
    metrics: [
      {
        key: "memory.rssBefore",
        label: `parked memory: RSS before`,
        value: r.before.rss / 2 ** 20,
        unit: "MiB",
      },
      {
        key: "memory.rssAfter",
        label: `parked memory: RSS with ${n} parked`,
        value: r.after.rss / 2 ** 20,
        unit: "MiB",
      },
      {
        key: "memory.rssPerInstance",
        label: "parked memory: RSS per parked instance",
        value: r.perInstance.rss,
        unit: "B",
      },
      {
        key: "memory.heapPerInstance",
        label: "parked memory: V8 heap per parked instance",
        value: r.perInstance.heap,
        unit: "B",
      },
    ],
    detail: { ...r, createdPerSecond: r.instances / r.parkSeconds },
  };
}

function runChild(args: string[]): Promise<MemoryReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", ...YOUNG_GENERATION_FLAGS, CHILD, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`memory child exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()!) as MemoryReport);
      } catch (e) {
        reject(e);
      }
    });
  });
}
