import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket as WsSocket } from "ws";
import { MAX_MESSAGE_BYTES } from "./limits.ts";
import { responseWebSocket, type WebSocket } from "./websocket.ts";

/** Node's `'upgrade'` listener of an `http.Server`. */
export type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface UpgradeOptions {
  /** Largest message a client may send (bigger frames close the connection with 1009). Default 32 MiB. */
  maxPayload?: number;
  /** Where failures of the handler are reported. Default: console.error. */
  log?: (message: string, error?: unknown) => void;
  /** Open connections are tracked here, so the server can close them. */
  connections?: Set<WsSocket>;
}

/**
 * Turns WebSocket upgrade requests into calls of a Worker's `fetch` handler: the request (with its
 * `Upgrade: websocket` header) goes to `fetch` first; a `101` response carrying a `webSocket` (the
 * client end of a `WebSocketPair`) is bridged to a real WebSocket connection (the `ws` package);
 * any other response is written back as plain HTTP and the socket closed.
 *
 * ```ts
 * server.on("upgrade", upgradeListener((request) => worker.fetch(request, env, ctx)));
 * ```
 */
export function upgradeListener(
  fetch: (request: Request) => Response | Promise<Response>,
  options: UpgradeOptions = {},
): UpgradeListener {
  const log = options.log ?? ((m, e) => console.error(m, e ?? ""));
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload ?? MAX_MESSAGE_BYTES });
  return (req, socket, head) => {
    socket.on("error", () => {});
    const request = toRequest(req);
    Promise.resolve()
      .then(() => fetch(request))
      .then(
        (response) => {
          const client = response instanceof Response ? responseWebSocket(response) : null;
          if (response?.status === 101 && client) {
            wss.handleUpgrade(req, socket, head, (conn) => {
              options.connections?.add(conn);
              conn.on("close", () => options.connections?.delete(conn));
              bridge(conn, client);
            });
            return;
          }
          if (!(response instanceof Response))
            return writeHttp(socket, new Response("fetch did not return a Response\n", { status: 500 }));
          return writeHttp(socket, response);
        },
        (e) => {
          log(`${req.method} ${req.url}: the fetch handler threw on a WebSocket upgrade`, e);
          return writeHttp(
            socket,
            new Response(`Internal error: ${(e as Error)?.message ?? e}\n`, { status: 500 }),
          );
        },
      )
      .catch((e) => {
        log("answering a WebSocket upgrade failed", e);
        socket.destroy();
      });
  };
}

/** Connects a real connection to the client end of a pair: each side's messages and close reach the other. */
export function bridge(conn: WsSocket, client: WebSocket): void {
  client.addEventListener("message", (e) => {
    const data = (e as MessageEvent).data as string | ArrayBuffer;
    if (conn.readyState === conn.OPEN) conn.send(typeof data === "string" ? data : Buffer.from(data));
  });
  client.addEventListener("close", (e) => {
    const { code, reason } = e as Event & { code: number; reason: string };
    if (conn.readyState === conn.OPEN || conn.readyState === conn.CONNECTING) {
      // 1006 (the other side's connection broke, e.g. a forwarded socket's worker went away) is
      // passed on as a broken connection; other codes a close frame may not carry, as a plain close.
      if (code === 1006) conn.terminate();
      else if (code === undefined || !sendableCloseCode(code)) conn.close();
      else conn.close(code, reason);
    }
  });
  client.addEventListener("error", () => conn.terminate());
  // Accepting delivers what the object sent before the connection was up (listeners are in place).
  client.accept();
  conn.on("message", (data, isBinary) => {
    if (client.readyState !== 1) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    client.send(isBinary ? new Uint8Array(buf) : buf.toString("utf8"));
  });
  conn.on("close", (code, reason) => {
    client.closeInternal(code || 1005, reason.toString("utf8"), code !== 1006);
  });
  conn.on("error", (e) => {
    if (client.readyState !== 3) client.fail(e);
  });
}

/** Whether a close frame may carry `code` (RFC 6455 §7.4: 1005, 1006 and 1015 are never sent). */
function sendableCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

function toRequest(req: IncomingMessage): Request {
  const host = req.headers.host ?? "localhost";
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) headers.append(k, x);
    else headers.set(k, v);
  }
  return new Request(`http://${host}${req.url ?? "/"}`, { method: req.method ?? "GET", headers });
}

async function writeHttp(socket: Duplex, response: Response): Promise<void> {
  const body = Buffer.from(await response.arrayBuffer());
  const lines = [
    `HTTP/1.1 ${response.status === 101 ? 500 : response.status} ${response.statusText || "Error"}`,
  ];
  response.headers.forEach((v, k) => {
    if (k !== "content-length" && k !== "transfer-encoding" && k !== "connection") lines.push(`${k}: ${v}`);
  });
  lines.push(`content-length: ${body.length}`, "connection: close", "", "");
  socket.end(Buffer.concat([Buffer.from(lines.join("\r\n")), body]));
}
