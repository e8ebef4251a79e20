import type { Runtime } from "cairnjs";
import { openCairn } from "../lib/cairn.ts";
import type { Metric, SectionContext, SectionResult } from "../lib/metrics.ts";
import { round } from "../lib/stats.ts";
import { Tracker } from "../lib/tracker.ts";
import { ThreeSteps } from "../lib/workflows.ts";

const WORKFLOW = "three-steps";
const CHUNK = 100;

type Sending = "sequential" | "concurrent";

/**
 * (e) How fast `createBatch` stores instances: chunks of 100 sent one after another or all at once,
 * with a `worker: false` Cairn (nothing runs) and with a worker (the instances run meanwhile).
 */
export async function createBatchRate(ctx: SectionContext): Promise<SectionResult> {
  const n = ctx.quick ? 2000 : 10_000;
  const metrics: Metric[] = [];
  const detail: Record<string, unknown> = { instances: n };
  for (const worker of [false, true])
    for (const sending of ["sequential", "concurrent"] as const) {
      const r = await measure(ctx, n, worker, sending);
      const name = `${worker ? "with worker" : "worker: false"}, ${sending}`;
      ctx.log(`createBatch ${name}: ${Math.round(r.perSecond)} stored/s`);
      detail[`${worker ? "worker" : "noWorker"}.${sending}`] = r;
      metrics.push({
        key: `createBatch.${worker ? "worker" : "noWorker"}.${sending}`,
        label: `createBatch stored, ${name}`,
        value: r.perSecond,
        unit: "/s",
        throughput: true,
      });
    }
  return { metrics, detail };
}

interface Measured {
  perSecond: number;
  storedMs: number;
  commits: number;
  /** With a worker: from the first chunk until every instance completed. */
  completedMs?: number;
}

async function measure(ctx: SectionContext, n: number, worker: boolean, sending: Sending): Promise<Measured> {
  const bench = await openCairn(
    ctx.dir,
    ctx.synchronous,
    [{ binding: "W", name: WORKFLOW, class: ThreeSteps }],
    { worker },
  );
  const tracker = new Tracker(bench, WORKFLOW);
  try {
    await send(bench.cairn.runtime, ["warm-1", "warm-2"], "sequential");
    const ids = Array.from({ length: n }, (_, i) => `i${i}`);
    const done = worker ? ids.map((id) => tracker.when(id)) : [];
    const c0 = bench.commits();
    const start = performance.now();
    await send(bench.cairn.runtime, ids, sending);
    const storedMs = performance.now() - start;
    const commits = bench.commits() - c0;
    const r: Measured = { perSecond: round((n / storedMs) * 1000, 1), storedMs: round(storedMs), commits };
    if (worker) r.completedMs = round(Math.max(...(await Promise.all(done))) - start);
    return r;
  } finally {
    tracker.dispose();
    await bench.close();
  }
}

async function send(runtime: Runtime, ids: string[], sending: Sending): Promise<void> {
  const chunks: string[][] = [];
  for (let i = 0; i < ids.length; i += CHUNK) chunks.push(ids.slice(i, i + CHUNK));
  const create = (chunk: string[]) =>
    runtime.createBatch(
      WORKFLOW,
      chunk.map((id) => ({ id })),
    );
  if (sending === "concurrent") await Promise.all(chunks.map(create));
  else for (const chunk of chunks) await create(chunk);
}
