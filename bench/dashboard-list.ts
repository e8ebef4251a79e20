/**
 * The dashboard's instance list against a large store: `node bench/dashboard-list.ts [--count N]`.
 * Inserts N instances (default 1,000,000) straight through the SQLite store in big transactions
 * (no execution: `worker: false`), then times the API requests the dashboard makes, through the
 * Hono app in process (`app.request`, no network). Prints figures only.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InstanceStatus } from "@cairn/core";
import { createApi } from "@cairn/server";
import { createCairn, WorkflowEntrypoint } from "cairnjs";

class Noop extends WorkflowEntrypoint {
  async run() {
    return null;
  }
}

const argv = process.argv.slice(2);
const countArg = argv.indexOf("--count");
const COUNT = countArg >= 0 ? Number(argv[countArg + 1]) : 1_000_000;
const BATCH = 50_000;
const PER_PAGE = 50;

/** Status mix: mostly complete, a few of everything else (errored is 1%). */
function statusOf(i: number): InstanceStatus {
  const r = i % 100;
  if (r === 0) return "errored";
  if (r < 3) return "waiting";
  if (r < 4) return "paused";
  if (r < 5) return "terminated";
  return "complete";
}

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `p50 ${q(0.5).toFixed(2)} ms · p95 ${q(0.95).toFixed(2)} ms · max ${s[s.length - 1]!.toFixed(2)} ms (${s.length} requests)`;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-bench-list-"));
  const cairn = await createCairn({
    store: join(dir, "list.db"),
    worker: false,
    workflows: [{ binding: "BIG", name: "big", class: Noop }],
  });
  try {
    const store = cairn.store;
    const params = new Uint8Array(0);
    const t0 = Date.UTC(2025, 0, 1);
    const insertStart = performance.now();
    for (let b = 0; b < COUNT; b += BATCH) {
      const rows = [];
      for (let i = b; i < Math.min(COUNT, b + BATCH); i++)
        rows.push({
          workflow: "big",
          id: `inst-${String(i).padStart(7, "0")}`,
          params,
          // Ten instances per millisecond share a timestamp: ties are broken by id.
          createdAt: t0 + Math.floor(i / 10),
          status: statusOf(i),
        });
      await store.instances.insertMany(rows);
    }
    const insertSeconds = (performance.now() - insertStart) / 1000;
    console.log(
      `inserted ${COUNT.toLocaleString()} instances in ${insertSeconds.toFixed(1)} s ` +
        `(${Math.round(COUNT / insertSeconds).toLocaleString()}/s, transactions of ${BATCH.toLocaleString()})`,
    );

    const app = createApi({ runtime: cairn.runtime });
    const get = async (path: string) => {
      const start = performance.now();
      const res = await app.request(`/api/v1${path}`);
      const body = (await res.json()) as { result: { id: string }[]; result_info?: { cursor?: string } };
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
      return { ms: performance.now() - start, body };
    };
    const repeat = async (path: string, n = 20) => {
      await get(path); // warm
      const times: number[] = [];
      for (let i = 0; i < n; i++) times.push((await get(path)).ms);
      return times;
    };
    /** Follows cursors for `pages` pages; returns each page's latency and the ids seen. */
    const walk = async (query: string, pages: number) => {
      const times: number[] = [];
      const ids = new Set<string>();
      let cursor: string | undefined;
      for (let p = 0; p < pages; p++) {
        const { ms, body } = await get(
          `/workflows/big/instances?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        );
        times.push(ms);
        for (const r of body.result) {
          if (ids.has(r.id)) throw new Error(`duplicate ${r.id} on page ${p + 1}`);
          ids.add(r.id);
        }
        cursor = body.result_info?.cursor;
        if (!cursor) break;
      }
      return { times, ids };
    };

    const line = (what: string, text: string) => console.log(`${what.padEnd(44)} ${text}`);
    line("overview GET /workflows (counts)", stats(await repeat("/workflows", 10)));
    line(
      `first page, newest first (${PER_PAGE})`,
      stats(await repeat(`/workflows/big/instances?per_page=${PER_PAGE}`)),
    );
    line(
      "first page, oldest first",
      stats(await repeat(`/workflows/big/instances?per_page=${PER_PAGE}&direction=asc`)),
    );
    const deep = await walk(`per_page=${PER_PAGE}`, 400);
    line(`pages 1-400 by cursor (${deep.ids.size.toLocaleString()} rows)`, stats(deep.times));
    const errored = await walk(`per_page=${PER_PAGE}&status=errored`, 200);
    line(`status=errored (1%), pages 1-200`, stats(errored.times));
    const mid = new Date(t0 + COUNT / 20).toISOString();
    line(
      "date range (second half), first page",
      stats(
        await repeat(`/workflows/big/instances?per_page=${PER_PAGE}&date_start=${encodeURIComponent(mid)}`),
      ),
    );
    line(
      "id search (substring), first page",
      stats(await repeat(`/workflows/big/instances?per_page=${PER_PAGE}&search=0424`, 5)),
    );
    line(
      "id search matching nothing (full scan)",
      stats(await repeat(`/workflows/big/instances?per_page=${PER_PAGE}&search=nomatch`, 3)),
    );
    const last = await get(`/workflows/big/instances?per_page=${PER_PAGE}&direction=asc`);
    line("(check) oldest instance", last.body.result[0]!.id);
  } finally {
    await cairn.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
