import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Duplex, Readable } from "node:stream";
import { API_PREFIX } from "@cairn/api";
import { createAdaptorServer } from "@hono/node-server";
import type { Hono } from "hono";
import { appToken, unauthorized } from "./app.ts";
import { checkToken, isLoopback } from "./auth.ts";
import { isDashboardPath, servesDashboard } from "./dashboard.ts";
import { describeError, errorEnvelope, HttpError } from "./errors.ts";
import { hostAllowed, parseHostAllow } from "./guard.ts";

export interface ServerOptions {
  /** The API app from `createApi`; it answers everything under `/api/v1`. */
  app: Hono;
  /** Default "127.0.0.1". Any other than a loopback address needs a token. */
  host?: string;
  /** Default 8787; 0 picks a free port. */
  port?: number;
  /**
   * Requires `Authorization: Bearer <token>` on every `/api/v1` request (as `createApi({ token })`
   * does), which lets the server listen beyond loopback. An app created with a token needs none
   * here; if both are given they must be the same.
   */
  token?: string;
  /**
   * Handles every request outside `/api/v1` (a Cloudflare-style `fetch` handler), except the
   * dashboard's `/_cairn/` when the app serves it. Without it those requests go to the app, which
   * answers 404, or with the dashboard, redirects `/` to `/_cairn/`.
   */
  fetch?: (request: Request) => Response | Promise<Response>;
  /** Called after every response with its method, path, status and duration (for request logs). */
  onRequest?: (info: { method: string; path: string; status: number; ms: number }) => void;
  /**
   * Host names requests may be addressed to besides loopback names (`localhost`, `*.localhost`,
   * `127.0.0.1`, `[::1]`) and the address listened on: exact names or addresses, or `*.example.com`
   * for subdomains; any port. Every other `Host` is answered 403, on every path (the API, the
   * dashboard and `fetch`), so a web page cannot reach the server by re-pointing its own domain at
   * it (DNS rebinding). On a wildcard address ("0.0.0.0", "::") without this option any `Host` is
   * answered, since the names the server is reached by are not known.
   */
  hostAllow?: string[];
  /**
   * Handles HTTP upgrade requests (WebSockets) outside `/api/v1`: Node's `'upgrade'` listener, e.g.
   * `upgradeListener(fetch)` of `@cairn/objects`, which sends them through the Worker's `fetch`.
   * Without it, upgrade requests are refused.
   */
  upgrade?: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

export interface RunningServer {
  /** E.g. "http://127.0.0.1:8787". */
  url: string;
  port: number;
  /** Stops listening and closes open connections (event streams included). */
  close(): Promise<void>;
}

function isApiPath(pathname: string): boolean {
  return pathname === API_PREFIX || pathname.startsWith(`${API_PREFIX}/`);
}

function hostPatternOf(host: string): string[] {
  try {
    return parseHostAllow([host]);
  } catch {
    return [];
  }
}

const isWildcard = (host: string) => host === "0.0.0.0" || host === "::" || host === "[::]";

/** Methods the `Request` constructor refuses; such requests are handed on as they came. */
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);

/**
 * A standard `Request` (of the global class) for a request `@hono/node-server` received. Its own
 * objects are not instances of the global class, so `new Request(request, init)` and `fetch(request)`
 * throw on them, which Hono middleware and Workers code both do. The body is read from the socket
 * only when someone reads it (high-water mark 0), so an unread body is still discarded by Node and
 * the connection stays usable.
 */
function standardRequest(request: Request, incoming: IncomingMessage, outgoing: ServerResponse): Request {
  const method = request.method;
  if (FORBIDDEN_METHODS.has(method.toUpperCase())) return request;
  const controller = new AbortController();
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) controller.abort(new Error("The client closed the connection"));
  });
  const init: RequestInit & { duplex?: "half" } = {
    method,
    headers: request.headers,
    signal: controller.signal,
  };
  if (method !== "GET" && method !== "HEAD") {
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    init.body = new ReadableStream<Uint8Array>(
      {
        async pull(c) {
          reader ??= (Readable.toWeb(incoming) as ReadableStream<Uint8Array>).getReader();
          const { done, value } = await reader.read();
          if (done) c.close();
          else c.enqueue(value);
        },
        async cancel(reason) {
          await reader?.cancel(reason);
        },
      },
      { highWaterMark: 0 },
    );
    init.duplex = "half";
  }
  return new Request(request.url, init);
}

