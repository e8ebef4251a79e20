import { openCairn } from "../lib/cairn.ts";
import type { SectionContext, SectionResult } from "../lib/metrics.ts";
import { round, roundSummary, summarize } from "../lib/stats.ts";
import { isParked, Tracker } from "../lib/tracker.ts";
import { AwaitEvent } from "../lib/workflows.ts";

const WORKFLOW = "await-event";

/**
 * (c) Event round trip: instances parked in `step.waitForEvent` (evicted, status "waiting"), then one
 * at a time: `sendEvent` until the instance is complete.
 */
export async function eventRoundTrip(ctx: SectionContext): Promise<SectionResult> {
  const n = ctx.quick ? 50 : 200;
  const warmup = 20;
  const bench = await openCairn(ctx.dir, ctx.synchronous, [
    { binding: "W", name: WORKFLOW, class: AwaitEvent },
  ]);
  const tracker = new Tracker(bench, WORKFLOW);
  const { runtime } = bench.cairn;
  const total: number[] = [];
  const sent: number[] = [];
  let commits = 0;
  try {
    const ids = Array.from({ length: warmup + n }, (_, i) => `i${i}`);
    const parked = ids.map((id) => tracker.when(id, isParked));
    for (let i = 0; i < ids.length; i += 100)
      await runtime.createBatch(
        WORKFLOW,
        ids.slice(i, i + 100).map((id) => ({ id })),
      );
    await Promise.all(parked);
    for (const [i, id] of ids.entries()) {
      const done = tracker.when(id);
      const c0 = bench.commits();
      const start = performance.now();
      await runtime.sendEvent(WORKFLOW, id, { type: "go", payload: i });
      const stored = performance.now();
      const end = await done;
      if (i < warmup) continue;
      sent.push(stored - start);
      total.push(end - start);
      commits += bench.commits() - c0;
    }
  } finally {
    tracker.dispose();
    await bench.close();
  }
  const s = summarize(total);
  ctx.log(`event round trip p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`);
  return {
    metrics: [
      {
        key: "event.p50",
        label: "event round trip (evicted waiter) p50",
        value: s.p50,
        unit: "ms",
        target: { op: "<=", value: { FULL: 1, NORMAL: 1 } },
      },
      { key: "event.p99", label: "event round trip (evicted waiter) p99", value: s.p99, unit: "ms" },
    ],
    detail: {
      samples: n,
      sendToComplete: roundSummary(s),
      sendEventResolved: roundSummary(summarize(sent)),
      commitsPerEvent: round(commits / n, 2),
    },
  };
}
