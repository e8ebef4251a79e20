/**
 * Sandboxes bench: `npm run bench:sandbox [-- --quick] [-- --no-save]`.
 * (a) cold start: getSandbox → first `exec("true")` answered, a new sandbox each time (jail,
 *     supervisor, session shell); (b) `exec("true")` round trip in a warm sandbox's session, and
 *     without a session (a fresh `bash -c` per call); (c) 50 sandboxes started at once: wall time
 *     until all answered, and the RSS of their jails (every process of each jail) plus Cairn's.
 * Writes `bench/results/sandbox-<date>.json` and `latest-sandbox.json`.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createObjectHost } from "@cairn/objects";
import {
  configureSandboxes,
  getSandbox,
  listJails,
  probeIsolation,
  Sandbox,
  stopAllJails,
} from "@cairn/sandbox";
import { gitCommit, machine, sqliteVersion } from "./lib/report.ts";
import { summarize } from "./lib/stats.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const save = !argv.includes("--no-save");
const log = (m: string) => process.stderr.write(`  ${m}\n`);
const ms = (n: number) => Math.round(n * 100) / 100;

const root = mkdtempSync(join(tmpdir(), "cairn-bench-sandbox-"));
configureSandboxes({ dir: join(root, "sandboxes") });
const host = createObjectHost({ dir: join(root, "do"), objects: [{ binding: "Sandbox", class: Sandbox }] });
const ns = host.namespaces.Sandbox as never;

/** RSS, PSS and private memory (bytes) of `pids` and all their descendants. */
function treeRss(pids: number[]): { rss: number; pss: number; private: number } {
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  const set = new Set(pids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [p, pp] of parent)
      if (!set.has(p) && set.has(pp)) {
        set.add(p);
        grew = true;
      }
  }
  const sum = { rss: 0, pss: 0, private: 0 };
  for (const p of set) {
    try {
      const t = readFileSync(`/proc/${p}/smaps_rollup`, "utf8");
      const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(t)?.[1] ?? 0) * 1024;
      sum.rss += kb("Rss");
      sum.pss += kb("Pss");
      sum.private += kb("Private_Clean") + kb("Private_Dirty");
    } catch {}
  }
  return sum;
}

async function main() {
  const probe = await probeIsolation();
  if (!probe.ok) throw new Error(`isolation unavailable: ${probe.reason}`);
  log(`driver ${probe.driver}, cgroup mode ${probe.cgroup}`);

  // (a) cold start
  const coldN = quick ? 5 : 20;
  const cold: number[] = [];
  for (let i = 0; i < coldN; i++) {
    const t0 = performance.now();
    const sb = getSandbox(ns, `cold-${i}`);
    await sb.exec("true");
    cold.push(performance.now() - t0);
    await sb.destroy();
  }
  const coldS = summarize(cold);
  log(`cold start: p50 ${ms(coldS.p50)} ms, p99 ${ms(coldS.p99)} ms (n=${coldN})`);

  // (b) exec("true") round trip
  const warm = getSandbox(ns, "warm");
  await warm.exec("true");
  const n = quick ? 200 : 1000;
  const rt: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await warm.exec("true");
    rt.push(performance.now() - t0);
  }
  const rtS = summarize(rt);
  log(`exec("true") in a session: p50 ${ms(rtS.p50)} ms, p99 ${ms(rtS.p99)} ms (n=${n})`);
  const fresh = getSandbox(ns, "fresh", { enableDefaultSession: false });
  await fresh.exec("true");
  const rt2: number[] = [];
  for (let i = 0; i < n / 2; i++) {
    const t0 = performance.now();
    await fresh.exec("true");
    rt2.push(performance.now() - t0);
  }
  const rt2S = summarize(rt2);
  log(`exec("true") without a session: p50 ${ms(rt2S.p50)} ms, p99 ${ms(rt2S.p99)} ms (n=${n / 2})`);
  await stopAllJails();

  // (c) 50 at once
  const many = 50;
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const sandboxes = Array.from({ length: many }, (_, i) => getSandbox(ns, `many-${i}`));
  await Promise.all(sandboxes.map((s) => s.exec("true")));
  const startAll = performance.now() - t0;
  const jails = listJails();
  const jailRss = treeRss(jails.map((j) => j.jail.pid));
  const cairnRss = process.memoryUsage().rss;
  const mib = (b: number) => Math.round(b / 2 ** 20);
  log(
    `${many} at once: all answered after ${ms(startAll)} ms; jails' RSS ${mib(jailRss.rss)} MiB ` +
      `(${mib(jailRss.rss / many)} MiB each; PSS ${mib(jailRss.pss / many)} MiB, private ${mib(jailRss.private / many)} MiB each), ` +
      `Cairn's RSS ${mib(cairnRss)} MiB (+${mib(cairnRss - rssBefore)} MiB)`,
  );
  await stopAllJails();
  await host.close();
  rmSync(root, { recursive: true, force: true });

  const result = {
    date: new Date().toISOString(),
    commit: gitCommit(),
    machine: machine(sqliteVersion()),
    load: loadavg(),
    driver: probe.driver,
    cgroup: probe.cgroup,
    coldStartMs: { ...coldS, p50: ms(coldS.p50), p99: ms(coldS.p99) },
    execTrueSessionMs: { ...rtS, p50: ms(rtS.p50), p99: ms(rtS.p99) },
    execTrueNoSessionMs: { ...rt2S, p50: ms(rt2S.p50), p99: ms(rt2S.p99) },
    fiftyAtOnce: {
      count: many,
      allAnsweredMs: ms(startAll),
      jailsRssBytes: jailRss.rss,
      perJailRssBytes: Math.round(jailRss.rss / many),
      perJailPssBytes: Math.round(jailRss.pss / many),
      perJailPrivateBytes: Math.round(jailRss.private / many),
      cairnRssBytes: cairnRss,
    },
  };
  console.log(JSON.stringify(result, null, 2));
  if (save) {
    const dir = join(import.meta.dirname, "results");
    mkdirSync(dir, { recursive: true });
    const stamp = result.date.replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
    writeFileSync(
      join(dir, `sandbox-${stamp}${quick ? "-quick" : ""}.json`),
      `${JSON.stringify(result, null, 2)}\n`,
    );
    if (!quick) writeFileSync(join(dir, "latest-sandbox.json"), `${JSON.stringify(result, null, 2)}\n`);
  }
}

await main();
