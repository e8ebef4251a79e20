/**
 * `@cairn/agents/react` (for users `cairnjs/agents/react`): the React hook of an agent, `useAgent`,
 * with the options, return value and behaviour of Cloudflare's `agents/react` 0.21.0 (SPEC §13.3):
 * a PartySocket (`partysocket/react`'s `usePartySocket`) plus reactive `state`, `identified`, `name`,
 * `agent`, `ready`, `connectionError`, and `setState`, `call`, `stub`, `getHttpUrl`.
 *
 * RPC calls are kept here, not in the socket: a call made while the socket is not open waits in the
 * hook and goes out when a socket opens (also a replacement socket, when changed options made
 * `usePartySocket` build a new one), so a call is never lost in a dead socket's buffer; a call already
 * sent on a socket that closed or was replaced rejects with `Connection closed`; a call queued for
 * one agent is rejected, not sent, when the hook's address changes to another.
 */

import type { PartySocket } from "partysocket";
import { usePartySocket } from "partysocket/react";
import { use, useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { MCPServersState } from "./agent.ts";
import {
  AgentConnectionError,
  type CallOptions,
  createStubProxy,
  DEFAULT_CALL_TIMEOUT_MS,
  isTerminalCloseEvent,
  type StreamOptions,
} from "./client.ts";
import { camelCaseToKebabCase } from "./names.ts";

type QueryObject = Record<string, string | null>;

/** Default lifetime of an async `query`'s result (auth tokens and the like): 5 minutes. */
export const DEFAULT_QUERY_CACHE_TTL_MS = 5 * 60 * 1000;

/** One hop of a sub-agent address, root first. */
export interface AgentAddressStep {
  agent: string;
  name: string;
}

/** Options of `useAgent`: `usePartySocket`'s (but `party`, `room`, `query`) and the agent's. */
export type UseAgentOptions<State = unknown> = Omit<
  Parameters<typeof usePartySocket>[0],
  "party" | "room" | "query"
> & {
  /** The agent's class (or binding) name, kebab-cased in the URL (ignored with `basePath`). */
  agent: string;
  /** The agent's name; default `"default"` (ignored with `basePath`). */
  name?: string;
  /** A path of the Worker's own choosing instead of `/agents/<agent>/<name>`. */
  basePath?: string;
  /** Query parameters, or an async function giving them (resolved with React's `use`: Suspense). */
  query?: QueryObject | (() => Promise<QueryObject>);
  /** What an async `query`'s cached result depends on. */
  queryDeps?: unknown[];
  /** ms an async `query`'s result is reused; default 5 minutes. */
  cacheTtl?: number;
  onStateUpdate?: (state: State, source: "server" | "client") => void;
  onStateUpdateError?: (error: string) => void;
  onMcpUpdate?: (mcpServers: MCPServersState) => void;
  onIdentity?: (name: string, agent: string) => void;
  onIdentityChange?: (oldName: string, newName: string, oldAgent: string, newAgent: string) => void;
  /** Appended to the URL (after a `sub` chain). */
  path?: string;
  /** A sub-agent reached through its parent: `/sub/<agent>/<name>` per hop, root first. */
  sub?: ReadonlyArray<AgentAddressStep>;
  /** ms; default 30,000; 0 disables; never applied to streaming calls. */
  defaultCallTimeout?: number;
  shouldReconnectOnClose?: (event: CloseEvent) => boolean;
  /** Called when the connection closed with a terminal code (1008, 4000–4999): no reconnect. */
  onConnectionError?: (error: AgentConnectionError) => void;
};

type UntypedCall = <T = unknown>(
  method: string,
  args?: unknown[],
  options?: CallOptions | StreamOptions,
) => Promise<T>;

/** What `useAgent` returns: the socket, with the agent's reactive fields and methods on it. */
export type UseAgentResult<State = unknown> = Omit<PartySocket, "path"> & {
  /** The agent's kebab-cased class, as the server last said (`cf_agent_identity`). */
  agent: string;
  /** The agent's name, as the server last said. */
  name: string;
  /** The whole address, root first, leaf last (one entry without `sub`). */
  path: ReadonlyArray<AgentAddressStep>;
  identified: boolean;
  /** Resolves when the agent has sent its identity; a new promise after each close. */
  ready: Promise<void>;
  state: State | undefined;
  connectionError: AgentConnectionError | null;
  setState: (state: State) => void;
  call: UntypedCall;
  stub: Record<string, (...args: unknown[]) => Promise<any>>;
  getHttpUrl: () => string;
};

interface CacheEntry {
  promise: Promise<QueryObject>;
  expiresAt: number;
}

/** Async `query` results, shared by every hook with the same agent, name, sub chain and deps. */
const queryCache = new Map<string, CacheEntry>();

function cacheKeyOf(
  agent: string,
  name: string | undefined,
  sub: ReadonlyArray<AgentAddressStep>,
  deps: unknown[],
): string {
  return sub.length === 0
    ? JSON.stringify([agent, name || "default", ...deps])
    : JSON.stringify([agent, name || "default", sub.map((s) => [s.agent, s.name]), ...deps]);
}

function cached(key: string): CacheEntry | undefined {
  const entry = queryCache.get(key);
  if (entry && Date.now() >= entry.expiresAt) {
    queryCache.delete(key);
    return undefined;
  }
  return entry;
}

/** `/sub/<agent-kebab>/<name>/…` for a sub chain, then `path`. */
function subPath(sub: ReadonlyArray<AgentAddressStep>, path: string | undefined): string {
  if (sub.length === 0) return path ?? "";
  const chain = sub
    .flatMap((s) => ["sub", camelCaseToKebabCase(s.agent), encodeURIComponent(s.name)])
    .join("/");
  if (!path) return chain;
  return `${chain}${path.startsWith("/") ? path : `/${path}`}`;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  stream?: StreamOptions;
  timer?: ReturnType<typeof setTimeout>;
  /** The serialized request, kept to send it when a socket opens. */
  request: string;
  /** The socket it went out on; null while it waits for an open socket. */
  sentOn: PartySocket | null;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** React hook connecting a component to an agent (Cloudflare's `useAgent`, SPEC §13.3). */
export function useAgent<State = unknown>(options: UseAgentOptions<State>): UseAgentResult<State>;
export function useAgent<AgentT extends { get state(): State }, State>(
  options: UseAgentOptions<State>,
): UseAgentResult<State>;
export function useAgent<State>(options: UseAgentOptions<State>): UseAgentResult<State> {
  const namespace = camelCaseToKebabCase(options.agent);
  const {
    query,
    queryDeps,
    cacheTtl,
    sub: subOption,
    path: userPath,
    defaultCallTimeout,
    onConnectionError,
    shouldReconnectOnClose,
    ...rest
  } = options;

  const subKey = JSON.stringify(subOption ?? []);
  // biome-ignore lint/correctness/useExhaustiveDependencies: keyed on the chain's content, not its identity
  const sub = useMemo(() => (subOption ?? []).map((s) => ({ agent: s.agent, name: s.name })), [subKey]);
  const leaf =
    sub.length > 0 ? sub[sub.length - 1]! : { agent: options.agent, name: options.name || "default" };
  const fullPath = useMemo(
    () => [{ agent: options.agent, name: options.name || "default" }, ...sub],
    [options.agent, options.name, sub],
  );

  const pendingRef = useRef(new Map<string, Pending>());
  /** The socket of the latest render: calls and setState go through it, also from stale closures. */
  const socketRef = useRef<PartySocket | null>(null);
  const timeoutRef = useRef(defaultCallTimeout ?? DEFAULT_CALL_TIMEOUT_MS);
  timeoutRef.current = defaultCallTimeout ?? DEFAULT_CALL_TIMEOUT_MS;
  const optionsRef = useRef(options);
  optionsRef.current = options;

  const settle = (id: string, p: Pending, error: Error) => {
    if (p.timer) clearTimeout(p.timer);
    pendingRef.current.delete(id);
    p.reject(error);
    p.stream?.onError?.(error.message);
  };
  const rejectSentOn = (socket: PartySocket, reason: string) => {
    for (const [id, p] of [...pendingRef.current]) if (p.sentOn === socket) settle(id, p, new Error(reason));
  };
  const rejectQueued = (reason: string) => {
    for (const [id, p] of [...pendingRef.current]) if (p.sentOn === null) settle(id, p, new Error(reason));
  };
  const flushQueued = () => {
    const socket = socketRef.current;
    if (!socket || socket.readyState !== socket.OPEN) return;
    for (const p of pendingRef.current.values())
      if (p.sentOn === null) {
        socket.send(p.request);
        p.sentOn = socket;
      }
  };

  // Async query: resolved once per cache key and TTL, shared between hooks, refreshed after a close.
  const cacheKey = useMemo(
    () => cacheKeyOf(namespace, options.name, sub, queryDeps || []),
    [namespace, options.name, sub, queryDeps],
  );
  const cacheKeyRef = useRef(cacheKey);
  cacheKeyRef.current = cacheKey;
  const ttl = cacheTtl ?? DEFAULT_QUERY_CACHE_TTL_MS;
  const [invalidatedAt, setInvalidatedAt] = useState(0);
  const asyncQuery = typeof query === "function";
  const [awaitingQuery, setAwaitingQuery] = useState(false);

  // biome-ignore lint/correctness/useExhaustiveDependencies: invalidatedAt forces a fresh query
  const queryPromise = useMemo(() => {
    if (typeof query !== "function") return null;
    const hit = cached(cacheKey);
    if (hit) return hit.promise;
    const promise = query().catch((error: unknown) => {
      console.error(`[useAgent] Query failed for agent "${options.agent}":`, error);
      queryCache.delete(cacheKey);
      throw error;
    });
    queryCache.set(cacheKey, { promise, expiresAt: Date.now() + ttl });
    return promise;
  }, [cacheKey, query, options.agent, ttl, invalidatedAt]);

  useEffect(() => {
    if (!queryPromise || ttl <= 0) return;
    const entry = cached(cacheKey);
    if (!entry) return;
    const timer = setTimeout(
      () => {
        queryCache.delete(cacheKey);
        setInvalidatedAt(Date.now());
      },
      Math.max(0, entry.expiresAt - Date.now()),
    );
    return () => clearTimeout(timer);
  }, [cacheKey, queryPromise, ttl]);

  let resolvedQuery: QueryObject | undefined;
  if (typeof query === "function") {
    const result = use(queryPromise!);
    if (result) {
      for (const [key, value] of Object.entries(result))
        if (value !== null && value !== undefined && typeof value === "object")
          console.warn(
            `[useAgent] Query parameter "${key}" is an object and will be converted to "[object Object]". ` +
              "Query parameters should be string, number, boolean, or null.",
          );
      resolvedQuery = result;
    }
  } else if (query) {
    resolvedQuery = query;
  }

  useEffect(() => {
    if (awaitingQuery && resolvedQuery !== undefined) setAwaitingQuery(false);
  }, [awaitingQuery, resolvedQuery]);

  const [state, setLocalState] = useState<State | undefined>(undefined);
  const [connectionError, setConnectionError] = useState<AgentConnectionError | null>(null);
  const connectionErrorRef = useRef<AgentConnectionError | null>(null);
  /** The address the connection error belongs to: a new address hides it. */
  const errorAddressRef = useRef<string | null>(null);
  const reconnectRef = useRef(shouldReconnectOnClose);
  reconnectRef.current = shouldReconnectOnClose;
  const classifyReconnect = useCallback(
    (event: CloseEvent) => (reconnectRef.current?.(event) ?? true) && !isTerminalCloseEvent(event),
    [],
  );

  const [identity, setIdentity] = useState({
    name: leaf.name,
    agent: camelCaseToKebabCase(leaf.agent),
    identified: false,
  });
  const previousIdentity = useRef<{ name: string; agent: string } | null>(null);
  const readyRef = useRef<Deferred | null>(null);
  if (!readyRef.current) readyRef.current = deferred();
  const resetReady = () => {
    readyRef.current = deferred();
  };
  /** The object returned by the last render, updated at once when identity frames arrive. */
  const liveRef = useRef<{ agent: string; name: string; identified: boolean } | null>(null);

  const combinedPath = useMemo(() => subPath(sub, userPath), [sub, userPath]);
  const socketOptions = options.basePath
    ? {
        basePath: options.basePath,
        path: combinedPath || undefined,
        query: resolvedQuery,
        ...rest,
        shouldReconnectOnClose: classifyReconnect,
      }
    : {
        party: namespace,
        prefix: "agents",
        room: options.name || "default",
        path: combinedPath || undefined,
        query: resolvedQuery,
        ...rest,
        shouldReconnectOnClose: classifyReconnect,
      };
  const enabled = !awaitingQuery && (rest.enabled ?? true);

  // Which agent the hook talks to (credentials in the query excluded: a token refresh is no move).
  const addressKey = JSON.stringify([
    options.host ?? null,
    options.basePath ?? null,
    namespace,
    options.name || "default",
    combinedPath || null,
  ]);
  const visibleError = errorAddressRef.current === addressKey ? connectionError : null;
  connectionErrorRef.current = visibleError;

  const socket = usePartySocket({
    ...(socketOptions as Parameters<typeof usePartySocket>[0]),
    enabled,
    onOpen: (event: Event) => {
      errorAddressRef.current = null;
      setConnectionError(null);
      flushQueued();
      optionsRef.current.onOpen?.(event);
    },
    onMessage: (message: MessageEvent) => {
      const o = optionsRef.current;
      if (typeof message.data === "string") {
        let frame: Record<string, any>;
        try {
          frame = JSON.parse(message.data);
        } catch {
          return o.onMessage?.(message);
        }
        switch (frame.type) {
          case "cf_agent_identity": {
            const name = frame.name as string;
            const agent = frame.agent as string;
            const live = liveRef.current;
            if (live) {
              live.name = name;
              live.agent = agent;
              live.identified = true;
            }
            setIdentity({ name, agent, identified: true });
            readyRef.current?.resolve();
            const prev = previousIdentity.current;
            if (prev && (prev.name !== name || prev.agent !== agent)) {
              if (o.onIdentityChange) o.onIdentityChange(prev.name, name, prev.agent, agent);
              else {
                const change =
                  prev.agent !== agent && prev.name !== name
                    ? `agent "${prev.agent}" → "${agent}", instance "${prev.name}" → "${name}"`
                    : prev.agent !== agent
                      ? `agent "${prev.agent}" → "${agent}"`
                      : `instance "${prev.name}" → "${name}"`;
                // Upstream's text.
                console.warn(
                  `[agents] Identity changed on reconnect: ${change}. ` +
                    "This can happen with server-side routing (e.g., basePath with getAgentByName) " +
                    "where the instance is determined by auth/session. " +
                    "Provide onIdentityChange callback to handle this explicitly, " +
                    "or ignore if this is expected for your routing pattern.",
                );
              }
            }
            previousIdentity.current = { name, agent };
            o.onIdentity?.(name, agent);
            return;
          }
          case "cf_agent_state":
            setLocalState(frame.state as State);
            o.onStateUpdate?.(frame.state as State, "server");
            return;
          case "cf_agent_state_error":
            o.onStateUpdateError?.(frame.error as string);
            return;
          case "cf_agent_mcp_servers":
            o.onMcpUpdate?.(frame.mcp as MCPServersState);
            return;
          case "rpc": {
            const p = pendingRef.current.get(frame.id);
            if (!p) {
              console.warn(
                `[useAgent] Discarded an RPC response with no matching pending call (id "${frame.id}"). ` +
                  "The call likely timed out or was rejected when its connection closed before the response arrived.",
              );
              return;
            }
            if (!frame.success) {
              settle(frame.id, p, new Error(frame.error));
              return;
            }
            if (frame.done === false) {
              p.stream?.onChunk?.(frame.result);
              return;
            }
            if (p.timer) clearTimeout(p.timer);
            pendingRef.current.delete(frame.id);
            p.resolve(frame.result);
            if ("done" in frame) p.stream?.onDone?.(frame.result);
            return;
          }
        }
      }
      o.onMessage?.(message);
    },
    onClose: (event: CloseEvent) => {
      // Close events are asynchronous: one may come from a socket already replaced by a newer one.
      const closed = (event.target as PartySocket | null) ?? socketRef.current;
      const current = closed === socketRef.current;
      if (closed) {
        rejectSentOn(closed, "Connection closed");
        if (current && !closed.shouldReconnect) rejectQueued("Connection closed");
      }
      if (current) {
        resetReady();
        if (liveRef.current) liveRef.current.identified = false;
        setIdentity((prev) => ({ ...prev, identified: false }));
        if (closed?.shouldReconnect) {
          // Reconnect with a fresh async query (a token may have expired).
          if (asyncQuery) setAwaitingQuery(true);
          queryCache.delete(cacheKeyRef.current);
          setInvalidatedAt(Date.now());
        }
        if (!closed?.shouldReconnect && isTerminalCloseEvent(event)) {
          const error = new AgentConnectionError(event);
          errorAddressRef.current = addressKey;
          setConnectionError(error);
          onConnectionError?.(error);
        }
      }
      optionsRef.current.onClose?.(event);
    },
  } as Parameters<typeof usePartySocket>[0]) as PartySocket & Record<string, any>;
  socketRef.current = socket;

  // A replaced socket's close may never reach onClose (its listeners go with it): sweep here.
  const prevSocketRef = useRef<PartySocket | null>(null);
  const prevAddressRef = useRef(addressKey);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the helpers only touch refs
  useEffect(() => {
    const prev = prevSocketRef.current;
    prevSocketRef.current = socket;
    const prevAddress = prevAddressRef.current;
    prevAddressRef.current = addressKey;
    if (prevAddress !== addressKey) {
      errorAddressRef.current = null;
      setConnectionError(null);
      rejectQueued("Call discarded: the agent address changed before the request could be sent");
    }
    if (prev && prev !== socket) {
      rejectSentOn(prev, "Connection closed");
      resetReady();
      if (liveRef.current) liveRef.current.identified = false;
      setIdentity((cur) => (cur.identified ? { ...cur, identified: false } : cur));
    }
  }, [socket, addressKey]);

  // No dependencies: it goes through refs, so a stale reference still calls on the live socket.
  const call = useCallback(
    <T = unknown>(method: string, args: unknown[] = [], callOptions?: CallOptions | StreamOptions) =>
      new Promise<T>((resolve, reject) => {
        const live = socketRef.current;
        if (live && connectionErrorRef.current && live.readyState === live.CLOSED) {
          reject(new Error("Connection closed"));
          return;
        }
        const id = crypto.randomUUID();
        const legacy =
          callOptions !== undefined &&
          ("onChunk" in callOptions || "onDone" in callOptions || "onError" in callOptions);
        const stream = legacy
          ? (callOptions as StreamOptions)
          : (callOptions as CallOptions | undefined)?.stream;
        const explicit = legacy ? undefined : (callOptions as CallOptions | undefined)?.timeout;
        const timeout = explicit !== undefined ? explicit : stream ? undefined : timeoutRef.current;
        const request = JSON.stringify({ args, id, method, type: "rpc" });
        const pending: Pending = { resolve: resolve as (v: unknown) => void, reject, request, sentOn: null };
        if (stream) pending.stream = stream;
        if (timeout)
          pending.timer = setTimeout(() => {
            const p = pendingRef.current.get(id);
            pendingRef.current.delete(id);
            const message = `RPC call to ${method} timed out after ${timeout}ms`;
            p?.stream?.onError?.(message);
            reject(Object.assign(new Error(message), { code: "agent.rpc_timeout" }));
          }, timeout);
        pendingRef.current.set(id, pending);
        if (live && live.readyState === live.OPEN) {
          live.send(request);
          pending.sentOn = live;
        }
      }),
    [],
  ) as UntypedCall;

  socket.setState = (next: State) => {
    (socketRef.current ?? socket).send(JSON.stringify({ state: next, type: "cf_agent_state" }));
    setLocalState(next);
    optionsRef.current.onStateUpdate?.(next, "client");
  };
  socket.call = call;
  socket.agent = identity.agent;
  socket.name = identity.name;
  (socket as unknown as { path: ReadonlyArray<AgentAddressStep> }).path = fullPath;
  socket.identified = identity.identified;
  socket.ready = readyRef.current.promise;
  socket.state = state;
  socket.connectionError = visibleError;
  liveRef.current = socket as unknown as { agent: string; name: string; identified: boolean };
  const stub = useMemo(() => createStubProxy((method, args) => call(method, args)), [call]);
  socket.stub = stub;
  socket.getHttpUrl = () => {
    const internal = socket as unknown as { _url?: string | null; _pkurl?: string };
    const wsUrl = internal._url || internal._pkurl || "";
    return wsUrl.replace("ws://", "http://").replace("wss://", "https://");
  };
  return socket as unknown as UseAgentResult<State>;
}
