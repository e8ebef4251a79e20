/**
 * The cost of CPU accounting and metrics (issue 17): `npm run bench -- --cost [--quick] [--no-save]`.
 *
 * The burst rate (2,000 concurrent `create()` of the 3-step workflow) and the unloaded
 * create→complete p50 (1,000 instances one at a time), each measured in rounds with accounting and
 * metrics *on* (the CPU meter around every segment of instance code, Prometheus telemetry fed by
 * every stored entry and store transaction, and a scrape of the text format before each Cairn closes) and
 * *off* (the meter's `open`/`close` made no-ops and no telemetry: Cairn itself has no switch, so the
 * benchmark patches the thread's meter). The two alternate which goes first in each round; the
 * figure is the median over rounds, and the cost is balanced over the two orders (see `costRow`); a
 * full garbage collection precedes every measurement. The burst's CPU time per instance (the process's user + system
 * time) is reported too: less exposed to other work on the machine than the wall-clock rate. The cost is (off − on) / off for the rate and (on − off) / off
 * for the latency; the target is under 5 %. Writes `bench/results/cost-<stamp>.json` and, for a full
 * run, `bench/results/latest-cost.json`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { CpuMeter } from "@cairn/runtime";
import { prometheusFor } from "@cairn/server";
import { setOpenHook } from "./lib/cairn.ts";
import { MODES, type SectionContext, type Synchronous } from "./lib/metrics.ts";
import { gitCommit, machine, saveResults, sqliteVersion } from "./lib/report.ts";
import { median, round } from "./lib/stats.ts";
import { burstRate } from "./sqlite/burst.ts";
import { latency } from "./sqlite/latency.ts";

export interface CostOptions {
  quick: boolean;
  save: boolean;
  dir?: string;
  command: string;
}

type Setting = "on" | "off";

interface Figures {
  burstPerSecond: number[];
  /** The process's CPU time (user + system) per instance over the burst and its warm-up, µs. */
  burstCpuUs: number[];
  latencyP50Ms: number[];
  /** CPU ms the runs recorded for their instances (0 when off: proves the meter was patched). */
  cpuMs: number[];
}

export interface CostRow {
  synchronous: Synchronous;
  figure: "burst create()" | "burst CPU per instance" | "unloaded p50";
  unit: "/s" | "µs" | "ms";
  off: number;
  on: number;
  /** How much worse `on` is, in % of `off`. */
  costPercent: number;
  ok: boolean;
}

export interface CostResult {
  date: string;
  command: string;
  commit?: string;
  machine: ReturnType<typeof machine>;
  quick: boolean;
  rounds: number;
  seconds: number;
  loadAverage: { start: number; end: number };
  rows: CostRow[];
  /**
   * From a CPU profile of one more burst with accounting and metrics on: the share (%) of the
   * profile's samples whose own code is the meter (runtime's telemetry.js), Cairn's Prometheus
   * telemetry (server's prometheus.js) or prom-client. Unlike the timed rows, barely moved by other
   * work on the machine; it leaves out the garbage their allocations add.
   */
  profiled: Record<Synchronous, { percent: number; byPart: Record<string, number> }>;
  samples: Record<Synchronous, Record<Setting, Figures>>;
}

/** Under 5 % (issue 17). */
export const COST_TARGET_PERCENT = 5;

const log = (message: string) => process.stderr.write(`  ${message}\n`);

/**
 * The meter's methods as the class defines them. "Off" swaps them on the prototype: own properties
 * on the instance (or deleting them again) would turn the meter into a dictionary-mode object, and
 * every later "on" round would then run a meter several times slower than Cairn's.
 */
const realMeter = { open: CpuMeter.prototype.open, close: CpuMeter.prototype.close };
const noMeter = { open: () => 0, close: () => 0 };

/**
 * Turns accounting and metrics on or off for the Cairns opened from now on; returns the CPU ms
 * their runs recorded.
 */
function use(setting: Setting): { cpuMs(): number } {
  // Off: every segment costs nothing and counts nothing.
  Object.assign(CpuMeter.prototype, setting === "on" ? realMeter : noMeter);
  let cpuMs = 0;
  setOpenHook((cairn) => {
    cairn.runtime.addTelemetry({ ran: (_w, cpu) => void (cpuMs += cpu) });
    if (setting === "on") {
      const metrics = prometheusFor(cairn.runtime);
      // A scrape before the Cairn closes: the gauges read the store and the runs in memory too.
      const close = cairn.close.bind(cairn);
      cairn.close = async () => {
        await metrics.text();
        await close();
      };
    }
  });
  return { cpuMs: () => cpuMs };
}

