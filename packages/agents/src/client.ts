/**
 * `@cairn/agents/client` (for users `cairnjs/agents/client`): the browser/Node client of an agent,
 * with the options and behaviour of Cloudflare's `agents/client` (SPEC §13.3), on PartySocket
 * (reconnecting WebSocket). Upstream's own client works against Cairn too; this one has no
 * dependency on Cloudflare's packages.
 */

import { PartySocket, type PartySocketOptions } from "partysocket";
import { codedError } from "./errors.ts";
import { camelCaseToKebabCase } from "./names.ts";

/** Default timeout of a non-streaming `call()`, in ms (0 disables). */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/** The connection was closed with a terminal code (1008, 4000–4999): no reconnect. */
export class AgentConnectionError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  constructor(event: { code: number; reason: string; wasClean: boolean }) {
    super(`Agent connection closed: ${event.reason || `WebSocket closed with code ${event.code}`}`);
    this.name = "AgentConnectionError";
    this.code = event.code;
    this.reason = event.reason;
    this.wasClean = event.wasClean;
  }
}

export interface StreamOptions {
  onChunk?: (chunk: unknown) => void;
  onDone?: (final: unknown) => void;
  onError?: (error: string) => void;
}

export interface CallOptions {
  /** ms; 0 disables; default `defaultCallTimeout`. Never applied to streaming calls. */
  timeout?: number;
  stream?: StreamOptions;
}

export type AgentClientOptions<State = unknown> = Omit<PartySocketOptions, "party" | "room" | "prefix"> & {
  /** The agent's class (or binding) name; kebab-cased in the URL. */
  agent: string;
  /** The agent's name. Default "default". */
  name?: string;
  /** A path of the Worker's own choosing instead of `/agents/<agent>/<name>`. */
  basePath?: string;
  path?: string;
  onStateUpdate?: (state: State, source: "server" | "client") => void;
  onStateUpdateError?: (error: string) => void;
  onIdentity?: (name: string, agent: string) => void;
  onIdentityChange?: (oldName: string, newName: string, oldAgent: string, newAgent: string) => void;
  defaultCallTimeout?: number;
  shouldReconnectOnClose?: (event: CloseEvent) => boolean;
  onConnectionError?: (error: AgentConnectionError) => void;
};

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  stream?: StreamOptions;
  transmitted: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

const isTerminal = (code: number) => code === 1008 || (code >= 4000 && code <= 4999);

/** Close codes 1008 and 4000–4999 end a connection for good (no reconnect), as upstream. */
export function isTerminalCloseEvent(event: { code: number }): boolean {
  return isTerminal(event.code);
}

const INTERNAL_PROPS = new Set([
  "then",
  "toJSON",
  "valueOf",
  "toString",
  "constructor",
  "$$typeof",
  "asymmetricMatch",
]);

/**
 * `stub.method(...args)` → `call("method", args)`; the properties JavaScript itself probes (`then`,
 * `toJSON`, …) are undefined, so logging or awaiting a stub sends nothing.
 */
export function createStubProxy<T = Record<string, (...args: unknown[]) => Promise<unknown>>>(
  call: (method: string, args: unknown[]) => unknown,
): T {
  return new Proxy({} as Record<string, unknown>, {
    get: (_t, prop) =>
      typeof prop !== "string" || INTERNAL_PROPS.has(prop)
        ? undefined
        : (...args: unknown[]) => call(prop, args),
  }) as T;
}

/** A WebSocket client of one agent: state sync, RPC (`call`, `stub`), identity, reconnects. */
export class AgentClient<State = unknown> extends PartySocket {
  static override fetch(): Promise<Response> {
    throw new Error("AgentClient.fetch is not implemented, use agentFetch instead");
  }

  agent: string;
  override name: string;
  state: State | undefined = undefined;
  identified = false;
  connectionError: AgentConnectionError | null = null;
  readonly stub: Record<string, (...args: unknown[]) => Promise<unknown>>;

  readonly #options: AgentClientOptions<State>;
  readonly #pending = new Map<string, Pending>();
  #ready!: Promise<void>;
  #resolveReady!: () => void;
  #previous: { name: string; agent: string } | null = null;

