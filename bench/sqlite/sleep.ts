import { openCairn } from "../lib/cairn.ts";
import type { Metric, SectionContext, SectionResult } from "../lib/metrics.ts";
import { roundSummary, summarize } from "../lib/stats.ts";
import { Tracker } from "../lib/tracker.ts";
import { SleepOneSecond, sleeps } from "../lib/workflows.ts";

const WORKFLOW = "sleep-one-second";
const SLEEP_MS = 1000;

/**
 * (d) Wake-up accuracy of `step.sleep("s", "1 second")` for instances started together: lateness is
 * when `sleep` returned minus (when it was called + 1 s). Hot (kept in memory) and evicted (a 100 ms
 * hot-wait threshold unloads them; the store's timer wakes, claims and replays them).
 */
export async function sleepAccuracy(ctx: SectionContext): Promise<SectionResult> {
  const n = ctx.quick ? 50 : 100;
  const metrics: Metric[] = [];
  const detail: Record<string, unknown> = { instances: n };
  for (const variant of ["hot", "evicted"] as const) {
    const lateness = await measure(ctx, n, variant);
    const s = summarize(lateness);
    ctx.log(
      `sleep ${variant}: lateness p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)}, max ${s.max.toFixed(2)}`,
    );
    detail[variant] = roundSummary(s);
    metrics.push(
      { key: `sleep.${variant}.p50`, label: `1 s sleep lateness, ${variant}: p50`, value: s.p50, unit: "ms" },
      { key: `sleep.${variant}.p99`, label: `1 s sleep lateness, ${variant}: p99`, value: s.p99, unit: "ms" },
      { key: `sleep.${variant}.max`, label: `1 s sleep lateness, ${variant}: max`, value: s.max, unit: "ms" },
    );
  }
  return { metrics, detail };
}

async function measure(ctx: SectionContext, n: number, variant: "hot" | "evicted"): Promise<number[]> {
  const bench = await openCairn(
    ctx.dir,
    ctx.synchronous,
    [{ binding: "W", name: WORKFLOW, class: SleepOneSecond }],
    variant === "evicted" ? { hotWaitThreshold: 100 } : {},
  );
  const tracker = new Tracker(bench, WORKFLOW);
  sleeps.clear();
  try {
    const ids = Array.from({ length: n }, (_, i) => `${variant}-${i}`);
    const done = ids.map((id) => tracker.when(id));
    await Promise.all(ids.map((id) => bench.cairn.runtime.create(WORKFLOW, { id })));
    await Promise.all(done);
    return ids.map((id) => {
      const s = sleeps.get(id)!;
      return s.woke! - (s.asked + SLEEP_MS);
    });
  } finally {
    tracker.dispose();
    await bench.close();
  }
}
