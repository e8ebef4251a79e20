import { openCairn } from "../lib/cairn.ts";
import type { SectionContext, SectionResult } from "../lib/metrics.ts";
import { round, roundSummary, summarize } from "../lib/stats.ts";
import { isParked, isWaiting, Tracker } from "../lib/tracker.ts";
import { AwaitEvent, AwaitEventBriefly } from "../lib/workflows.ts";

const WORKFLOW = "await-event";

/**
 * (c) Event round trip: instances parked in `step.waitForEvent` (evicted, status "waiting"), then one
 * at a time: `sendEvent` until the instance is complete.
 */
export async function eventRoundTrip(ctx: SectionContext): Promise<SectionResult> {
  return eventRoundTripOf(ctx, "evicted");
}

/**
 * The event round trip to an `evicted` waiter (unloaded to the store), or to a `hot` one: a
 * `waitForEvent` whose timeout (1 minute) is below the hot-wait threshold (2 minutes), so the run
 * stays in memory, waiting.
 */
export async function eventRoundTripOf(
  ctx: SectionContext,
  waiter: "evicted" | "hot",
): Promise<SectionResult> {
  const n = ctx.quick ? 50 : 200;
  const warmup = 20;
  const hot = waiter === "hot";
  const bench = await openCairn(
    ctx.dir,
    ctx.synchronous,
    [{ binding: "W", name: WORKFLOW, class: hot ? AwaitEventBriefly : AwaitEvent }],
    hot ? { hotWaitThreshold: "2 minutes" } : {},
  );
  const tracker = new Tracker(bench, WORKFLOW);
  const { runtime } = bench.cairn;
  const total: number[] = [];
  const sent: number[] = [];
  let commits = 0;
  try {
    const ids = Array.from({ length: warmup + n }, (_, i) => `i${i}`);
    const parked = ids.map((id) => tracker.when(id, hot ? isWaiting : isParked));
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
  ctx.log(`event round trip (${waiter} waiter) p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`);
  return {
    metrics: [
      {
        key: hot ? "event.hot.p50" : "event.p50",
        label: `event round trip (${waiter} waiter) p50`,
        value: s.p50,
        unit: "ms",
        target: { op: "<=", value: { FULL: 1, NORMAL: 1 } },
      },
      {
        key: hot ? "event.hot.p99" : "event.p99",
        label: `event round trip (${waiter} waiter) p99`,
        value: s.p99,
        unit: "ms",
      },
    ],
    detail: {
      samples: n,
      sendToComplete: roundSummary(s),
      sendEventResolved: roundSummary(summarize(sent)),
      commitsPerEvent: round(commits / n, 2),
    },
  };
}