  constructor(options: AgentClientOptions<State>) {
    const agent = camelCaseToKebabCase(options.agent);
    const reconnect = (event: CloseEvent) =>
      (options.shouldReconnectOnClose?.(event) ?? true) && !isTerminal(event.code);
    super(
      options.basePath
        ? ({
            ...options,
            basePath: options.basePath,
            shouldReconnectOnClose: reconnect,
          } as PartySocketOptions)
        : ({
            party: agent,
            prefix: "agents",
            room: options.name || "default",
            ...options,
            shouldReconnectOnClose: reconnect,
          } as PartySocketOptions),
    );
    this.agent = agent;
    this.name = options.name || "default";
    this.#options = options;
    this.#resetReady();
    this.stub = createStubProxy((method, args) => this.call(method, args));
    this.addEventListener("message", (event) => this.#onFrame((event as MessageEvent).data));
    this.addEventListener("close", (event) => this.#onClose(event as CloseEvent));
  }

  /** Resolves when the agent has sent its identity (again after each reconnect). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  #resetReady(): void {
    this.#ready = new Promise((resolve) => (this.#resolveReady = resolve));
  }

  #onFrame(data: unknown): void {
    if (typeof data !== "string") return;
    let msg: Record<string, any>;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === "cf_agent_identity") {
      const prev = this.#previous;
      this.identified = true;
      this.name = msg.name;
      this.agent = msg.agent;
      this.#previous = { name: msg.name, agent: msg.agent };
      if (prev && (prev.name !== msg.name || prev.agent !== msg.agent)) {
        if (this.#options.onIdentityChange)
          this.#options.onIdentityChange(prev.name, msg.name, prev.agent, msg.agent);
        else
          console.warn(
            `[agents] Identity changed on reconnect: ${prev.agent}/${prev.name} → ${msg.agent}/${msg.name}`,
          );
      }
      this.#options.onIdentity?.(msg.name, msg.agent);
      this.#resolveReady();
      return;
    }
    if (msg.type === "cf_agent_state") {
      this.state = msg.state as State;
      this.#options.onStateUpdate?.(msg.state as State, "server");
      return;
    }
    if (msg.type === "cf_agent_state_error") {
      this.#options.onStateUpdateError?.(String(msg.error));
      return;
    }
    if (msg.type === "rpc" && typeof msg.id === "string") {
      const p = this.#pending.get(msg.id);
      if (!p) {
        console.warn(`[agents] Received a response for an unknown or finished call ${msg.id}`);
        return;
      }
      if (msg.success === false) {
        this.#finish(msg.id);
        p.stream?.onError?.(msg.error);
        p.reject(new Error(msg.error));
        return;
      }
      if (msg.done === false) {
        p.stream?.onChunk?.(msg.result);
        return;
      }
      this.#finish(msg.id);
      p.stream?.onDone?.(msg.result);
      p.resolve(msg.result);
    }
  }

  #finish(id: string): void {
    const p = this.#pending.get(id);
    if (p?.timer) clearTimeout(p.timer);
    this.#pending.delete(id);
  }

  #rejectWhere(test: (p: Pending) => boolean, error: () => Error): void {
    for (const [id, p] of [...this.#pending]) {
      if (!test(p)) continue;
      this.#finish(id);
      p.stream?.onError?.(error().message);
      p.reject(error());
    }
  }

  #onClose(event: CloseEvent): void {
    this.identified = false;
    this.#resetReady();
    if (isTerminal(event.code)) {
      this.connectionError = new AgentConnectionError(event);
      this.#options.onConnectionError?.(this.connectionError);
      this.#rejectWhere(
        () => true,
        () => new Error("Connection closed"),
      );
      return;
    }
    // Calls already on the wire are lost with the connection; buffered ones go out after reconnect.
    this.#rejectWhere(
      (p) => p.transmitted,
      () => new Error("Connection closed"),
    );
  }

  /** Calls a `@callable()` method; streams when `options.stream` is given. */
  call<T = unknown>(
    method: string,
    args: unknown[] = [],
    options: CallOptions | StreamOptions = {},
  ): Promise<T> {
    const opts: CallOptions =
      "onChunk" in options || "onDone" in options || "onError" in options
        ? { stream: options as StreamOptions }
        : (options as CallOptions);
    return new Promise<T>((resolve, reject) => {
      const id = crypto.randomUUID();
      const transmitted = this.readyState === 1;
      const pending: Pending = { method, resolve: resolve as (v: unknown) => void, reject, transmitted };
      if (opts.stream) pending.stream = opts.stream;
      const timeout = opts.stream
        ? 0
        : (opts.timeout ?? this.#options.defaultCallTimeout ?? DEFAULT_CALL_TIMEOUT_MS);
      if (timeout > 0)
        pending.timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(codedError("agent.rpc_timeout", `RPC call to ${method} timed out after ${timeout}ms`));
        }, timeout);
      this.#pending.set(id, pending);
      this.send(JSON.stringify({ type: "rpc", id, method, args }));
      if (!transmitted) {
        // Sent when the socket opens: it is on the wire from then on.
        this.addEventListener("open", () => (pending.transmitted = true), { once: true });
      }
    });
  }

  /** Sends a new state to the agent (broadcast to its other clients). */
  setState(state: State): void {
    this.send(JSON.stringify({ type: "cf_agent_state", state }));
    this.state = state;
    this.#options.onStateUpdate?.(state, "client");
  }

  override close(code?: number, reason?: string): void {
    this.#rejectWhere(
      () => true,
      () => new Error("Connection closed"),
    );
    super.close(code, reason);
  }
}

/** Plain HTTP to an agent: `/agents/<agent>/<name>` (or `basePath`) on `host`. */
export async function agentFetch(
  opts: {
    agent: string;
    name?: string;
    basePath?: string;
    host: string;
    protocol?: "http" | "https";
    path?: string;
  },
  init?: RequestInit,
): Promise<Response> {
  const local = /^(localhost|127\.|\[::1\])/.test(opts.host);
  const protocol = opts.protocol ?? (local ? "http" : "https");
  const path = opts.basePath
    ? opts.basePath.replace(/^\/+/, "")
    : `agents/${camelCaseToKebabCase(opts.agent)}/${encodeURIComponent(opts.name ?? "default")}`;
  const suffix = opts.path ? `/${opts.path.replace(/^\/+/, "")}` : "";
  return fetch(`${protocol}://${opts.host}/${path}${suffix}`, init);
}
