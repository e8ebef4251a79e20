/**
 * Durable Objects bench: `npm run bench:objects [-- --quick] [-- --no-save]` (also run by `npm run bench`).
 * (a) RPC round trip on one object (a KV write per call): sequential latency, then throughput with
 *     100 calls in flight; (b) the same across 1,000 objects; (c) WebSocket message round trip over
 *     loopback (a `ws` client, a hibernatable object echoing); (d) idle objects with open sockets:
 *     real loopback connections as many as the file-descriptor limit allows, and 100,000 objects
 *     with in-process WebSocketPair sockets; RSS per object after they all hibernated.
 * Writes `bench/results/objects-<date>.json` and `latest-objects.json`.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  type WebSocket as CairnWebSocket,
  createObjectHost,
  DurableObject,
  type ObjectHost,
  Response,
  upgradeListener,
  WebSocketPair,
} from "@cairn/objects";
import WsClient from "ws";
import { gitCommit, machine, sqliteVersion } from "./lib/report.ts";
import { summarize } from "./lib/stats.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const save = !argv.includes("--no-save");
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
/** `--synchronous NORMAL` measures objects with SQLite's NORMAL durability (FULL by default). */
const synchronous = (flag("--synchronous") ?? "FULL").toUpperCase() as "FULL" | "NORMAL";
/** `--only a,b` runs some sections (a RPC one object, b 1,000 objects, c WebSocket, d real sockets, e pairs). */
const only = new Set((flag("--only") ?? "a,b,c,d,e").split(","));
const log = (m: string) => process.stderr.write(`  ${m}\n`);

class Counter extends DurableObject {
  increment(): number {
    const n = (this.ctx.storage.kv.get<number>("n") ?? 0) + 1;
    this.ctx.storage.kv.put("n", n);
    return n;
  }
  override async fetch(request: Request): Promise<Response> {
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    if (new URL(request.url).searchParams.has("attach")) server.serializeAttachment({ joined: Date.now() });
    return new Response(null, { status: 101, webSocket: client });
  }
  override webSocketMessage(ws: CairnWebSocket, message: string | ArrayBuffer): void {
    ws.send(message);
  }
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();
const rssMiB = () => {
  gc();
  gc();
  return process.memoryUsage().rss / 2 ** 20;
};
const ms = (t0: number) => performance.now() - t0;

function open(dir: string, idleTimeoutMs = 10_000): ObjectHost {
  return createObjectHost({
    dir,
    objects: [{ binding: "C", class: Counter }],
    idleTimeoutMs,
    synchronous,
    log: () => {},
  });
}

/** Runs `total` calls with `inFlight` at a time; returns per-call latencies and calls/s. */
async function load(total: number, inFlight: number, call: (i: number) => Promise<unknown>) {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) {
        const i = next++;
        const t = performance.now();
        await call(i);
        latencies.push(ms(t));
      }
    }),
  );
  return { perSecond: total / (ms(t0) / 1000), latency: summarize(latencies) };
}

async function rpcOneObject(dir: string) {
  const host = open(join(dir, "a"));
  const stub = host.namespaces.C!.getByName("one") as any;
  await stub.increment();
  const sequential = await load(quick ? 300 : 2000, 1, () => stub.increment());
  const concurrent = await load(quick ? 1000 : 10_000, 100, () => stub.increment());
  await host.close();
  return {
    sequentialMs: sequential.latency,
    throughputPerSecond: concurrent.perSecond,
    concurrentMs: concurrent.latency,
  };
}

async function rpcManyObjects(dir: string) {
  const host = open(join(dir, "b"));
  const ns = host.namespaces.C!;
  const n = 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => (ns.getByName(`o${i}`) as any).increment()));
  const firstCallsSeconds = ms(t0) / 1000;
  const stubs = Array.from({ length: n }, (_, i) => ns.getByName(`o${i}`) as any);
  const concurrent = await load(quick ? 2000 : 20_000, 100, (i) => stubs[(i * 7919) % n].increment());
  await host.close();
  return {
    objects: n,
    firstCallsPerSecond: n / firstCallsSeconds,
    throughputPerSecond: concurrent.perSecond,
    concurrentMs: concurrent.latency,
  };
}

