import { openCairn } from "../lib/cairn.ts";
import type { Metric, SectionContext, SectionResult } from "../lib/metrics.ts";
import { round } from "../lib/stats.ts";
import { isParked, Tracker } from "../lib/tracker.ts";
import { ManySteps, type RunTrace, traces } from "../lib/workflows.ts";

const WORKFLOW = "many-steps";
const SLEEP_MS = 1000;

/**
 * (g) One instance with many sequential steps and a one-second sleep halfway. A 100 ms hot-wait
 * threshold makes the sleep evict the instance; on wake-up it loads and replays the first half's
 * stored steps, then runs the second half. Reported: the time of the fresh steps per segment (does the
 * per-step cost stay flat as the instance grows?), and the load and replay of the cached half.
 */
export async function longInstance(ctx: SectionContext): Promise<SectionResult> {
  const steps = ctx.quick ? 10_000 : 100_000;
  const segment = steps / 10;
  const half = steps / 2;
  const t = await run(ctx, steps, segment);
  const [first, second] = t.runs;
  const fresh = [
    ...segmentTimes(first.entered, first.marks),
    ...segmentTimes(second.sleepReturned!, second.marks.slice(5)),
  ];
  const stepMs = fresh.reduce((a, b) => a + b, 0);
  const spread = Math.max(...fresh) / Math.min(...fresh);
  const loadMs = second.entered - (first.sleepAsked! + SLEEP_MS);
  const replayMs = second.sleepAsked! - second.entered;
  ctx.log(
    `long: ${steps} fresh steps in ${(stepMs / 1000).toFixed(2)} s; segments ${fresh.map((s) => Math.round(s)).join(", ")} ms`,
  );
  ctx.log(`replay: load ${loadMs.toFixed(0)} ms, replay ${replayMs.toFixed(0)} ms of ${half} cached steps`);
  const metrics: Metric[] = [
    {
      key: "long.total",
      label: `${steps} steps in one instance: time in steps`,
      value: stepMs / 1000,
      unit: "s",
    },
    {
      key: "long.stepsPerSecond",
      label: `${steps} steps in one instance: steps/s`,
      value: (steps / stepMs) * 1000,
      unit: "/s",
      throughput: true,
    },
    { key: "long.segment", label: `  per ${segment}-step segment: median`, value: median(fresh), unit: "ms" },
    { key: "long.spread", label: "  slowest / fastest segment", value: spread, unit: "x" },
    { key: "replay.load", label: `after eviction at ${half} steps: claim + load`, value: loadMs, unit: "ms" },
    {
      key: "replay.replay",
      label: `after eviction at ${half} steps: replay to the sleep`,
      value: replayMs,
      unit: "ms",
    },
  ];
  return {
    metrics,
    detail: {
      steps,
      segment,
      freshSegmentMs: fresh.map((s) => round(s)),
      replaySegmentMs: segmentTimes(second.entered, second.marks.slice(0, 5)).map((s) => round(s)),
      wallMs: round(t.wallMs),
      evictMs: round(t.parkedAt - first.sleepAsked!),
      loadMs: round(loadMs),
      replayMs: round(replayMs),
      sleepCommitMs: round(second.sleepReturned! - second.sleepAsked!),
      commits: t.commits,
    },
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

function segmentTimes(from: number, marks: RunTrace["marks"]): number[] {
  let prev = from;
  return marks.map((m) => {
    const d = m.at - prev;
    prev = m.at;
    return d;
  });
}

interface Traced {
  runs: [RunTrace, RunTrace];
  wallMs: number;
  parkedAt: number;
  commits: number;
}

async function run(ctx: SectionContext, steps: number, segment: number): Promise<Traced> {
  const bench = await openCairn(
    ctx.dir,
    ctx.synchronous,
    [{ binding: "W", name: WORKFLOW, class: ManySteps }],
    {
      stepLimit: steps * 2,
      hotWaitThreshold: 100,
    },
  );
  const parkedTracker = new Tracker(bench, WORKFLOW);
  const doneTracker = new Tracker(bench, WORKFLOW);
  traces.clear();
  try {
    const id = "long";
    const parked = parkedTracker.when(id, isParked);
    const done = doneTracker.when(id);
    const start = performance.now();
    await bench.cairn.runtime.create(WORKFLOW, { id, params: { steps, segment, sleepAfter: steps / 2 } });
    const parkedAt = await parked;
    const end = await done;
    const [first, second] = traces.get(id)!;
    if (!first || !second) throw new Error("the instance was not evicted and replayed");
    return { runs: [first, second], wallMs: end - start, parkedAt, commits: bench.commits() };
  } finally {
    parkedTracker.dispose();
    doneTracker.dispose();
    await bench.close();
  }
}
