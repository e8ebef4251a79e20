import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { FakeClock } from "@cairn/core";
import { afterEach, describe, expect, it } from "vitest";
import WsClient from "ws";
import { cleanDirs, tempDir } from "../test/helpers.ts";
import { DurableObject } from "./durable-object.ts";
import { createObjectHost, type ObjectHost } from "./host.ts";
import { upgradeListener } from "./upgrade.ts";
import { Response, WebSocketPair, WebSocketRequestResponsePair } from "./websocket.ts";

let loads = 0;
const closes: [number, string][] = [];

class Room extends DurableObject {
  constructor(ctx: any, env: any) {
    super(ctx, env);
    loads++;
  }
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair);
    if (url.searchParams.has("plain")) {
      server.accept();
      server.addEventListener("message", (e: MessageEvent) => server.send(`plain:${e.data}`));
    } else {
      const user = url.searchParams.get("user") ?? "anon";
      this.ctx.acceptWebSocket(server, [user, "all"]);
      server.serializeAttachment({ user, joined: 1 });
      this.ctx.storage.kv.put(`joined:${user}`, true);
      server.send(`welcome ${user}`);
    }
    return new Response(null, { status: 101, webSocket: client });
  }
  async webSocketMessage(ws: any, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string") {
      ws.send(new Uint8Array(message).reverse());
      return;
    }
    const { user } = ws.deserializeAttachment();
    if (message === "big-attachment") {
      try {
        ws.serializeAttachment("x".repeat(20_000));
      } catch (e) {
        ws.send(`error: ${(e as Error).message}`);
      }
      return;
    }
    if (message === "broadcast") {
      for (const other of this.ctx.getWebSockets("all")) other.send(`from ${user}`);
      return;
    }
    if (message === "tags") {
      ws.send(JSON.stringify(this.ctx.getTags(ws)));
      return;
    }
    if (message === "write-then-abort") {
      // The send waits on the output gate for the write, which the reset throws away.
      this.ctx.storage.kv.put("lost", true);
      ws.send("never delivered");
      this.ctx.abort("reset on purpose");
      return;
    }
    if (message === "auto") {
      this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
      ws.send("auto set");
      return;
    }
    const n = (this.ctx.storage.kv.get<number>("messages") ?? 0) + 1;
    this.ctx.storage.kv.put("messages", n);
    ws.send(`${user} #${n}: ${message} (loads ${loads})`);
  }
  async webSocketClose(ws: any, code: number, reason: string): Promise<void> {
    closes.push([code, reason]);
    ws.close(code, reason);
  }
  messages(): number {
    return this.ctx.storage.kv.get<number>("messages") ?? 0;
  }
}

let host: ObjectHost | undefined;
let server: Server | undefined;
const clients: WsClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) {
    c.on("error", () => {});
    c.terminate();
  }
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  await host?.close();
  host = undefined;
  loads = 0;
  closes.length = 0;
  cleanDirs();
});

