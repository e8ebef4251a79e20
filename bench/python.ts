/**
 * Python workflows beside TypeScript ones: `npm run bench:python [-- --burst 300] [-- --samples 40]`.
 *
 * A 3-step workflow, run (a) in Python through the worker protocol (version 2) (a real `python3 -m cairn_worker`
 * against a real server on a SQLite file), and (b) as the same TypeScript workflow in-process. For
 * each: a burst of `--burst` instances created at once (instances per second, from the first
 * create to the last completion), and the unloaded latency of one instance at a time (create →
 * complete, p50 over `--samples`). Writes bench/results/python-<timestamp>.json and
 * latest-python.json.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RemoteWorkers } from "@cairn/runtime";
import { createApi, startServer } from "@cairn/server";
import { type Cairn, createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { gitCommit } from "./lib/report.ts";
import { roundSummary, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: {
    burst: { type: "string", default: "300" },
    samples: { type: "string", default: "40" },
    "no-save": { type: "boolean", default: false },
  },
});
const burst = Number(values.burst);
const samples = Number(values.samples);
const ROOT = join(import.meta.dirname, "..");

class ThreeSteps extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    const one = await step.do("one", async () => 1);
    const two = await step.do("two", async () => one + 1);
    return await step.do("three", async () => two + 1);
  }
}

async function waitAll(cairn: Cairn, ids: string[]): Promise<void> {
  const pending = new Set(ids);
  await new Promise<void>((resolve) => {
    const off = cairn.runtime.onChange((_w, id, status) => {
      if (status === "complete" && pending.delete(id) && pending.size === 0) {
        off();
        resolve();
      }
    });
    if (pending.size === 0) resolve();
  });
}

async function measure(cairn: Cairn, tag: string) {
  // Warm up.
  const warm = await Promise.all(Array.from({ length: 5 }, () => cairn.runtime.create("three")));
  await waitAll(cairn, warm);
  const t0 = performance.now();
  const done = new Set<string>();
  const finished = new Promise<void>((resolve) => {
    const off = cairn.runtime.onChange((_w, id, status) => {
      if (status === "complete" && id.startsWith(`${tag}-b-`)) done.add(id);
      if (done.size === burst) {
        off();
        resolve();
      }
    });
  });
  await Promise.all(
    Array.from({ length: burst }, (_, i) => cairn.runtime.create("three", { id: `${tag}-b-${i}` })),
  );
  await finished;
  const burstMs = performance.now() - t0;
  const lat: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    const id = `${tag}-s-${i}`;
    const p = waitAll(cairn, [id]);
    await cairn.runtime.create("three", { id });
    await p;
    lat.push(performance.now() - t);
  }
  return { instancesPerSecond: Math.round((burst / burstMs) * 1000), unloaded: roundSummary(summarize(lat)) };
}

async function python() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-bench-py-"));
  const workers = new RemoteWorkers({
    workflows: [{ name: "three", className: "ThreeSteps" }],
    log: () => {},
  });
  const cairn = await createCairn({
    store: join(dir, "cairn.db"),
    workflows: workers.definitions().map((d) => ({ ...d, binding: "THREE" })),
  });
  workers.attach(cairn.runtime);
  const server = await startServer({ app: createApi({ runtime: cairn.runtime, workers }), port: 0 });
  const child: ChildProcess = spawn(
    process.env.CAIRN_PYTHON ?? "python3",
    [
      "-m",
      "cairn_worker",
      join(ROOT, "bench/python/flows.py"),
      "--server",
      server.url,
      "--concurrency",
      "64",
    ],
    {
      env: {
        ...process.env,
        PYTHONPATH: join(ROOT, "python"),
        CAIRN_WORKFLOWS: JSON.stringify([{ name: "three", class_name: "ThreeSteps" }]),
      },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  child.stderr?.on("data", (d) => process.stderr.write(d));
  try {
    return await measure(cairn, "py");
  } finally {
    child.kill("SIGKILL");
    workers.close();
    await server.close();
    await cairn.close();
  }
}

async function typescript() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-bench-ts-"));
  const cairn = await createCairn({
    store: join(dir, "cairn.db"),
    workflows: [{ name: "three", binding: "THREE", class: ThreeSteps }],
  });
  try {
    return await measure(cairn, "ts");
  } finally {
    await cairn.close();
  }
}

const py = await python();
const ts = await typescript();
const result = {
  bench: "python",
  at: new Date().toISOString(),
  commit: gitCommit(),
  load: loadavg().map((l) => Math.round(l * 100) / 100),
  burst,
  samples,
  python: py,
  typescript: ts,
};
console.log(
  `3-step instances, burst of ${burst}: Python ${py.instancesPerSecond} inst/s, TypeScript ${ts.instancesPerSecond} inst/s`,
);
console.log(`unloaded create→complete p50: Python ${py.unloaded.p50} ms, TypeScript ${ts.unloaded.p50} ms`);
console.log(`load average: ${result.load.join(" ")}`);
if (!values["no-save"]) {
  const out = join(ROOT, "bench/results");
  mkdirSync(out, { recursive: true });
  const stamp = result.at.replace(/[:.]/g, "-");
  writeFileSync(join(out, `python-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(out, "latest-python.json"), `${JSON.stringify(result, null, 2)}\n`);
}
process.exit(0);
