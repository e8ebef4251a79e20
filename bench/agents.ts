/**
 * Agents bench: `npm run bench:agents [-- --quick] [-- --no-save]`.
 * (a) RPC round trip over a real WebSocket (a `ws` client on loopback, upstream's `rpc` frames):
 *     sequential latency p50/p99; (b) state broadcast: one `setState` reaching 1,000 connections
 *     of one agent (time until the last one has the frame); (c) 10,000 agents with one connection
 *     each (clients in a child process, so each process stays under the file-descriptor limit):
 *     connect rate, RSS of the serving process, and a message to each after they hibernated.
 * Writes `bench/results/agents-<date>.json` and `latest-agents.json`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, type Connection, callable, routeAgentRequest } from "@cairn/agents";
import { createObjectHost, upgradeListener } from "@cairn/objects";
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
/** `--synchronous NORMAL` measures with SQLite's NORMAL durability (FULL by default). */
const synchronous = (flag("--synchronous") ?? "FULL").toUpperCase() as "FULL" | "NORMAL";
/** `--agents N` for section (c) (default 10,000; 1,000 with --quick). */
const agentCount = Number(flag("--agents") ?? (quick ? 1000 : 10_000));
/** `--only a,b,c` runs some sections. */
const only = new Set((flag("--only") ?? "a,b,c").split(","));
const log = (m: string) => process.stderr.write(`  ${m}\n`);
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