async function serve(host: ObjectHost) {
  const ns = host.namespaces.C!;
  const server = createServer();
  server.on(
    "upgrade",
    upgradeListener((request) => ns.getByName(new URL(request.url).pathname.slice(1)).fetch(request)),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, base: `ws://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const connect = (url: string) =>
  new Promise<WsClient>((resolve, reject) => {
    const ws = new WsClient(url);
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });

async function webSocketRoundTrip(dir: string) {
  const host = open(join(dir, "c"));
  const { server, base } = await serve(host);
  const ws = await connect(`${base}/echo`);
  const latencies: number[] = [];
  const rounds = quick ? 300 : 3000;
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      ws.once("message", () => resolve());
      ws.send(`m${i}`);
    });
    latencies.push(ms(t));
  }
  ws.terminate();
  server.close();
  await host.close();
  return { roundTripMs: summarize(latencies) };
}

function fdLimit(): number {
  try {
    return Number(execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim());
  } catch {
    return 1024;
  }
}

async function idleRealSockets(dir: string) {
  // Client and server ends are both in this process: two descriptors per connection.
  const limit = fdLimit();
  const n = Math.max(0, Math.min(quick ? 1000 : 10_000, Math.floor((limit - 1000) / 2)));
  const host = open(join(dir, "d"), 200);
  const { server, base } = await serve(host);
  const before = rssMiB();
  const clients: WsClient[] = [];
  for (let i = 0; i < n; i += 200)
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(200, n - i) }, (_, j) => connect(`${base}/s${i + j}?attach`)),
      )),
    );
  await new Promise((r) => setTimeout(r, 600));
  const loaded = host.listNamespaces()[0]!.loaded;
  const after = rssMiB();
  // One message to a hibernated object, to show it wakes.
  const echoed = await new Promise<string>((resolve) => {
    clients[0]?.once("message", (d) => resolve(d.toString()));
    clients[0]?.send("wake");
    if (!clients[0]) resolve("none");
  });
  for (const c of clients) c.terminate();
  server.close();
  await host.close();
  return {
    fdLimit: limit,
    sockets: n,
    loadedAfterIdle: loaded,
    rssMiB: after,
    rssDeltaMiB: after - before,
    kibPerSocket: n ? ((after - before) * 1024) / n : 0,
    wokeAndEchoed: echoed === "wake",
  };
}

async function idlePairSockets(dir: string) {
  const n = quick ? 10_000 : 100_000;
  const host = open(join(dir, "e"), 200);
  const ns = host.namespaces.C!;
  const before = rssMiB();
  const clients: unknown[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i += 1000) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(1000, n - i) }, (_, j) =>
        ns.getByName(`p${i + j}`).fetch("http://do/?attach", { headers: { upgrade: "websocket" } }),
      ),
    );
    for (const r of batch) {
      const ws = (r as unknown as { webSocket: { accept(): void } }).webSocket;
      ws.accept();
      clients.push(ws);
    }
  }
  const openSeconds = ms(t0) / 1000;
  await new Promise((r) => setTimeout(r, 800));
  const loaded = host.listNamespaces()[0]!.loaded;
  const after = rssMiB();
  await host.close();
  return {
    objects: n,
    openPerSecond: n / openSeconds,
    loadedAfterIdle: loaded,
    rssMiB: after,
    rssDeltaMiB: after - before,
    kibPerObject: ((after - before) * 1024) / n,
    held: clients.length,
  };
}

const dir = mkdtempSync(join(tmpdir(), "cairn-bench-objects-"));
const started = performance.now();
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  command: `npm run bench:objects${argv.length ? ` -- ${argv.join(" ")}` : ""}`,
  commit: gitCommit(),
  machine: machine(sqliteVersion()),
  quick,
  synchronous,
  loadAverage: { start: loadavg()[0]! },
};
try {
  log("(a) RPC, one object");
  if (only.has("a")) result.rpcOneObject = await rpcOneObject(dir);
  log("(b) RPC, 1,000 objects");
  if (only.has("b")) result.rpcManyObjects = await rpcManyObjects(dir);
  log("(c) WebSocket round trip");
  if (only.has("c")) result.webSocket = await webSocketRoundTrip(dir);
  log("(d) idle objects with real sockets");
  if (only.has("d")) result.idleRealSockets = await idleRealSockets(dir);
  log("(e) idle objects with in-process sockets");
  if (only.has("e")) result.idlePairSockets = await idlePairSockets(dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
result.seconds = ms(started) / 1000;
(result.loadAverage as Record<string, number>).end = loadavg()[0]!;

const r = result as any;
const f = (x: number, d = 2) => x.toFixed(d);
console.log(`\nCairn Durable Objects benchmark — ${result.command}`);
const lines = [
  r.rpcOneObject &&
    `RPC, one object (KV write per call): sequential p50 ${f(r.rpcOneObject.sequentialMs.p50, 3)} ms, p99 ${f(r.rpcOneObject.sequentialMs.p99, 3)} ms; 100 in flight: ${Math.round(r.rpcOneObject.throughputPerSecond)}/s (p50 ${f(r.rpcOneObject.concurrentMs.p50)} ms, p99 ${f(r.rpcOneObject.concurrentMs.p99)} ms)`,
  r.rpcManyObjects &&
    `RPC, 1,000 objects: first calls (create) ${Math.round(r.rpcManyObjects.firstCallsPerSecond)}/s; 100 in flight: ${Math.round(r.rpcManyObjects.throughputPerSecond)}/s (p50 ${f(r.rpcManyObjects.concurrentMs.p50)} ms, p99 ${f(r.rpcManyObjects.concurrentMs.p99)} ms)`,
  r.webSocket &&
    `WebSocket round trip (loopback, hibernatable echo): p50 ${f(r.webSocket.roundTripMs.p50, 3)} ms, p99 ${f(r.webSocket.roundTripMs.p99, 3)} ms`,
  r.idleRealSockets &&
    `Idle objects, real sockets: ${r.idleRealSockets.sockets} (fd limit ${r.idleRealSockets.fdLimit}), loaded after idle ${r.idleRealSockets.loadedAfterIdle}, RSS ${f(r.idleRealSockets.rssMiB, 0)} MiB (+${f(r.idleRealSockets.rssDeltaMiB, 0)} MiB, ${f(r.idleRealSockets.kibPerSocket, 1)} KiB each), woke on a message: ${r.idleRealSockets.wokeAndEchoed}`,
  r.idlePairSockets &&
    `Idle objects, in-process sockets: ${r.idlePairSockets.objects}, opened ${Math.round(r.idlePairSockets.openPerSecond)}/s, loaded after idle ${r.idlePairSockets.loadedAfterIdle}, RSS ${f(r.idlePairSockets.rssMiB, 0)} MiB (+${f(r.idlePairSockets.rssDeltaMiB, 0)} MiB, ${f(r.idlePairSockets.kibPerObject, 2)} KiB each)`,
  `synchronous=${synchronous}; ${r.machine.cpus} cores, Node ${r.machine.node}, ${f(r.seconds, 0)} s, load average ${f(r.loadAverage.start, 1)} → ${f(r.loadAverage.end, 1)}`,
];
console.log(lines.filter(Boolean).join("\n"));
const full = !quick && only.size === 5 && synchronous === "FULL";
if (save) {
  const results = join(import.meta.dirname, "results");
  mkdirSync(results, { recursive: true });
  const stamp = String(result.date)
    .replaceAll(":", "-")
    .replace(/\.\d+Z$/, "Z");
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const file = join(results, `objects-${stamp}${full ? "" : `-partial-${synchronous.toLowerCase()}`}.json`);
  writeFileSync(file, json);
  console.log(`wrote ${file}`);
  if (full) {
    writeFileSync(join(results, "latest-objects.json"), json);
    console.log(`wrote ${join(results, "latest-objects.json")}`);
  }
}
