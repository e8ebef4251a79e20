/**
 * The cost of CPU accounting and metrics (issue 17): `npm run bench -- --cost [--quick] [--no-save]`.
 *
 * The burst rate (2,000 concurrent `create()` of the 3-step workflow) and the unloaded
 * create→complete p50 (1,000 instances one at a time), each measured in rounds with accounting and
 * metrics *on* (the CPU meter around every segment of instance code, Prometheus telemetry fed by
 * every stored entry and store transaction, and a scrape of the text format before each Cairn closes) and
 * *off* (the meter's `open`/`close` made no-ops and no telemetry: Cairn itself has no switch, so the
 * benchmark patches the thread's meter). The two alternate which goes first in each round; the
 * figure is the median over rounds. The burst's CPU time per instance (the process's user + system
 * time) is reported too: less exposed to other work on the machine than the wall-clock rate. The cost is (off − on) / off for the rate and (on − off) / off
 * for the latency; the target is under 5 %. Writes `bench/results/cost-<stamp>.json` and, for a full
 * run, `bench/results/latest-cost.json`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cpuMeter } from "@cairn/runtime";
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
  samples: Record<Synchronous, Record<Setting, Figures>>;
}

/** Under 5 % (issue 17). */
export const COST_TARGET_PERCENT = 5;

const log = (message: string) => process.stderr.write(`  ${message}\n`);

const realMeter = { open: cpuMeter.open, close: cpuMeter.close };

/**
 * Turns accounting and metrics on or off for the Cairns opened from now on; returns the CPU ms
 * their runs recorded.
 */
function use(setting: Setting): { cpuMs(): number } {
  if (setting === "on") {
    delete (cpuMeter as Partial<typeof realMeter>).open;
    delete (cpuMeter as Partial<typeof realMeter>).close;
  } else {
    // Own properties shadow the class's methods: every segment costs nothing and counts nothing.
    Object.assign(cpuMeter, { open: () => 0, close: () => 0 });
  }
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

async function measure(ctx: SectionContext, setting: Setting, into: Figures): Promise<void> {
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

/** A figure's medians off and on, and how much worse on is (a rate lower, a time higher), in %. */
function costRow(
  synchronous: Synchronous,
  figure: CostRow["figure"],
  unit: CostRow["unit"],
  offs: number[],
  ons: number[],
): CostRow {
  const off = median(offs);
  const on = median(ons);
  const cost = ((unit === "/s" ? off - on : on - off) / off) * 100;
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
  const rounds = options.quick ? 3 : 11;
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
    Object.assign(cpuMeter, realMeter);
    delete (cpuMeter as Partial<typeof realMeter>).open;
    delete (cpuMeter as Partial<typeof realMeter>).close;
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
  return lines.join("\n");
}

/** Writes `bench/results/cost-<stamp>.json` (`-partial` when quick) and, for a full run, `latest-cost.json`. */
export function saveCost(r: CostResult): string[] {
  return saveResults("cost", r, !r.quick);
}