/**
 * Serves the API over HTTP with Node's `http` module. Refuses to listen on a non-loopback host
 * without a token: the API can start, stop and read every instance.
 *
 * ```ts
 * const server = await startServer({ app: createApi({ runtime }), port: 8787, fetch: worker.fetch });
 * console.log(server.url);
 * await server.close();
 * ```
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { app } = options;
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 8787;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`startServer: port must be a whole number from 0 to 65535, got ${port}`);
  if (options.token !== undefined && (typeof options.token !== "string" || options.token === ""))
    throw new Error("startServer: token must be a non-empty string");
  const ownToken = appToken(app);
  if (options.token !== undefined && ownToken !== undefined && options.token !== ownToken)
    throw new Error("startServer: token differs from the one the app was created with");
  // The server checks the token itself only when the app does not.
  const serverToken = ownToken === undefined ? options.token : undefined;
  if (!isLoopback(host) && options.token === undefined && ownToken === undefined)
    throw new Error(
      `Refusing to listen on ${host} without a token: anyone who can reach it could control every instance. ` +
        "Set CAIRN_TOKEN (or pass a token) to require `Authorization: Bearer <token>`, or listen on 127.0.0.1.",
    );
  const hostAllow = parseHostAllow(options.hostAllow ?? [], "startServer: hostAllow");
  const checksHost = options.hostAllow !== undefined || !isWildcard(host);
  // The address listened on is answered too, when it can be a Host value (not "fe80::1%eth0").
  if (!isWildcard(host)) hostAllow.push(...hostPatternOf(host));
  const delegate = options.fetch;
  const dashboard = servesDashboard(app);
  const server = createAdaptorServer({
    overrideGlobalObjects: false,
    fetch: async (received: Request, bindings) => {
      // This server is HTTP/1.1 (`node:http`), never HTTP/2.
      const env = bindings as { incoming: IncomingMessage; outgoing: ServerResponse };
      const hostHeader = env.incoming.headers.host;
      if (checksHost && !hostAllowed(hostHeader, hostAllow)) {
        const refused = new HttpError(
          "forbidden",
          `Host "${hostHeader}" is not allowed: this server answers loopback names and the hosts ` +
            "given with --host-allow (startServer's hostAllow)",
          403,
        );
        const { status, error } = describeError(refused);
        return Response.json(errorEnvelope(error), { status });
      }
      const request = standardRequest(received, env.incoming, env.outgoing);
      const { pathname } = new URL(request.url);
      if (isApiPath(pathname) && serverToken !== undefined) {
        const url = new URL(request.url);
        const verdict = checkToken(
          {
            method: request.method,
            path: url.pathname,
            authorization: request.headers.get("authorization") ?? undefined,
            queryToken: url.searchParams.get("token") ?? undefined,
          },
          serverToken,
        );
        if (verdict !== "ok") {
          const { status, error } = describeError(unauthorized(verdict));
          return Response.json(errorEnvelope(error), { status });
        }
      }
      if (isApiPath(pathname) || !delegate || (dashboard && isDashboardPath(pathname)))
        return app.fetch(request, env);
      return delegate(request);
    },
  });
  const onRequest = options.onRequest;
  if (onRequest)
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const started = performance.now();
      res.once("close", () =>
        onRequest({
          method: req.method ?? "GET",
          path: (req.url ?? "/").split("?")[0]!,
          status: res.statusCode,
          ms: performance.now() - started,
        }),
      );
    });
  if (options.upgrade) {
    const upgrade = options.upgrade;
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // The same Host rule as every other request (DNS rebinding reaches WebSockets too).
      if (checksHost && !hostAllowed(req.headers.host, hostAllow)) {
        socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      const pathname = new URL(req.url ?? "/", "http://x").pathname;
      if (isApiPath(pathname) || (dashboard && isDashboardPath(pathname))) {
        socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      upgrade(req, socket, head);
    });
  }
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" || host.includes(":") ? `[${address.address}]` : host;
  return {
    url: `http://${shown}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}
