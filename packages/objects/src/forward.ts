/**
 * Requests to a Durable Object held by another worker (SPEC §13.7): a worker that is asked for an
 * object another worker holds forwards the request there over HTTP (a WebSocket over a WebSocket),
 * instead of waiting for the other worker's lease to run out. Every worker with a replica listens
 * on an address of its own (`ForwardServer`) and stores it with the objects it takes; the others
 * call it (`ForwardClient`). Requests carry the secret all workers share (`cairn:forward` in the
 * store), so nothing else can call objects through this door.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { deserialize, serialize } from "node:v8";
import { WebSocket as WsSocket } from "ws";
import { MAX_MESSAGE_BYTES } from "./limits.ts";
import { type ErrorFields, errorFields, rebuildError } from "./remote-error.ts";
import { bridge, upgradeListener } from "./upgrade.ts";
import { WebSocketPair, Response as WorkersResponse } from "./websocket.ts";

/** The name the shared secret is stored under, beside the namespace keys. */
export const FORWARD_SECRET_NAME = "cairn:forward";

/** The header carrying the shared secret (hex). Not `Authorization`: the request keeps its own. */
const SECRET_HEADER = "x-cairn-forward-secret";
/** The header carrying the forwarded request's own URL. */
const URL_HEADER = "x-cairn-forward-url";
/** Set on a response that carries an error the object (or the owner's host) threw, as JSON. */
const ERROR_HEADER = "x-cairn-forward-error";
const V8_TYPE = "application/x-cairn-v8";

/** What the worker holding objects runs for forwarded requests (the host, without forwarding again). */
export interface ForwardTarget {
  fetch(className: string, hex: string, request: Request): Promise<Response>;
  rpc(className: string, hex: string, method: string, args: unknown[]): Promise<unknown>;
}

export interface ForwardListenOptions {
  /** The shared secret (from the store). */
  secret: Uint8Array;
  /** Where to listen. Default "127.0.0.1" (workers on one machine). */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /**
   * The base URL other workers reach this one at, e.g. "http://10.0.0.5:9100". Default: the
   * address listened on (a wildcard address needs this).
   */
  advertise?: string;
  log?: (message: string, error?: unknown) => void;
}

/**
 * Checks forwarding options from outside (`createCairn({ objectForward })`, the environment of
 * `cairn start`); throws a TypeError naming `what` and the bad field.
 */
export function checkForwardOptions(
  o: unknown,
  what: string,
): asserts o is { host?: string; port?: number; advertise?: string } {
  if (typeof o !== "object" || o === null || Array.isArray(o))
    throw new TypeError(`${what} must be false or { host?, port?, advertise? }`);
  const { host, port, advertise, ...rest } = o as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length)
    throw new TypeError(`${what}: unknown field ${unknown[0]} (allowed: host, port, advertise)`);
  if (host !== undefined && (typeof host !== "string" || host === ""))
    throw new TypeError(`${what}.host must be a host name or an address, e.g. "0.0.0.0"`);
  if (port !== undefined && (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535))
    throw new TypeError(
      `${what}.port must be an integer from 0 to 65535 (0: a free port), not ${String(port)}`,
    );
  if (advertise !== undefined) {
    const url = typeof advertise === "string" && URL.canParse(advertise) ? new URL(advertise) : undefined;
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash)
      throw new TypeError(
        `${what}.advertise must be the http:// URL other workers reach this one at, e.g. "http://10.0.0.5:9100", not ${JSON.stringify(advertise)}`,
      );
  }
}

/** The forwarding address could not be reached: nothing was delivered, the caller may go on locally. */
export class OwnerUnreachable extends Error {
  constructor(url: string, cause: unknown) {
    super(`the worker at ${url} could not be reached: ${(cause as Error)?.message ?? cause}`, { cause });
    this.name = "OwnerUnreachable";
  }
}

/** The SHA-256 of a secret's hex form: compared in constant time, whatever the lengths. */
function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Errors that mean the connection was never made (so the request was not delivered). */
const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function connectFailure(e: unknown): boolean {
  for (let x: unknown = e, i = 0; x && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === "string" && CONNECT_ERRORS.has(code)) return true;
    const errors = (x as { errors?: unknown[] }).errors;
    if (Array.isArray(errors) && errors.some(connectFailure)) return true;
  }
  return false;
}

/** Headers of a request that belong to one hop (and the forwarding's own). */
const HOP_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "host",
  "upgrade",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-accept",
  SECRET_HEADER,
  URL_HEADER,
]);

function path(className: string, hex: string, tail: string): string {
  return `/objects/${encodeURIComponent(className)}/${hex}/${tail}`;
}

/** Calls the objects of other workers. */
export class ForwardClient {
  readonly #secret: string;

  constructor(secret: Uint8Array) {
    this.#secret = Buffer.from(secret).toString("hex");
  }

