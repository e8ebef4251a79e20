import { openCairn } from "../lib/cairn.ts";
import type { SectionContext, SectionResult } from "../lib/metrics.ts";
import { round, roundSummary, summarize } from "../lib/stats.ts";
import { Tracker } from "../lib/tracker.ts";
import { ThreeSteps } from "../lib/workflows.ts";

const WORKFLOW = "three-steps";

/** (b) Unloaded create → complete latency of the 3-step workflow, one instance at a time. */
export async function latency(ctx: SectionContext, samples?: number): Promise<SectionResult> {
  const n = samples ?? (ctx.quick ? 50 : 200);
  const warmup = 20;
  const bench = await openCairn(ctx.dir, ctx.synchronous, [
    { binding: "W", name: WORKFLOW, class: ThreeSteps },
  ]);
  const tracker = new Tracker(bench, WORKFLOW);
  const total: number[] = [];
  const created: number[] = [];
  let commits = 0;
  try {
    for (let i = 0; i < warmup + n; i++) {
      const id = `i${i}`;
      const done = tracker.when(id);
      const c0 = bench.commits();
      const start = performance.now();
      await bench.cairn.runtime.create(WORKFLOW, { id });
      const stored = performance.now();
      const end = await done;
      if (i < warmup) continue;
      created.push(stored - start);
      total.push(end - start);
      commits += bench.commits() - c0;
    }
  } finally {
    tracker.dispose();
    await bench.close();
  }
  const s = summarize(total);
  ctx.log(`latency p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`);
  return {
    metrics: [
      {
        key: "latency.p50",
        label: "unloaded create→complete p50",
        value: s.p50,
        unit: "ms",
        target: { op: "<=", value: { FULL: 1, NORMAL: 1 } },
      },
      { key: "latency.p99", label: "unloaded create→complete p99", value: s.p99, unit: "ms" },
    ],
    detail: {
      samples: n,
      createToComplete: roundSummary(s),
      createResolved: roundSummary(summarize(created)),
      commitsPerInstance: round(commits / n, 2),
    },
  };
}