// ---- the client side of (c), in its own process ----
async function clients(): Promise<void> {
  const [, url, count] = argv;
  const n = Number(count);
  const sockets: WsClient[] = [];
  let failed = 0;
  let closedEarly = 0;
  const opened = async (i: number): Promise<void> => {
    const ws = new WsClient(`${url}/agents/bench-agent/a${i}`);
    ws.on("error", () => {});
    let first: () => void;
    const identity = new Promise<void>((r) => (first = r));
    ws.once("message", () => first());
    ws.once("close", (code) => {
      closedEarly++;
      if (closedEarly <= 3) process.stderr.write(`  client a${i} closed (${code})\n`);
      first();
    });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
    } catch (e) {
      // Refused under load: try again.
      failed++;
      if (failed <= 3) process.stderr.write(`  client a${i}: ${(e as Error).message}\n`);
      if (failed < n) return opened(i);
    }
    await identity;
    sockets.push(ws);
  };
  const started = performance.now();
  for (let i = 0; i < n; i += 200)
    await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, j) => opened(i + j)));
  const connectSeconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ connected: sockets.length, retried: failed, connectSeconds })}\n`);
  // Then, on "ping" from the parent, one RPC per socket; report how many answered.
  process.stdin.setEncoding("utf8").once("data", async () => {
    let answered = 0;
    const t = performance.now();
    for (let i = 0; i < sockets.length; i += 500) {
      await Promise.all(
        sockets.slice(i, i + 500).map(
          (ws, j) =>
            new Promise<void>((resolve) => {
              const id = `p${i + j}`;
              const onMessage = (data: WsClient.RawData) => {
                const f = JSON.parse(data.toString());
                if (f.type === "rpc" && f.id === id) {
                  if (f.result === `a${i + j}`) answered++;
                  ws.off("message", onMessage);
                  resolve();
                }
              };
              ws.on("message", onMessage);
              ws.send(JSON.stringify({ type: "rpc", id, method: "whoami", args: [] }));
            }),
        ),
      );
    }
    process.stdout.write(`${JSON.stringify({ answered, pingSeconds: (performance.now() - t) / 1000 })}\n`);
    for (const ws of sockets) ws.terminate();
  });
}

class BenchAgent extends Agent<unknown, { n: number }> {
  override initialState = { n: 0 };
  echo(x: unknown): unknown {
    return x;
  }
  bump(): number {
    this.setState({ n: this.state.n + 1 });
    return this.state.n;
  }
  whoami(): string {
    return this.name;
  }
  override onMessage(_c: Connection, _m: unknown): void {}
}
// `@callable()` without decorator syntax (this file runs on Node's type stripping).
for (const m of ["echo", "bump", "whoami"] as const) callable()(BenchAgent.prototype[m], undefined);

async function serve(dir: string, idleTimeoutMs: number) {
  const host = createObjectHost({
    dir,
    objects: [{ binding: "BenchAgent", class: BenchAgent }],
    idleTimeoutMs,
    synchronous,
  });
  const env = host.env as Record<string, unknown>;
  const handle = async (r: Request) =>
    (await routeAgentRequest(r, env)) ?? new Response("nf", { status: 404 });
  const server = createServer((_req, res) => res.end());
  server.on("upgrade", upgradeListener(handle, { maxPayload: 1 << 20 }));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    server,
    url,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await host.close();
    },
  };
}

function client(url: string): Promise<{ ws: WsClient; frames: (pred: (f: any) => boolean) => Promise<any> }> {
  const ws = new WsClient(url);
  ws.on("error", () => {});
  const waiters: { pred: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  // Protocol frames that came before anyone waited (identity, state, MCP); later ones are not kept.
  const early: any[] = [];
  ws.on("message", (data) => {
    const f = JSON.parse(data.toString());
    const i = waiters.findIndex((w) => w.pred(f));
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(f);
    else if (early.length < 3) early.push(f);
  });
  return new Promise((resolve, reject) => {
    ws.once("open", () =>
      resolve({
        ws,
        frames: (pred) => {
          const i = early.findIndex(pred);
          if (i >= 0) return Promise.resolve(early.splice(i, 1)[0]);
          return new Promise((r) => waiters.push({ pred, resolve: r }));
        },
      }),
    );
    ws.once("error", reject);
  });
}

async function rpcRoundTrip(url: string) {
  const { ws, frames } = await client(`${url}/agents/bench-agent/rpc`);
  await frames((f) => f.type === "cf_agent_mcp_servers");
  const n = quick ? 500 : 5000;
  const times: number[] = [];
  for (let i = 0; i < n + 200; i++) {
    const id = `r${i}`;
    const t = performance.now();
    const reply = frames((f) => f.id === id);
    ws.send(JSON.stringify({ type: "rpc", id, method: "echo", args: [i] }));
    await reply;
    if (i >= 200) times.push(performance.now() - t);
  }
  ws.terminate();
  return summarize(times);
}

async function broadcast(url: string) {
  const n = quick ? 200 : 1000;
  const clients = [];
  for (let i = 0; i < n; i += 100)
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, n - i) }, () => client(`${url}/agents/bench-agent/room`)),
      )),
    );
  const rounds = quick ? 5 : 20;
  const times: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const t = performance.now();
    const all = Promise.all(
      clients.map((c) => c.frames((f) => f.type === "cf_agent_state" && f.state.n === r)),
    );
    clients[0]!.ws.send(JSON.stringify({ type: "rpc", id: `b${r}`, method: "bump", args: [] }));
    await all;
    times.push(performance.now() - t);
  }
  for (const c of clients) c.ws.terminate();
  return { connections: n, ...summarize(times) };
}

async function manyAgents(url: string, host: Awaited<ReturnType<typeof serve>>["host"]) {
  const n = agentCount;
  gc();
  const before = rssMiB();
  const child: ChildProcess = spawn(
    process.execPath,
    ["--conditions=source", import.meta.filename, "--clients", url, String(n)],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const lines: any[] = [];
  let wake: (() => void) | undefined;
  let buffer = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => {
    buffer += c;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      lines.push(JSON.parse(buffer.slice(0, nl)));
      buffer = buffer.slice(nl + 1);
    }
    wake?.();
  });
  const next = async (k: number) => {
    while (lines.length < k) await new Promise<void>((r) => (wake = r));
    return lines[k - 1];
  };
  const connected = await next(1);
  // Let every agent hibernate (unloaded, its socket kept open).
  const loaded = () => host.listNamespaces()[0]!.loaded;
  for (let i = 0; i < 300 && loaded() > 0; i++) await new Promise((r) => setTimeout(r, 100));
  gc();
  const after = rssMiB();
  const loadedAfterIdle = loaded();
  child.stdin!.write("ping\n");
  const pinged = await next(2);
  child.kill();
  return {
    agents: n,
    connected: connected.connected,
    retriedConnects: connected.retried,
    connectPerSecond: connected.connected / connected.connectSeconds,
    rssMiB: after,
    rssDeltaMiB: after - before,
    kibPerAgent: ((after - before) * 1024) / n,
    loadedAfterIdle,
    answeredAfterHibernation: pinged.answered,
    wakeAndAnswerPerSecond: pinged.answered / pinged.pingSeconds,
  };
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const loadStart = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), "cairn-bench-agents-"));
  try {
    const none = { n: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
    let s = await serve(join(dir, "a"), 60_000);
    log("a: RPC round trip over a WebSocket");
    const rpc = only.has("a") ? await rpcRoundTrip(s.url) : none;
    log("b: state broadcast to 1,000 connections");
    const bcast = only.has("b") ? await broadcast(s.url) : { connections: 0, ...none };
    await s.close();
    log(`c: ${agentCount} agents with one connection each`);
    s = await serve(join(dir, "c"), 500);
    const many = only.has("c")
      ? await manyAgents(s.url, s.host)
      : {
          agents: 0,
          connected: 0,
          connectPerSecond: 0,
          rssMiB: 0,
          rssDeltaMiB: 0,
          kibPerAgent: 0,
          loadedAfterIdle: 0,
          answeredAfterHibernation: 0,
          wakeAndAnswerPerSecond: 0,
        };
    await s.close();
    const result = {
      date: new Date().toISOString(),
      commit: gitCommit(),
      machine: machine(sqliteVersion()),
      quick,
      synchronous,
      seconds: (Date.now() - startedAt) / 1000,
      loadAverage: { start: loadStart, end: loadavg()[0]! },
      rpcRoundTripMs: rpc,
      broadcastMs: bcast,
      manyAgents: many,
    };
    const f = (x: number, d = 2) => x.toFixed(d);
    console.log(
      [
        `RPC round trip (WebSocket, sequential, n=${rpc.n}): p50 ${f(rpc.p50, 3)} ms, p99 ${f(rpc.p99, 3)} ms`,
        `State broadcast to ${bcast.connections} connections (setState → last frame received, n=${bcast.n}): p50 ${f(bcast.p50, 1)} ms, p99 ${f(bcast.p99, 1)} ms`,
        `${many.agents} agents, one connection each: connected ${many.connected} at ${Math.round(many.connectPerSecond)}/s; after hibernation ${many.loadedAfterIdle} loaded, RSS ${f(many.rssMiB, 0)} MiB (+${f(many.rssDeltaMiB, 0)} MiB, ${f(many.kibPerAgent, 1)} KiB per agent); RPC after hibernation answered ${many.answeredAfterHibernation} (${Math.round(many.wakeAndAnswerPerSecond)}/s)`,
        `synchronous=${synchronous}; ${result.machine.cpus} cores, Node ${result.machine.node}, ${f(result.seconds, 0)} s, load average ${f(loadStart, 1)} → ${f(result.loadAverage.end, 1)}`,
      ].join("\n"),
    );
    if (save) {
      const results = join(import.meta.dirname, "results");
      mkdirSync(results, { recursive: true });
      const stamp = result.date.replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
      const json = `${JSON.stringify(result, null, 2)}\n`;
      const partial = quick || synchronous !== "FULL" || agentCount !== 10_000 || only.size !== 3;
      const file = join(results, `agents-${stamp}${partial ? "-partial" : ""}.json`);
      writeFileSync(file, json);
      if (!partial) writeFileSync(join(results, "latest-agents.json"), json);
      console.log(`wrote ${file}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (argv[0] === "--clients") await clients();
else await main();
