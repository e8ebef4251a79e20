import type { Runtime } from "cairnjs";
import { openCairn } from "../lib/cairn.ts";
import type { Metric, SectionContext, SectionResult } from "../lib/metrics.ts";
import { median, round } from "../lib/stats.ts";
import { Tracker } from "../lib/tracker.ts";
import { ThreeSteps } from "../lib/workflows.ts";

const WORKFLOW = "three-steps";
const CHUNK = 100;

export type How = "create" | "createBatch";

interface Round {
  instances: number;
  ms: number;
  perSecond: number;
  commits: number;
}

/**
 * (a) A burst of instances of a 3-step workflow, created as fast as possible; from the first create
 * to the last completion.
 */
/**
 * The median rate of `rounds` bursts of `n` instances (after a warm-up of `n / 5`), each on a new
 * database: from the first create to the last completion.
 */
export async function burstRate(
  ctx: SectionContext,
  how: How,
  n: number,
  rounds: number,
): Promise<{ perSecond: number; rounds: Round[] }> {
  await round1(ctx, how, Math.ceil(n / 5)); // warm-up, not counted
  const results: Round[] = [];
  for (let r = 0; r < rounds; r++) results.push(await round1(ctx, how, n));
  return { perSecond: median(results.map((x) => x.perSecond)), rounds: results };
}

export async function burst(ctx: SectionContext): Promise<SectionResult> {
  const n = ctx.quick ? 500 : 1000;
  const rounds = ctx.quick ? 1 : 3;
  const metrics: Metric[] = [];
  const detail: Record<string, unknown> = { instances: n, rounds };
  for (const how of ["create", "createBatch"] as const) {
    const { perSecond: rate, rounds: results } = await burstRate(ctx, how, n, rounds);
    ctx.log(`burst ${how}: ${results.map((x) => Math.round(x.perSecond)).join(", ")} instances/s`);
    detail[how] = results;
    metrics.push({
      key: `burst.${how}`,
      label:
        how === "create" ? `burst: ${n} concurrent create()` : `burst: createBatch ${n / CHUNK}×${CHUNK}`,
      value: rate,
      unit: "/s",
      throughput: true,
      target: { op: ">=", value: { FULL: 5000, NORMAL: 10000 } },
    });
  }
  return { metrics, detail };
}

async function round1(ctx: SectionContext, how: How, n: number): Promise<Round> {
  const bench = await openCairn(ctx.dir, ctx.synchronous, [
    { binding: "W", name: WORKFLOW, class: ThreeSteps },
  ]);
  const tracker = new Tracker(bench, WORKFLOW);
  try {
    const ids = Array.from({ length: n }, (_, i) => `i${i}`);
    const done = ids.map((id) => tracker.when(id));
    const commits0 = bench.commits();
    const start = performance.now();
    await createAll(bench.cairn.runtime, how, ids);
    const ends = await Promise.all(done);
    const ms = Math.max(...ends) - start;
    return {
      instances: n,
      ms: round(ms),
      perSecond: round((n / ms) * 1000, 1),
      commits: bench.commits() - commits0,
    };
  } finally {
    tracker.dispose();
    await bench.close();
  }
}

async function createAll(runtime: Runtime, how: How, ids: string[]): Promise<void> {
  if (how === "create") {
    await Promise.all(ids.map((id) => runtime.create(WORKFLOW, { id })));
    return;
  }
  const chunks: Promise<string[]>[] = [];
  for (let i = 0; i < ids.length; i += CHUNK)
    chunks.push(
      runtime.createBatch(
        WORKFLOW,
        ids.slice(i, i + CHUNK).map((id) => ({ id })),
      ),
    );
  await Promise.all(chunks);
}
