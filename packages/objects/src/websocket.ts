import { deserialize, serialize } from "node:v8";
import { MAX_ATTACHMENT_BYTES, MAX_MESSAGE_BYTES } from "./limits.ts";

/** What a WebSocket message is inside a project: text, or bytes as an `ArrayBuffer`. */
export type WebSocketData = string | ArrayBuffer;

/**
 * How the host takes over a socket accepted with `ctx.acceptWebSocket`: its messages, close and
 * error become events of the owning object (which may be unloaded meanwhile).
 * @internal
 */
export interface SocketOwner {
  /** Delivers an incoming message (the host runs `webSocketMessage` as an event). */
  message(ws: WebSocket, data: WebSocketData): void;
  close(ws: WebSocket, code: number, reason: string, wasClean: boolean): void;
  error(ws: WebSocket, error: unknown): void;
  /** Resolves when writes made so far are committed (the output gate); undefined when nothing is pending. */
  outputGate(): Promise<void> | undefined;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/**
 * One end of a `WebSocketPair` (Cloudflare's Workers `WebSocket`): what a Worker or a Durable
 * Object holds. Messages sent on one end arrive at the other. The end returned in a 101 response
 * is bridged by Cairn's HTTP server to a real WebSocket connection.
 */
export class WebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;

  #readyState = OPEN;
  #peer!: WebSocket;
  #accepted = false;
  /** Events that arrived before `accept()`. */
  #inbox: (() => void)[] = [];
  #attachment: Uint8Array | undefined;
  /** @internal Set by `ctx.acceptWebSocket`. */
  owner: SocketOwner | undefined;
  /** @internal Tags given to `ctx.acceptWebSocket`. */
  tags: string[] = [];
  /** @internal When the auto-response last answered on this socket. */
  autoResponseAt: Date | null = null;
  /** @internal The output gate of the object that sends on this end (set by the host). */
  gate: (() => Promise<void> | undefined) | undefined;
  #outbox: Promise<void> | undefined;
  #outPending = 0;
  #closeSent = false;

