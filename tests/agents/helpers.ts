import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { routeAgentRequest } from "@cairn/agents";
import { createObjectHost, type ObjectBinding, type ObjectHost, upgradeListener } from "@cairn/objects";
import WebSocket from "ws";

/** A running object host serving agents over a real HTTP server (port 0). */
export interface Served {
  host: ObjectHost;
  env: Record<string, any>;
  url: string;
  wsUrl: string;
  dir: string;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];

/** Serves `objects` like `cairn dev` does for an Agents project: `/agents/*` through routeAgentRequest. */
export async function serve(
  objects: ObjectBinding[],
  options: {
    dir?: string;
    idleTimeoutMs?: number;
    fetch?: (request: Request, env: any) => Promise<Response>;
  } = {},
): Promise<Served> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "cairn-agents-"));
  const host = createObjectHost({ dir, objects, idleTimeoutMs: options.idleTimeoutMs ?? 60_000 });
  const env = host.env as Record<string, any>;
  const handle = async (request: Request): Promise<Response> => {
    if (options.fetch) return options.fetch(request, env);
    return (await routeAgentRequest(request, env)) ?? new Response("Not found", { status: 404 });
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body =
      chunks.length && req.method !== "GET" && req.method !== "HEAD" ? Buffer.concat(chunks) : undefined;
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
    const response = await handle(
      new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers, body }),
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  const connections = new Set<any>();
  server.on("upgrade", upgradeListener(handle, { connections }));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const c of connections) c.terminate();
    await new Promise<void>((r) => server.close(() => r()));
    await host.close();
    if (!options.dir) rmSync(dir, { recursive: true, force: true });
  };
  cleanups.push(close);
  return { host, env, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}`, dir, close };
}

export async function closeAll(): Promise<void> {
  for (const c of cleanups.splice(0)) await c();
}

/** A real WebSocket client that records every frame it receives. */
export class Client {
  readonly ws: WebSocket;
  readonly frames: any[] = [];
  readonly raw: (string | Buffer)[] = [];
  #waiters: { pred: (f: any) => boolean; resolve: (f: any) => void; from: number }[] = [];
  closed: Promise<{ code: number; reason: string }>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on("message", (data, isBinary) => {
      const text = isBinary ? undefined : data.toString();
      this.raw.push(isBinary ? (data as Buffer) : text!);
      let frame: any;
      try {
        frame = text === undefined ? { binary: data } : JSON.parse(text);
      } catch {
        frame = { text };
      }
      this.frames.push(frame);
      for (const w of [...this.#waiters]) {
        if (w.pred(frame)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(frame);
        }
      }
    });
    this.closed = new Promise((r) =>
      this.ws.on("close", (code, reason) => r({ code, reason: reason.toString() })),
    );
  }

  static async open(url: string): Promise<Client> {
    const c = new Client(url);
    await new Promise<void>((resolve, reject) => {
      c.ws.once("open", () => resolve());
      c.ws.once("error", reject);
    });
    return c;
  }

  /** The first frame (already received or coming) that matches, counting from index `from`. */
  next(pred: (f: any) => boolean, from = 0): Promise<any> {
    const found = this.frames.slice(from).find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ pred, resolve, from }));
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  #n = 0;
  /** Sends an RPC frame and resolves with the final reply frame (done or error). */
  async call(method: string, args: unknown[] = []): Promise<any> {
    const id = `c${++this.#n}`;
    this.send({ type: "rpc", id, method, args });
    return this.next((f) => f.type === "rpc" && f.id === id && (f.done === true || f.success === false));
  }

  close(): void {
    this.ws.close();
  }
}

/** Waits (event-driven polling, no timing assertion) until `check` returns a truthy value. */
export async function until<T>(check: () => T | Promise<T>, what = "condition"): Promise<T> {
  for (let i = 0; i < 2000; i++) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