/**
 * A full garbage collection, so that neither setting pays for the garbage the other left (without
 * it, the second measurement of a round was up to 20 % slower than the first, whichever it was).
 */
const collectGarbage: () => void = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

async function measure(ctx: SectionContext, setting: Setting, into: Figures): Promise<void> {
  collectGarbage();
  const { cpuMs } = use(setting);
  const n = ctx.quick ? 500 : 2000;
  const cpu0 = process.cpuUsage();
  const burst = await burstRate(ctx, "create", n, 1);
  const cpu = process.cpuUsage(cpu0);
  // burstRate runs a warm-up of n / 5 first; both open and close a database, counted here too.
  into.burstCpuUs.push(round((cpu.user + cpu.system) / (n + Math.ceil(n / 5)), 1));
  const lat = await latency(ctx, ctx.quick ? 200 : 1000);
  into.burstPerSecond.push(burst.perSecond);
  into.latencyP50Ms.push(lat.metrics.find((m) => m.key === "latency.p50")!.value);
  into.cpuMs.push(round(cpuMs(), 1));
  setOpenHook(undefined);
}

/** Which part of the accounting and metrics code a profile frame's script is, if any. */
function partOf(url: string): string | undefined {
  if (/runtime\/(dist|src)\/telemetry\.[jt]s$/.test(url)) return "CPU meter";
  if (/server\/(dist|src)\/prometheus\.[jt]s$/.test(url)) return "Cairn's Prometheus telemetry";
  if (url.includes("/node_modules/prom-client/")) return "prom-client";
  return undefined;
}

/** A burst with accounting and metrics on under the CPU profiler; the parts' share of its samples. */
async function profile(ctx: SectionContext, n: number): Promise<CostResult["profiled"][Synchronous]> {
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 100 });
    collectGarbage();
    use("on");
    await session.post("Profiler.start");
    try {
      await burstRate(ctx, "create", n, 1);
    } finally {
      setOpenHook(undefined);
    }
    const { profile } = await session.post("Profiler.stop");
    const part = new Map<number, string | undefined>();
    for (const node of profile.nodes) part.set(node.id, partOf(node.callFrame.url));
    const byPart: Record<string, number> = {};
    const samples = profile.samples ?? [];
    for (const id of samples) {
      const p = part.get(id);
      if (p) byPart[p] = (byPart[p] ?? 0) + 1;
    }
    let total = 0;
    for (const [p, count] of Object.entries(byPart)) {
      total += count;
      byPart[p] = round((count / samples.length) * 100, 2);
    }
    return { percent: round((total / samples.length) * 100, 2), byPart };
  } finally {
    session.disconnect();
  }
}

/**
 * A figure's medians off and on, and how much worse on is (a rate lower, a time higher), in %. The
 * cost is taken round by round (each round measures both settings back to back) and balanced over
 * the two orders: the mean of the median cost of the rounds that measured "off" first and that of
 * the rounds that measured "on" first, so whatever the first measurement of a round leaves to the
 * second counts equally for and against.
 */
function costRow(
  synchronous: Synchronous,
  figure: CostRow["figure"],
  unit: CostRow["unit"],
  offs: number[],
  ons: number[],
): CostRow {
  const off = median(offs);
  const on = median(ons);
  const paired = offs.map((o, r) => ((unit === "/s" ? o - ons[r]! : ons[r]! - o) / o) * 100);
  const byOrder = [0, 1].map((first) => median(paired.filter((_, r) => r % 2 === first)));
  const cost = (byOrder[0]! + byOrder[1]!) / 2;
  return {
    synchronous,
    figure,
    unit,
    off: round(off, 4),
    on: round(on, 4),
    costPercent: round(cost, 2),
    ok: cost < COST_TARGET_PERCENT,
  };
}

