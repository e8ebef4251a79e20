/**
 * API latency while user code keeps its thread busy: `npm run bench:busy [-- --busy-ms 8000]
 * [-- --clients 1] [-- --no-save]`.
 *
 * Starts the real `cairn start` (from the sources) on a project whose only step busy-loops for
 * `--busy-ms` (timeout "2 seconds", no retries), creates an instance, and while the step spins
 * (between the step's "start" and "end" marks in a trace file) sends back-to-back API requests from
 * `--clients` loops: the instance's detail, the instance list and the workflow list. Reports the
 * latency of the requests sent during the busy window, for two layouts:
 * - `worker thread`: the default, the project's code in a worker thread (a SQLite file store);
 * - `one thread`: everything in one thread, as a `:memory:` store still runs (the layout before).
 * Writes bench/results/busy-<timestamp>.json and latest-busy.json.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gitCommit, machine, sqliteVersion } from "./lib/report.ts";
import { type Summary, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: {
    "busy-ms": { type: "string", default: "8000" },
    clients: { type: "string", default: "1" },
    "no-save": { type: "boolean", default: false },
  },
});
const busyMs = Number(values["busy-ms"]);
const clients = Number(values.clients);
const ROOT = join(import.meta.dirname, "..");

interface LayoutResult {
  layout: "worker thread" | "one thread";
  store: string;
  /** Requests answered during the busy window, with their latency in ms. */
  latency: Summary;
  /** How long the busy window lasted, ms (from the step's start mark to its end mark). */
  windowMs: number;
  /** The instance's stored outcome: the attempt overran its 2 s timeout. */
  outcome: unknown;
}

function project(dir: string, trace: string): void {
  writeFileSync(
    join(dir, "wrangler.json"),
    JSON.stringify({
      name: "busy",
      main: "index.ts",
      workflows: [{ binding: "BUSY", name: "busy", class_name: "Busy" }],
    }),
  );
  writeFileSync(
    join(dir, "index.ts"),
    `
      import { appendFileSync } from "node:fs";
      import { WorkflowEntrypoint, type WorkflowStep } from "cloudflare:workers";
      const mark = (line: string) => appendFileSync(${JSON.stringify(trace)}, line + "\\n");
      export class Busy extends WorkflowEntrypoint {
        async run(_event: unknown, step: WorkflowStep) {
          return step.do("spin", { timeout: "2 seconds", retries: { limit: 0, delay: 0 } }, async () => {
            mark("start " + Date.now());
            const end = Date.now() + ${busyMs};
            while (Date.now() < end) {}
            mark("end " + Date.now());
            return "spun";
          });
        }
      }
    `,
  );
}

async function measure(layout: LayoutResult["layout"]): Promise<LayoutResult> {
  const dir = mkdtempSync(join(tmpdir(), "cairn-bench-busy-"));
  const trace = join(dir, "trace.log");
  const store = layout === "one thread" ? ":memory:" : join(dir, ".cairn", "cairn.db");
  project(dir, trace);
  const child = spawn(
    process.execPath,
    [
      "--conditions=source",
      join(import.meta.dirname, "busy", "cli.ts"),
      "start",
      dir,
      "--port",
      "0",
      "--store",
      store,
      "--json",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const marks = () => (existsSync(trace) ? readFileSync(trace, "utf8").trim().split("\n") : []);
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        const m = /"url":\s*"([^"]+)"/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`cairn start exited with ${code}`)));
    });
    const api = `${url}/api/v1/workflows`;
    const samples: { at: number; ms: number }[] = [];
    const createdAt = Date.now();
    const createdT = performance.now();
    const created = (await (
      await fetch(`${api}/busy/instances`, {
        method: "POST",
        body: "{}",
        headers: { "content-type": "application/json" },
      })
    ).json()) as { result: { id: string } };
    samples.push({ at: createdAt, ms: performance.now() - createdT });
    const id = created.result.id;
    while (!marks().some((l) => l.startsWith("start"))) await new Promise((r) => setTimeout(r, 5));
    const paths = [`${api}/busy/instances/${id}`, `${api}/busy/instances`, api];
    let spinning = true;
    const loops = Array.from({ length: clients }, async (_, c) => {
      for (let i = c; spinning; i++) {
        const at = Date.now();
        const t = performance.now();
        const response = await fetch(paths[i % paths.length]!);
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`${paths[i % paths.length]} answered ${response.status}`);
        samples.push({ at, ms: performance.now() - t });
        if (marks().some((l) => l.startsWith("end"))) spinning = false;
      }
    });
    await Promise.all(loops);
    const start = Number(
      marks()
        .find((l) => l.startsWith("start"))!
        .split(" ")[1],
    );
    const end = Number(
      marks()
        .find((l) => l.startsWith("end"))!
        .split(" ")[1],
    );
    // Requests in flight at some time while the step spun (the create included: in one thread it
    // waits for the step it started).
    const during = samples.filter((s) => s.at < end && s.at + s.ms > start).map((s) => s.ms);
    let outcome: unknown;
    for (;;) {
      const detail = (await (await fetch(`${api}/busy/instances/${id}`)).json()) as {
        result: { status: string; error?: unknown };
      };
      if (detail.result.status === "errored" || detail.result.status === "complete") {
        outcome = { status: detail.result.status, error: detail.result.error };
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      layout,
      store: layout === "one thread" ? ":memory:" : "SQLite file",
      latency: summarize(during),
      windowMs: end - start,
      outcome,
    };
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    if (child.exitCode === null) child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const result = {
  date: new Date().toISOString(),
  command: `npm run bench:busy${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
  commit: gitCommit(),
  machine: machine(sqliteVersion()),
  busyMs,
  clients,
  loadAverage: { start: loadavg()[0]!, end: 0 },
  layouts: [] as LayoutResult[],
};
for (const layout of ["worker thread", "one thread"] as const) result.layouts.push(await measure(layout));
result.loadAverage.end = loadavg()[0]!;

const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "–");
console.log(
  `Cairn busy-step bench: ${result.machine.cpus} cores, Node ${result.machine.node}, a ${busyMs} ms busy step, ${clients} client loops, load ${result.loadAverage.start.toFixed(1)} → ${result.loadAverage.end.toFixed(1)}`,
);
for (const r of result.layouts)
  console.log(
    `${r.layout.padEnd(14)} API during the busy step: ${String(r.latency.n).padStart(6)} requests   p50 ${f(r.latency.p50)} ms   p99 ${f(r.latency.p99)} ms   max ${f(r.latency.max)} ms   outcome ${JSON.stringify(r.outcome)}`,
  );
if (!values["no-save"]) {
  const results = join(ROOT, "bench", "results");
  mkdirSync(results, { recursive: true });
  const stamp = result.date.replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
  const json = `${JSON.stringify(result, null, 2)}\n`;
  for (const file of [join(results, `busy-${stamp}.json`), join(results, "latest-busy.json")]) {
    writeFileSync(file, json);
    console.log(`wrote ${file}`);
  }
}