  /** Calls `method` of the object at the worker at `url`; its result or its error. */
  async rpc(url: string, className: string, hex: string, method: string, args: unknown[]): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${url}${path(className, hex, `rpc/${encodeURIComponent(method)}`)}`, {
        method: "POST",
        headers: { [SECRET_HEADER]: this.#secret, "content-type": V8_TYPE },
        body: serialize(args),
      });
    } catch (e) {
      if (connectFailure(e)) throw new OwnerUnreachable(url, e);
      throw new Error(`forwarding ${method}() to the worker at ${url} failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200 || res.headers.get("content-type") !== V8_TYPE)
      throw new Error(
        `forwarding ${method}() to the worker at ${url} failed: HTTP ${res.status} ${bytes.toString("utf8").slice(0, 200)}`,
      );
    const out = deserialize(bytes) as { value?: unknown; error?: ErrorFields };
    if (out.error) throw rebuildError(out.error);
    return out.value;
  }

  /** Sends `request` to the object at the worker at `url`; a WebSocket upgrade is bridged. */
  async fetch(url: string, className: string, hex: string, request: Request): Promise<Response> {
    const headers: Record<string, string> = {};
    request.headers.forEach((v, k) => {
      if (!HOP_HEADERS.has(k)) headers[k] = v;
    });
    headers[SECRET_HEADER] = this.#secret;
    headers[URL_HEADER] = request.url;
    const target = `${url}${path(className, hex, "fetch")}`;
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket")
      return this.#webSocket(url, target, headers);
    const body =
      request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer();
    let res: Response;
    try {
      res = await fetch(target, {
        method: request.method,
        headers,
        ...(body ? { body } : {}),
        redirect: "manual",
        signal: request.signal,
      });
    } catch (e) {
      if (connectFailure(e)) throw new OwnerUnreachable(url, e);
      throw e;
    }
    if (res.headers.get(ERROR_HEADER) !== null) throw rebuildError((await res.json()) as ErrorFields);
    return res;
  }

  /** A WebSocket to the owner, handed back as the client end of a pair (as the object returned it). */
  #webSocket(url: string, target: string, headers: Record<string, string>): Promise<Response> {
    const protocols = headers["sec-websocket-protocol"]
      ?.split(",")
      .map((p) => p.trim())
      .filter(Boolean);
    delete headers["sec-websocket-protocol"];
    return new Promise<Response>((resolve, reject) => {
      const ws = new WsSocket(target.replace(/^http/, "ws"), protocols ?? [], {
        headers,
        maxPayload: MAX_MESSAGE_BYTES,
      });
      ws.once("open", () => {
        const pair = new WebSocketPair();
        bridge(ws, pair[1]);
        resolve(new WorkersResponse(null, { status: 101, webSocket: pair[0] }));
      });
      ws.once("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          if (res.headers[ERROR_HEADER] !== undefined) {
            try {
              reject(rebuildError(JSON.parse(body.toString("utf8")) as ErrorFields));
            } catch (e) {
              reject(e);
            }
            return;
          }
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (typeof v === "string") out.set(k, v);
            else if (Array.isArray(v)) for (const x of v) out.append(k, x);
          resolve(new Response(body, { status: res.statusCode ?? 502, headers: out }));
        });
        ws.terminate();
      });
      ws.once("error", (e) => reject(connectFailure(e) ? new OwnerUnreachable(url, e) : e));
    });
  }
}

/** Takes requests other workers forward to the objects this worker holds. */
export class ForwardServer {
  /** The base URL other workers call (once listening). */
  readonly url: Promise<string>;
  readonly #server: Server;
  readonly #secret: Buffer;
  readonly #target: ForwardTarget;
  readonly #sockets = new Set<WsSocket>();

