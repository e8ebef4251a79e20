import type { Connection } from "./connection.ts";

/** The frame types of upstream's protocol (`MessageType`). */
export const MessageType = {
  RPC: "rpc",
  CF_AGENT_STATE: "cf_agent_state",
  CF_AGENT_STATE_ERROR: "cf_agent_state_error",
  CF_AGENT_IDENTITY: "cf_agent_identity",
  CF_AGENT_MCP_SERVERS: "cf_agent_mcp_servers",
  CF_MCP_AGENT_EVENT: "cf_mcp_agent_event",
  CF_AGENT_SESSION: "cf_agent_session",
  CF_AGENT_SESSION_ERROR: "cf_agent_session_error",
} as const;

/** Metadata of a method marked with `@callable()`. */
export interface CallableMetadata {
  description?: string;
  /** The method gets a `StreamingResponse` as its first argument. */
  streaming?: boolean;
}

export interface RPCRequest {
  type: "rpc";
  id: string;
  method: string;
  args: unknown[];
}

export type RPCResponse =
  | { done: boolean; id: string; result: unknown; success: true; type: "rpc" }
  | { error: string; id: string; success: false; type: "rpc" };

const callableMetadata = new WeakMap<Function, CallableMetadata>();

/** The metadata of a callable method, or undefined. @internal */
export function callableOf(fn: unknown): CallableMetadata | undefined {
  return typeof fn === "function" ? callableMetadata.get(fn) : undefined;
}

/** Gives `to` the callable metadata of `from` (a wrapper of a callable method). @internal */
export function copyCallable(from: Function, to: Function): void {
  const meta = callableMetadata.get(from);
  if (meta) callableMetadata.set(to, meta);
}

/**
 * Marks a method as callable by clients over the WebSocket (`{"type":"rpc",…}` frames). A TC39
 * standard decorator (`@callable()`, `@callable({ streaming: true })`); with TypeScript's
 * `experimentalDecorators` it works too.
 */
export function callable(metadata: CallableMetadata = {}) {
  return function callableDecorator(target: any, context?: unknown, descriptor?: PropertyDescriptor): any {
    // Legacy decorators: (prototype, key, descriptor).
    if (descriptor && typeof descriptor.value === "function") {
      if (!callableMetadata.has(descriptor.value)) callableMetadata.set(descriptor.value, metadata);
      return descriptor;
    }
    void context;
    if (typeof target !== "function") throw new TypeError("@callable() applies to methods only");
    if (!callableMetadata.has(target)) callableMetadata.set(target, metadata);
    return target;
  };
}

/** @deprecated renamed to `callable`. */
export const unstable_callable: typeof callable = (metadata) => callable(metadata);

/** Upstream's test for an RPC frame: all four fields, `args` an array. @internal */
export function isRPCRequest(msg: unknown): msg is RPCRequest {
  return (
    typeof msg === "object" &&
    msg !== null &&
    (msg as RPCRequest).type === MessageType.RPC &&
    typeof (msg as RPCRequest).id === "string" &&
    typeof (msg as RPCRequest).method === "string" &&
    Array.isArray((msg as RPCRequest).args)
  );
}

/** Upstream's test for a client state frame. @internal */
export function isStateUpdateMessage(msg: unknown): msg is { type: "cf_agent_state"; state: unknown } {
  return (
    typeof msg === "object" &&
    msg !== null &&
    (msg as { type?: unknown }).type === MessageType.CF_AGENT_STATE &&
    "state" in msg
  );
}

/** Sends a reply unless the socket is closed (replies to closed sockets are dropped). @internal */
export function sendIfOpen(connection: Connection, response: RPCResponse): boolean {
  if (connection.readyState !== 1) return false;
  try {
    connection.send(JSON.stringify(response));
    return true;
  } catch (e) {
    if (connection.readyState !== 1) return false;
    throw e;
  }
}

/**
 * What a streaming callable method writes to: `send(chunk)` (a `done: false` frame), then
 * `end(final?)` or `error(message)`, each closing the stream; after that every call is a no-op
 * returning false.
 */
export class StreamingResponse {
  readonly #connection: Connection;
  readonly #id: string;
  #closed = false;

  constructor(connection: Connection, id: string) {
    this.#connection = connection;
    this.#id = id;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  send(chunk: unknown): boolean {
    if (this.#closed) {
      console.warn("StreamingResponse.send() called after stream was closed - data not sent");
      return false;
    }
    return sendIfOpen(this.#connection, {
      done: false,
      id: this.#id,
      result: chunk,
      success: true,
      type: "rpc",
    });
  }

  end(finalChunk?: unknown): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return sendIfOpen(this.#connection, {
      done: true,
      id: this.#id,
      result: finalChunk,
      success: true,
      type: "rpc",
    });
  }

  error(message: string): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return sendIfOpen(this.#connection, { error: message, id: this.#id, success: false, type: "rpc" });
  }
}