async function open(options: { clock?: FakeClock; maxPayload?: number } = {}) {
  host = createObjectHost({
    dir: tempDir(),
    objects: [{ binding: "ROOM", class: Room }],
    idleTimeoutMs: 1000,
    log: () => {},
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const ns = host.namespaces.ROOM!;
  const worker = (request: Request) => {
    const url = new URL(request.url);
    if (request.headers.get("upgrade") !== "websocket")
      return new Response("Expected Upgrade: websocket", { status: 426 });
    return ns.getByName(url.pathname.slice(1) || "lobby").fetch(request);
  };
  server = createServer((_req, res) => res.end("http"));
  server.on("upgrade", upgradeListener(worker, options.maxPayload ? { maxPayload: options.maxPayload } : {}));
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  const base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { ns, base };
}

class Client {
  readonly ws: WsClient;
  readonly frames: (string | Buffer)[] = [];
  #waiters: (() => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;
  constructor(url: string) {
    this.ws = new WsClient(url);
    clients.push(this.ws);
    this.ws.on("message", (data, isBinary) => {
      this.frames.push(isBinary ? (data as Buffer) : data.toString());
      for (const w of this.#waiters.splice(0)) w();
    });
    this.closed = new Promise((r) =>
      this.ws.on("close", (code, reason) => r({ code, reason: reason.toString() })),
    );
  }
  opened() {
    return new Promise<void>((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
    });
  }
  /** The n-th frame (0-based), waiting for it. */
  async frame(n: number): Promise<string | Buffer> {
    while (this.frames.length <= n) await new Promise<void>((r) => this.#waiters.push(r));
    return this.frames[n]!;
  }
}

async function join(base: string, path: string) {
  const c = new Client(`${base}${path}`);
  await c.opened();
  return c;
}

describe("WebSockets", () => {
  it("a 101 response from an object's fetch is bridged to a real connection (text and binary)", async () => {
    const { base } = await open();
    const c = await join(base, "/r1?user=ada");
    expect(await c.frame(0)).toBe("welcome ada");
    c.ws.send("hello");
    expect(await c.frame(1)).toBe("ada #1: hello (loads 1)");
    c.ws.send(Buffer.from([1, 2, 3]));
    expect([...((await c.frame(2)) as Buffer)]).toEqual([3, 2, 1]);
  });

  it("plain accept() sockets get message events", async () => {
    const { base } = await open();
    const c = await join(base, "/r1?plain");
    c.ws.send("x");
    expect(await c.frame(0)).toBe("plain:x");
  });

  it("hibernation: the idle object unloads, the socket stays open, the next message constructs it again", async () => {
    const clock = new FakeClock();
    const { ns, base } = await open({ clock });
    const c = await join(base, "/r1?user=bo");
    expect(await c.frame(0)).toBe("welcome bo");
    c.ws.send("one");
    expect(await c.frame(1)).toBe("bo #1: one (loads 1)");
    await clock.advance(2000);
    expect(host!.listNamespaces()[0]!.loaded).toBe(0);
    expect(c.ws.readyState).toBe(WsClient.OPEN);
    c.ws.send("two");
    // Constructed again; the attachment (user) and storage survived.
    expect(await c.frame(2)).toBe("bo #2: two (loads 2)");
    c.ws.send("tags");
    expect(JSON.parse((await c.frame(3)) as string)).toEqual(["bo", "all"]);
    expect(await (ns.getByName("r1") as any).messages()).toBe(2);
  });

  it("getWebSockets(tag) reaches every accepted socket, also after hibernation", async () => {
    const clock = new FakeClock();
    const { base } = await open({ clock });
    const a = await join(base, "/r2?user=a");
    const b = await join(base, "/r2?user=b");
    await a.frame(0);
    await b.frame(0);
    await clock.advance(2000);
    a.ws.send("broadcast");
    expect(await a.frame(1)).toBe("from a");
    expect(await b.frame(1)).toBe("from a");
  });

  it("the auto-response answers without waking the object", async () => {
    const clock = new FakeClock();
    const { base } = await open({ clock });
    const c = await join(base, "/r3?user=z");
    await c.frame(0);
    c.ws.send("auto");
    expect(await c.frame(1)).toBe("auto set");
    await clock.advance(2000);
    c.ws.send("ping");
    expect(await c.frame(2)).toBe("pong");
    expect(loads).toBe(1);
    expect(host!.listNamespaces()[0]!.loaded).toBe(0);
  });

  it("close from the client reaches webSocketClose with code and reason", async () => {
    const { base } = await open();
    const c = await join(base, "/r4?user=q");
    await c.frame(0);
    c.ws.close(4001, "bye");
    expect(await c.closed).toEqual({ code: 4001, reason: "bye" });
    for (let i = 0; i < 50 && closes.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(closes).toEqual([[4001, "bye"]]);
  });

  it("refuses attachments over the limit and frames over the limit; the object stays intact", async () => {
    const { ns, base } = await open({ maxPayload: 1024 });
    const c = await join(base, "/r5?user=w");
    await c.frame(0);
    c.ws.send("big-attachment");
    expect(await c.frame(1)).toMatch(/^error: A WebSocket 'attachment' cannot be larger than 16384 bytes/);
    c.ws.send("ok");
    expect(await c.frame(2)).toBe("w #1: ok (loads 1)");
    c.ws.send("x".repeat(2000));
    expect((await c.closed).code).toBe(1009);
    expect(await (ns.getByName("r5") as any).messages()).toBe(1);
  });

  it("a message waiting on writes that a reset threw away is not sent: the connection fails", async () => {
    const { ns, base } = await open();
    const c = await join(base, "/r1?user=ada");
    const other = await join(base, "/r1?user=bob");
    expect(await c.frame(0)).toBe("welcome ada");
    c.ws.send("write-then-abort");
    expect((await c.closed).code).toBe(1006);
    expect(c.frames).toEqual(["welcome ada"]);
    // The object starts again without the write; the other socket of the room was not sending.
    expect(await ns.getByName("r1").messages()).toBe(0);
    other.ws.send("still here");
    expect(await other.frame(1)).toMatch(/^bob #1: still here/);
  });

  it("a non-101 answer to an upgrade is sent as HTTP", async () => {
    host = createObjectHost({ dir: tempDir(), objects: [{ binding: "ROOM", class: Room }] });
    server = createServer();
    server.on(
      "upgrade",
      upgradeListener(() => new Response("nope", { status: 403 })),
    );
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const ws = new WsClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    clients.push(ws);
    const status = await new Promise<number>((resolve) =>
      ws.on("unexpected-response", (_q, res) => resolve(res.statusCode!)),
    );
    expect(status).toBe(403);
  });

  it("Response accepts status 101 only with a webSocket; other responses are Node's", () => {
    const pair = new WebSocketPair();
    const r = new Response(null, { status: 101, webSocket: pair[0] });
    expect(r.status).toBe(101);
    expect(r.webSocket).toBe(pair[0]);
    expect(() => new Response(null, { status: 101 })).toThrow(/need a webSocket/);
    expect(Response.json({ a: 1 }) instanceof Response).toBe(true);
    expect(() => pair[1].send("x")).toThrow(/You must call one of accept\(\) or state.acceptWebSocket\(\)/);
  });
});