  constructor(target: ForwardTarget, options: ForwardListenOptions) {
    this.#target = target;
    this.#secret = digest(Buffer.from(options.secret).toString("hex"));
    const log = options.log ?? ((m, e) => console.error(m, e ?? ""));
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((e) => {
        log(`a forwarded request (${req.method} ${req.url}) failed`, e);
        if (!res.headersSent) plain(res, 500, "forwarding failed");
        else res.destroy();
      });
    });
    const upgrade = upgradeListener((request) => this.#fetchUpgrade(request), {
      connections: this.#sockets,
      log,
    });
    this.#server.on("upgrade", (req: IncomingMessage, socket, head) => {
      socket.on("error", () => {});
      if (!this.#authorized(req)) {
        socket.end("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      upgrade(req, socket, head);
    });
    const host = options.host ?? "127.0.0.1";
    this.url = new Promise<string>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(options.port ?? 0, host, () => {
        this.#server.off("error", reject);
        this.#server.on("error", (e) => log("the server for forwarded Durable Object requests failed", e));
        const a = this.#server.address() as AddressInfo;
        const shown = a.family === "IPv6" ? `[${a.address}]` : a.address;
        resolve(options.advertise?.replace(/\/+$/, "") ?? `http://${shown}:${a.port}`);
      });
    });
    // A failure to listen shows where the URL is awaited; this keeps it from being unhandled here.
    this.url.catch(() => {});
  }

  async close(): Promise<void> {
    for (const ws of this.#sockets) ws.terminate();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #authorized(req: IncomingMessage): boolean {
    const given = req.headers[SECRET_HEADER];
    return typeof given === "string" && timingSafeEqual(digest(given), this.#secret);
  }

  /** The object's class and id and what is asked of it, from the path. */
  #route(
    path: string,
  ):
    | { className: string; hex: string; kind: "fetch" }
    | { className: string; hex: string; kind: "rpc"; method: string }
    | undefined {
    const m = /^\/objects\/([^/]+)\/([0-9a-f]{64})\/(fetch|rpc\/([^/]+))$/.exec(path.split("?")[0]!);
    if (!m) return undefined;
    const className = decodeURIComponent(m[1]!);
    if (m[3] === "fetch") return { className, hex: m[2]!, kind: "fetch" };
    return { className, hex: m[2]!, kind: "rpc", method: decodeURIComponent(m[4]!) };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#authorized(req)) return plain(res, 401, "the forwarding secret is missing or wrong");
    const route = this.#route(req.url ?? "");
    if (!route) return plain(res, 404, "no such object route");
    const body = await readBody(req);
    if (body === undefined)
      return plain(res, 413, `a forwarded request may be at most ${MAX_MESSAGE_BYTES} bytes`);
    if (route.kind === "rpc") {
      if (req.method !== "POST") return plain(res, 405, "RPC is POST");
      let args: unknown;
      try {
        args = deserialize(body);
      } catch {
        return plain(res, 400, "the arguments are not V8-serialized");
      }
      if (!Array.isArray(args)) return plain(res, 400, "the arguments must be an array");
      let out: { value?: unknown; error?: ErrorFields };
      try {
        out = { value: await this.#target.rpc(route.className, route.hex, route.method, args) };
      } catch (e) {
        out = { error: errorFields(e) };
      }
      let bytes: Buffer;
      try {
        bytes = serialize(out);
      } catch (e) {
        bytes = serialize({ error: { name: "DataCloneError", message: (e as Error).message, dom: true } });
      }
      res.writeHead(200, { "content-type": V8_TYPE, "content-length": bytes.length });
      res.end(bytes);
      return;
    }
    const request = this.#request(req.method ?? "GET", req.headers, body);
    if (!request) return plain(res, 400, `${URL_HEADER} must be the request's absolute URL`);
    let response: Response;
    try {
      response = await this.#target.fetch(route.className, route.hex, request);
    } catch (e) {
      const text = JSON.stringify(errorFields(e));
      res.writeHead(500, { "content-type": "application/json", [ERROR_HEADER]: "1" });
      res.end(text);
      return;
    }
    const headers: [string, string][] = [];
    response.headers.forEach((v, k) => {
      if (k !== "content-length" && k !== "transfer-encoding" && k !== "connection" && k !== "set-cookie")
        headers.push([k, v]);
    });
    for (const c of response.headers.getSetCookie()) headers.push(["set-cookie", c]);
    res.writeHead(response.status === 101 ? 500 : response.status, response.statusText, headers.flat());
    if (!response.body) {
      res.end();
      return;
    }
    const stream = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream);
    res.on("close", () => stream.destroy());
    stream.pipe(res);
  }

  /** The object's request for a WebSocket upgrade; an error it throws goes back in an error response. */
  async #fetchUpgrade(internal: Request): Promise<Response> {
    const route = this.#route(new URL(internal.url).pathname);
    if (route?.kind !== "fetch") return new Response("no such object route\n", { status: 404 });
    const headers: Record<string, string> = {};
    internal.headers.forEach((v, k) => {
      headers[k] = v;
    });
    const request = this.#request("GET", headers, undefined, true);
    if (!request) return new Response(`${URL_HEADER} must be the request's absolute URL\n`, { status: 400 });
    try {
      return await this.#target.fetch(route.className, route.hex, request);
    } catch (e) {
      return new Response(JSON.stringify(errorFields(e)), {
        status: 500,
        headers: { "content-type": "application/json", [ERROR_HEADER]: "1" },
      });
    }
  }

  /** The forwarded request as the object sees it: its own URL, method, headers and body. */
  #request(
    method: string,
    incoming: Record<string, string | string[] | undefined>,
    body: Buffer | undefined,
    upgrade = false,
  ): Request | undefined {
    const url = incoming[URL_HEADER];
    if (typeof url !== "string" || !URL.canParse(url)) return undefined;
    const headers = new Headers();
    for (const [k, v] of Object.entries(incoming)) {
      if (v === undefined || (HOP_HEADERS.has(k) && !(upgrade && k === "upgrade"))) continue;
      if (Array.isArray(v)) for (const x of v) headers.append(k, x);
      else headers.set(k, v);
    }
    if (upgrade) headers.set("upgrade", "websocket");
    const hasBody = method !== "GET" && method !== "HEAD" && body !== undefined && body.length > 0;
    return new Request(url, { method, headers, ...(hasBody ? { body } : {}) });
  }
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  res.end(`${text}\n`);
}

/** The request's body, or undefined when it is larger than an RPC message may be. */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_MESSAGE_BYTES) over = true;
      else chunks.push(c);
    });
    req.on("end", () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
