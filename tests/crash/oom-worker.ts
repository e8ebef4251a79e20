/**
 * A Cairn process whose workflow kills it: `node --max-old-space-size=32 oom-worker.ts '<config>'`.
 *
 * It opens `<dir>/cairn.db` (or a PostgreSQL schema); the first time (no instances yet) it creates a few `bystander` instances
 * and one `hog`, whose step "eat" allocates until the heap limit aborts the process: synchronously
 * (never yielding to the event loop) or with a timer between chunks, as `mode` says. It prints
 * `{"event":"ready"}` once started and `{"event":"final", rows}` (then exits 0) once every instance
 * has ended.
 */
import { join } from "node:path";
import { createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";

export interface OomWorkerConfig {
  dir: string;
  /** A `postgres://…?schema=…` URL instead of `<dir>/cairn.db`. */
  url?: string;
  mode: "sync" | "async";
  /** `retries.limit` of the step that allocates. */
  limit: number;
  bystanders: number;
}

const config = JSON.parse(process.argv[2]!) as OomWorkerConfig;
const emit = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Hog extends WorkflowEntrypoint<unknown, { mode: "sync" | "async"; limit: number }> {
  async run(event: WorkflowEvent<{ mode: "sync" | "async"; limit: number }>, step: WorkflowStep) {
    await step.do("prepare", async () => "ready");
    const { mode, limit } = event.payload;
    await step.do("eat", { retries: { limit, delay: 50, backoff: "constant" } }, async () => {
      const heap: number[][] = [];
      for (;;) {
        heap.push(new Array(100_000).fill(heap.length));
        if (mode === "async") await pause(1);
      }
    });
    return "unreachable";
  }
}

class Bystander extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    let n = 0;
    for (let i = 0; i < 5; i++)
      n += await step.do(`s${i}`, async () => {
        await pause(20);
        return 1;
      });
    return n;
  }
}

const cairn = await createCairn({
  store: config.url ?? join(config.dir, "cairn.db"),
  // On PostgreSQL the next process takes over once the dead one's lease has expired.
  leaseMs: 1000,
  pollMs: 100,
  workflows: [
    { binding: "HOG", name: "hog", class: Hog },
    { binding: "BYSTANDER", name: "bystander", class: Bystander },
  ],
  defaultRetryDelay: 100,
  log: (message, error) => emit({ event: "engine-log", message, error: String(error) }),
});
const rt = cairn.runtime;
emit({ event: "ready", pid: process.pid });

const ids = Array.from({ length: config.bystanders }, (_, i) => `b${i}`);
if ((await rt.store.instances.get("hog", "hog")) === undefined) {
  for (const id of ids) await rt.create("bystander", { id });
  await rt.create("hog", { id: "hog", params: { mode: config.mode, limit: config.limit } });
}

const FINAL = ["complete", "errored", "terminated"];
for (;;) {
  const rows = await Promise.all([
    rt.instance("hog", "hog"),
    ...ids.map((id) => rt.instance("bystander", id)),
  ]);
  if (rows.every((r) => FINAL.includes(r.status))) {
    emit({ event: "final", rows: rows.map((r) => ({ id: r.id, status: r.status, error: r.error })) });
    await cairn.close();
    process.exit(0);
  }
  await pause(20);
}