  url: string | null = null;
  protocol: string | null = null;
  extensions: string | null = null;
  binaryType: "arraybuffer" | "blob" = "arraybuffer";

  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: Event) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onopen: ((event: Event) => void) | null = null;

  /** @internal */
  static pair(): [WebSocket, WebSocket] {
    const a = new WebSocket(SECRET);
    const b = new WebSocket(SECRET);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  /** @internal Use `new WebSocketPair()`. */
  constructor(secret?: unknown) {
    super();
    if (secret !== SECRET)
      throw new TypeError(
        "Cairn's Workers WebSocket cannot connect to a URL; use new WebSocketPair() inside a Worker, or a WebSocket client",
      );
  }

  /** @internal The other end of the pair. */
  get peer(): WebSocket {
    return this.#peer;
  }

  get readyState(): number {
    return this.#readyState;
  }

  /** Starts delivering this end's events to its listeners (a plain, non-hibernatable socket). */
  accept(): void {
    if (this.owner) throw new TypeError("This WebSocket was accepted with acceptWebSocket() already");
    if (this.#accepted) return;
    this.#accepted = true;
    for (const f of this.#inbox.splice(0)) f();
  }

  /** @internal Marks the socket as taken over by the host (`ctx.acceptWebSocket`). */
  acceptHibernatable(owner: SocketOwner, tags: string[]): void {
    if (this.#accepted || this.owner)
      throw new TypeError("This WebSocket has already been accepted (accept() or acceptWebSocket())");
    this.owner = owner;
    this.tags = tags;
    this.gate = () => owner.outputGate();
    this.#accepted = true;
    for (const f of this.#inbox.splice(0)) f();
  }

  /** Whether `accept()` or `acceptWebSocket()` was called. */
  get accepted(): boolean {
    return this.#accepted;
  }

  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (!this.#accepted)
      throw new TypeError(
        "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.",
      );
    if (this.#readyState !== OPEN) throw new TypeError("Can't call WebSocket send() after close().");
    const message = toData(data);
    const size = typeof message === "string" ? Buffer.byteLength(message) : message.byteLength;
    if (size > MAX_MESSAGE_BYTES)
      throw new RangeError(`WebSocket message is ${size} bytes; the limit is ${MAX_MESSAGE_BYTES} bytes`);
    this.#out(() => this.#peer.#receive(message));
  }

  close(code?: number, reason?: string): void {
    // After the peer's close was answered (or our own), closing again does nothing.
    if (this.#readyState === CLOSED || this.#closeSent) return;
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999))
      throw new TypeError(`Invalid WebSocket close code: ${code} (use 1000 or 3000–4999)`);
    if (reason !== undefined && Buffer.byteLength(reason) > 123)
      throw new TypeError("WebSocket close reason must be at most 123 bytes");
    this.closeInternal(code ?? 1005, reason ?? "", true);
  }

  /** @internal Closes without checking the code (a close that came from the network). */
  closeInternal(code: number, reason: string, wasClean: boolean): void {
    if (this.#readyState === CLOSED || this.#closeSent) return;
    this.#closeSent = true;
    this.#readyState = this.#readyState === OPEN ? CLOSING : CLOSED;
    this.#out(() => this.#peer.#receiveClose(code, reason, wasClean));
  }

  /** Keeps a value (≤ 16 KiB encoded) with the socket across hibernation. */
  serializeAttachment(value: unknown): void {
    let bytes: Buffer;
    try {
      bytes = serialize(value);
    } catch (e) {
      throw new TypeError(`serializeAttachment: the value cannot be serialized: ${(e as Error).message}`);
    }
    if (bytes.length > MAX_ATTACHMENT_BYTES)
      throw new RangeError(
        `A WebSocket 'attachment' cannot be larger than ${MAX_ATTACHMENT_BYTES} bytes.'attachment' was ${bytes.length} bytes.`,
      );
    this.#attachment = bytes;
  }

  deserializeAttachment(): unknown {
    return this.#attachment === undefined ? null : deserialize(this.#attachment);
  }

  /** @internal Fails the connection (the peer sees an error, then a close with 1006). */
  fail(error: unknown): void {
    if (this.#readyState === CLOSED) return;
    this.#readyState = CLOSED;
    this.#peer.#receiveError(error);
    this.#peer.#receiveClose(1006, "", false);
  }

  #out(deliver: () => void): void {
    const gate = this.#outPending === 0 ? this.gate?.() : (this.#outbox ?? this.gate?.());
    if (!gate && this.#outPending === 0) {
      deliver();
      return;
    }
    this.#outPending++;
    // A gate that fails (the object was reset and its writes thrown away) fails the connection:
    // the peer must not miss a message and go on as if it had been sent.
    this.#outbox = (this.#outbox ?? Promise.resolve())
      .then(() => gate)
      .then(deliver, (e: unknown) => this.fail(e))
      .finally(() => {
        if (--this.#outPending === 0) this.#outbox = undefined;
      });
  }

  #receive(data: WebSocketData): void {
    if (this.#readyState === CLOSED) return;
    if (!this.#accepted) {
      this.#inbox.push(() => this.#receive(data));
      return;
    }
    if (this.owner) {
      this.owner.message(this, data);
      return;
    }
    const event = new MessageEvent("message", { data });
    this.#dispatch(event, this.onmessage);
  }

  #receiveClose(code: number, reason: string, wasClean: boolean): void {
    if (!this.#accepted) {
      this.#inbox.push(() => this.#receiveClose(code, reason, wasClean));
      return;
    }
    if (this.#readyState === CLOSED && this.#closeSent) {
      // Our own close was answered.
      return;
    }
    this.#readyState = CLOSED;
    if (!this.#closeSent) {
      // Answer the close (as Cloudflare does with web_socket_auto_reply_to_close).
      this.#closeSent = true;
      const peer = this.#peer;
      if (peer.#readyState !== CLOSED) peer.#readyState = CLOSED;
    }
    if (this.owner) {
      this.owner.close(this, code, reason, wasClean);
      return;
    }
    const event = Object.assign(new Event("close"), { code, reason, wasClean });
    this.#dispatch(event, this.onclose);
  }

  #receiveError(error: unknown): void {
    if (!this.#accepted) {
      this.#inbox.push(() => this.#receiveError(error));
      return;
    }
    if (this.owner) {
      this.owner.error(this, error);
      return;
    }
    const event = Object.assign(new Event("error"), {
      error,
      message: String((error as Error)?.message ?? error),
    });
    this.#dispatch(event, this.onerror);
  }

  #dispatch(event: Event, handler: ((e: any) => void) | null): void {
    try {
      handler?.call(this, event);
    } catch (e) {
      console.error("A WebSocket event listener threw", e);
    }
    this.dispatchEvent(event);
  }
}

const SECRET = Symbol("cairn.websocket");

/** `new WebSocketPair()`: two connected ends, `0` (the client's, for the response) and `1` (the server's). */
export const WebSocketPair = function WebSocketPair(this: unknown) {
  if (!new.target) throw new TypeError("WebSocketPair must be called with new");
  const [a, b] = WebSocket.pair();
  return { 0: a, 1: b };
} as unknown as { new (): { 0: WebSocket; 1: WebSocket } };

/** A request text and its automatic response (`ctx.setWebSocketAutoResponse`). */
export class WebSocketRequestResponsePair {
  readonly #request: string;
  readonly #response: string;
  constructor(request: string, response: string) {
    if (typeof request !== "string" || typeof response !== "string")
      throw new TypeError("WebSocketRequestResponsePair needs a request and a response string");
    if (Buffer.byteLength(request) > 2048 || Buffer.byteLength(response) > 2048)
      throw new RangeError("WebSocketRequestResponsePair: request and response must be at most 2048 bytes");
    this.#request = request;
    this.#response = response;
  }
  get request(): string {
    return this.#request;
  }
  get response(): string {
    return this.#response;
  }
}

function toData(data: unknown): WebSocketData {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return data.slice(0);
  if (ArrayBuffer.isView(data))
    return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  throw new TypeError("WebSocket send() takes a string, an ArrayBuffer or an ArrayBufferView");
}

const BaseResponse = globalThis.Response;
const WEBSOCKET = Symbol.for("cairn.response.webSocket");

/**
 * Cloudflare's `Response`: accepts `{ status: 101, webSocket }` (Node's refuses status 101) and
 * exposes `response.webSocket`. Everything else is Node's `Response`.
 */
export class Response extends BaseResponse {
  constructor(
    body?: ConstructorParameters<typeof BaseResponse>[0],
    init?: ResponseInit & { webSocket?: WebSocket | null },
  ) {
    const webSocket = init?.webSocket ?? null;
    if (init?.status === 101) {
      if (!webSocket)
        throw new RangeError("Responses with status 101 need a webSocket (from a WebSocketPair)");
      super(body, { ...init, status: 200 });
      Object.defineProperty(this, "status", { value: 101 });
      Object.defineProperty(this, "ok", { value: false });
    } else super(body, init);
    (this as Record<symbol, unknown>)[WEBSOCKET] = webSocket;
  }

  /** Every Node `Response` counts (e.g. from `Response.json()`), so replacing the global breaks no `instanceof`. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof BaseResponse;
  }

  /** The client end of a WebSocketPair, on a 101 response. */
  get webSocket(): WebSocket | null {
    return ((this as Record<symbol, unknown>)[WEBSOCKET] as WebSocket | null) ?? null;
  }
}

/** The WebSocket of a 101 response made with Cairn's `Response`, if any. */
export function responseWebSocket(response: globalThis.Response): WebSocket | null {
  const ws = (response as unknown as Record<symbol, unknown>)[WEBSOCKET];
  return ws instanceof WebSocket ? ws : null;
}

let installed = false;

/**
 * Puts `WebSocketPair`, `WebSocketRequestResponsePair` and the 101-capable `Response` on
 * `globalThis`, as a Worker sees them. Idempotent. Node's own `WebSocket` client global is kept.
 */
export function installWorkersGlobals(): void {
  if (installed) return;
  installed = true;
  const g = globalThis as Record<string, unknown>;
  g.WebSocketPair = WebSocketPair;
  g.WebSocketRequestResponsePair = WebSocketRequestResponsePair;
  g.Response = Response;
}
