import type { DurableObjectId } from "./ids.ts";
import { MAX_WEBSOCKET_TAG_LENGTH, MAX_WEBSOCKET_TAGS } from "./limits.ts";
import type { ObjectStorage } from "./storage.ts";
import { WebSocket, type WebSocketRequestResponsePair } from "./websocket.ts";

/** What `DurableObjectState` needs from the host, per object. @internal */
export interface StateHost {
  waitUntil(promise: Promise<unknown>): void;
  blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T>;
  acceptWebSocket(ws: WebSocket, tags: string[]): void;
  /** Accepted sockets of this object that are not closed. */
  webSockets(): WebSocket[];
  autoResponse: WebSocketRequestResponsePair | null;
  abort(reason: string | undefined): void;
}

/**
 * `this.ctx` of a Durable Object (Cloudflare's `DurableObjectState`): its id, storage, and the
 * event-loop controls (`waitUntil`, `blockConcurrencyWhile`) and hibernatable WebSockets.
 */
export class DurableObjectState<Props = unknown> {
  readonly id: DurableObjectId;
  readonly storage: ObjectStorage;
  readonly props: Props;
  readonly #host: StateHost;
  #eventTimeout: number | null = null;

  /** @internal Made by the host. */
  constructor(id: DurableObjectId, storage: ObjectStorage, host: StateHost, props?: Props) {
    this.id = id;
    this.storage = storage;
    this.#host = host;
    this.props = (props ?? {}) as Props;
  }

  /** Keeps the object loaded until `promise` settles; its rejection is logged. */
  waitUntil(promise: Promise<unknown>): void {
    this.#host.waitUntil(Promise.resolve(promise));
  }

  /**
   * Runs `fn` with the input gate closed: no other event (request, RPC call, alarm, message) is
   * delivered to this object until it settles. If it throws, the object is reset (unloaded; the
   * next event constructs it again).
   */
  blockConcurrencyWhile<T>(fn: () => Promise<T> | T): Promise<T> {
    if (typeof fn !== "function") throw new TypeError("blockConcurrencyWhile needs a function");
    return this.#host.blockConcurrencyWhile(async () => fn());
  }

  /**
   * Takes over `ws` (the server end of a `WebSocketPair`) for hibernation: its messages, close and
   * errors arrive as `webSocketMessage`, `webSocketClose`, `webSocketError` events, also after the
   * object was unloaded while the connection stayed open. At most 10 tags of 256 characters each.
   */
  acceptWebSocket(ws: WebSocket, tags: string[] = []): void {
    if (!(ws instanceof WebSocket))
      throw new TypeError("acceptWebSocket: the first argument must be a WebSocket (from a WebSocketPair)");
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== "string"))
      throw new TypeError("acceptWebSocket: tags must be an array of strings");
    if (tags.length > MAX_WEBSOCKET_TAGS)
      throw new RangeError(`acceptWebSocket: at most ${MAX_WEBSOCKET_TAGS} tags, got ${tags.length}`);
    const long = tags.find((t) => t.length > MAX_WEBSOCKET_TAG_LENGTH);
    if (long !== undefined)
      throw new RangeError(`acceptWebSocket: a tag is longer than ${MAX_WEBSOCKET_TAG_LENGTH} characters`);
    this.#host.acceptWebSocket(ws, [...new Set(tags)]);
  }

  /** Accepted (hibernatable) sockets that are still open, those with `tag` when given. */
  getWebSockets(tag?: string): WebSocket[] {
    const all = this.#host.webSockets();
    return tag === undefined ? all : all.filter((ws) => ws.tags.includes(tag));
  }

  getTags(ws: WebSocket): string[] {
    if (!(ws instanceof WebSocket) || !ws.owner)
      throw new TypeError("getTags: the WebSocket was not accepted with ctx.acceptWebSocket()");
    return [...ws.tags];
  }

  /**
   * Answers `pair.request` with `pair.response` on every accepted socket without waking the
   * object. Without an argument, removes it.
   */
  setWebSocketAutoResponse(pair?: WebSocketRequestResponsePair): void {
    this.#host.autoResponse = pair ?? null;
  }

  getWebSocketAutoResponse(): WebSocketRequestResponsePair | null {
    return this.#host.autoResponse;
  }

  getWebSocketAutoResponseTimestamp(ws: WebSocket): Date | null {
    return ws instanceof WebSocket ? ws.autoResponseAt : null;
  }

  /** Accepted for compatibility; Cairn does not time out WebSocket event handlers. */
  setHibernatableWebSocketEventTimeout(timeoutMs?: number): void {
    this.#eventTimeout = timeoutMs ?? null;
  }

  getHibernatableWebSocketEventTimeout(): number | null {
    return this.#eventTimeout;
  }

  /** Resets the object: it is unloaded, and the next event constructs it again. */
  abort(reason?: string): void {
    this.#host.abort(reason);
  }
}