export async function runCost(options: CostOptions): Promise<CostResult> {
  const started = performance.now();
  // Even: as many rounds measure "off" first as "on" first.
  const rounds = options.quick ? 4 : 12;
  const result: CostResult = {
    date: new Date().toISOString(),
    command: options.command,
    commit: gitCommit(),
    machine: machine(sqliteVersion()),
    quick: options.quick,
    rounds,
    seconds: 0,
    loadAverage: { start: loadavg()[0]!, end: 0 },
    rows: [],
    profiled: {} as CostResult["profiled"],
    samples: {} as CostResult["samples"],
  };
  try {
    for (const synchronous of MODES) {
      const dir = mkdtempSync(join(options.dir ?? tmpdir(), `cairn-cost-${synchronous.toLowerCase()}-`));
      const ctx: SectionContext = { dir, synchronous, quick: options.quick, log: () => {} };
      const figures: Record<Setting, Figures> = {
        on: { burstPerSecond: [], burstCpuUs: [], latencyP50Ms: [], cpuMs: [] },
        off: { burstPerSecond: [], burstCpuUs: [], latencyP50Ms: [], cpuMs: [] },
      };
      try {
        for (let r = 0; r < rounds; r++) {
          const order: Setting[] = r % 2 === 0 ? ["off", "on"] : ["on", "off"];
          for (const setting of order) await measure(ctx, setting, figures[setting]);
          log(
            `synchronous=${synchronous} round ${r + 1}/${rounds}: burst off ${Math.round(figures.off.burstPerSecond.at(-1)!)} on ${Math.round(figures.on.burstPerSecond.at(-1)!)} /s, p50 off ${figures.off.latencyP50Ms.at(-1)!.toFixed(3)} on ${figures.on.latencyP50Ms.at(-1)!.toFixed(3)} ms`,
          );
        }
        result.profiled[synchronous] = await profile(ctx, ctx.quick ? 500 : 2000);
        log(`synchronous=${synchronous} profiled: ${JSON.stringify(result.profiled[synchronous])}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      for (const f of [figures.off, figures.on])
        if (f === figures.off ? f.cpuMs.some((x) => x !== 0) : f.cpuMs.every((x) => x === 0))
          throw new Error(
            "bench: the CPU meter was not switched as asked (a second copy of @cairn/runtime?)",
          );
      result.samples[synchronous] = figures;
      result.rows.push(
        costRow(synchronous, "burst create()", "/s", figures.off.burstPerSecond, figures.on.burstPerSecond),
        costRow(synchronous, "burst CPU per instance", "µs", figures.off.burstCpuUs, figures.on.burstCpuUs),
        costRow(synchronous, "unloaded p50", "ms", figures.off.latencyP50Ms, figures.on.latencyP50Ms),
      );
    }
  } finally {
    Object.assign(CpuMeter.prototype, realMeter);
    setOpenHook(undefined);
  }
  result.seconds = round((performance.now() - started) / 1000, 1);
  result.loadAverage.end = loadavg()[0]!;
  return result;
}

export function renderCost(r: CostResult): string {
  const m = r.machine;
  const lines = [
    `\nCairn cost of CPU accounting and metrics — ${r.command}`,
    `${m.cpus} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, SQLite ${m.sqlite}; ${r.rounds} rounds, ${Math.round(r.seconds)} s, load average ${r.loadAverage.start.toFixed(1)} → ${r.loadAverage.end.toFixed(1)}`,
    "",
    "| synchronous | figure | off | on | cost | under 5 % |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const row of r.rows)
    lines.push(
      `| ${row.synchronous} | ${row.figure} | ${row.off} ${row.unit} | ${row.on} ${row.unit} | ${row.costPercent.toFixed(1)} % | ${row.ok ? "✓" : "✗"} |`,
    );
  lines.push(
    "",
    "Share of a CPU profile of one more burst (on) spent in the meter, Cairn's Prometheus telemetry and prom-client:",
  );
  for (const [mode, p] of Object.entries(r.profiled))
    lines.push(
      `- ${mode}: ${p.percent.toFixed(2)} % (${Object.entries(p.byPart)
        .map(([part, pct]) => `${part} ${pct.toFixed(2)} %`)
        .join(", ")})`,
    );
  return lines.join("\n");
}

/** Writes `bench/results/cost-<stamp>.json` (`-partial` when quick) and, for a full run, `latest-cost.json`. */
export function saveCost(r: CostResult): string[] {
  return saveResults("cost", r, !r.quick);
}
