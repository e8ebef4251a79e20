import {
  DurableObject,
  type DurableObjectState,
  type WebSocket,
  WebSocketPair,
  Response as WorkersResponse,
} from "@cairn/objects";
import { parseCronExpression } from "cron-schedule";
import { nanoid } from "nanoid";
import {
  asConnection,
  type Connection,
  connectionFlag,
  initConnection,
  isAgentSocket,
  setConnectionFlag,
} from "./connection.ts";
import { type AgentContext, agentContext, runInContext } from "./context.ts";
import { type AgentEmail, signAgentHeaders } from "./email.ts";
import { codedError, withCode } from "./errors.ts";
import { composeEmail, type OutboundEmail } from "./mail.ts";
import { camelCaseToKebabCase, MAX_STATE_BYTES } from "./names.ts";
import { type RetryOptions, resolveRetry, tryN, validateRetryOptions } from "./retries.ts";
import {
  type CallableMetadata,
  callableOf,
  copyCallable,
  isRPCRequest,
  isStateUpdateMessage,
  MessageType,
  type RPCResponse,
  StreamingResponse,
  sendIfOpen,
} from "./rpc.ts";
import type {
  RunWorkflowOptions,
  WorkflowBindingLike,
  WorkflowCallback,
  WorkflowEventPayload,
  WorkflowInfo,
  WorkflowPage,
  WorkflowQueryCriteria,
} from "./workflow-types.ts";

export type WSMessage = string | ArrayBuffer | ArrayBufferView;

/** The second argument of `onConnect` and friends: the upgrade request. */
export interface ConnectionContext {
  request: Request;
}

/** `static options` of an Agent class (upstream's `AgentStaticOptions`). */
export interface AgentStaticOptions {
  sendIdentityOnConnect?: boolean;
  hungScheduleTimeoutSeconds?: number;
  keepAliveIntervalMs?: number;
  retry?: RetryOptions;
}

export const DEFAULT_AGENT_STATIC_OPTIONS = {
  sendIdentityOnConnect: true,
  hungScheduleTimeoutSeconds: 30,
  keepAliveIntervalMs: 30_000,
  retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 3000 },
} as const;

interface ResolvedOptions {
  sendIdentityOnConnect: boolean;
  hungScheduleTimeoutSeconds: number;
  keepAliveIntervalMs: number;
  retry: Required<RetryOptions>;
}

/** A row of `cf_agents_schedules` as the API returns it. */
export type Schedule<T = string> = {
  id: string;
  callback: string;
  payload: T;
  retry?: RetryOptions;
  time: number;
} & (
  | { type: "scheduled" }
  | { type: "delayed"; delayInSeconds: number }
  | { type: "cron"; cron: string }
  | { type: "interval"; intervalSeconds: number }
);

export interface QueueItem<T = string> {
  id: string;
  payload: T;
  callback: string;
  created_at: number;
  retry?: RetryOptions;
}

/** The MCP frame's content: Cairn has no MCP client, so it is always empty. */
export interface MCPServersState {
  servers: Record<string, unknown>;
  tools: unknown[];
  prompts: unknown[];
  resources: unknown[];
}

/**
 * A failed `this.sql` query: `query` is the SQL text (with `?` for the interpolations).
 */
export class SqlError extends Error {
  readonly query: string;
  constructor(query: string, cause: unknown) {
    super(`SQL query failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "SqlError";
    this.query = query;
  }
}

interface ScheduleRow {
  id: string;
  callback: string;
  payload: string;
  type: Schedule["type"];
  time: number;
  delayInSeconds: number | null;
  cron: string | null;
  intervalSeconds: number | null;
  running: number;
  execution_started_at: number | null;
  retry_options: string | null;
}

/**
 * `WebSocketPair` and the 101-capable `Response` of the host serving this agent: the globals a
 * project sees (the host's own copies), else this package's.
 */
function workersGlobals(): { Pair: typeof WebSocketPair; Resp: typeof WorkersResponse } {
  const g = globalThis as Record<string, any>;
  return g.WebSocketPair
    ? { Pair: g.WebSocketPair, Resp: g.Response }
    : { Pair: WebSocketPair, Resp: WorkersResponse };
}

const STATE_ROW_ID = "cf_state_row_id";
const NAME_KEY = "__ps_name";
const PROPS_HEADER = "x-agents-lifecycle-props";
const DEFAULT_STATE = Symbol("cairn.agents.no-initial-state");
const MAX_INTERVAL_SECONDS = 30 * 24 * 60 * 60;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cf_agents_state (id TEXT PRIMARY KEY NOT NULL, state TEXT);
CREATE TABLE IF NOT EXISTS cf_agents_queues (
  id TEXT PRIMARY KEY NOT NULL, payload TEXT, callback TEXT, retry_options TEXT,
  created_at INTEGER DEFAULT (unixepoch()), seq INTEGER);
CREATE TABLE IF NOT EXISTS cf_agents_schedules (
  id TEXT PRIMARY KEY NOT NULL DEFAULT (randomblob(9)), callback TEXT, payload TEXT,
  type TEXT NOT NULL CHECK(type IN ('scheduled', 'delayed', 'cron', 'interval')),
  time INTEGER, delayInSeconds INTEGER, cron TEXT, intervalSeconds INTEGER, running INTEGER DEFAULT 0,
  created_at INTEGER DEFAULT (unixepoch()), execution_started_at INTEGER, retry_options TEXT);
CREATE TABLE IF NOT EXISTS cf_agents_workflows (
  id TEXT PRIMARY KEY NOT NULL, workflow_id TEXT NOT NULL UNIQUE, workflow_name TEXT NOT NULL,
  status TEXT NOT NULL CHECK(status IN ('queued', 'running', 'paused', 'errored', 'terminated', 'complete',
    'waiting', 'waitingForPause', 'unknown', 'pending')),
  metadata TEXT, error_name TEXT, error_message TEXT,
  created_at INTEGER NOT NULL DEFAULT (unixepoch()), updated_at INTEGER NOT NULL DEFAULT (unixepoch()),
  completed_at INTEGER, binding TEXT);
CREATE INDEX IF NOT EXISTS idx_workflows_status ON cf_agents_workflows(status);
CREATE INDEX IF NOT EXISTS idx_workflows_name ON cf_agents_workflows(workflow_name);
`;

const warnedOldHook = new WeakSet<Function>();

function decodeProps(header: string | null): Record<string, unknown> | undefined {
  if (!header) return undefined;
  try {
    return JSON.parse(Buffer.from(header, "base64").toString("utf8"));
  } catch {
    return undefined;
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The next run of a 5-field cron expression (the parser's own error for a bad one). */
/** `validateRetryOptions` for a schedule's retry options: a refusal is `schedule.invalid`. */
function validRetry(retry: RetryOptions, defaults: Required<RetryOptions>): void {
  try {
    validateRetryOptions(retry, defaults);
  } catch (e) {
    throw withCode(e, "schedule.invalid");
  }
}

export function nextCronTime(cron: string, from: Date = new Date()): Date {
  try {
    return parseCronExpression(cron).getNextDate(from);
  } catch (e) {
    throw withCode(e, "schedule.invalid");
  }
}

/** Prototypes whose own methods already run in their agent's context. */
const wrappedPrototypes = new WeakSet<object>();

/**
 * Makes every custom method of an Agent subclass (own methods of the prototypes between the class
 * and `Agent`, except names starting with `_`, getters and setters) run in its agent's context, as
 * upstream's `_autoWrapCustomMethods` does: so `getCurrentAgent()` gives the agent in a method reached
 * by a stub (RPC from a Worker, another agent or a workflow) or from anywhere outside a handler.
 * Called on the agent's own object (`agent === this`), a method keeps the context it was called in
 * (the connection, request or email of the handler); called from another agent or from no agent, it
 * runs with only `agent` set, so nothing of another agent's connection or request leaks in. Each
 * prototype is wrapped once, in place; `@callable()` metadata moves to the wrapper.
 */
function wrapCustomMethods(proto: object): void {
  for (let p = proto; p && p !== Agent.prototype && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    if (wrappedPrototypes.has(p)) break;
    wrappedPrototypes.add(p);
    for (const name of Object.getOwnPropertyNames(p)) {
      if (name === "constructor" || name.startsWith("_") || isBaseMember(name)) continue;
      const d = Object.getOwnPropertyDescriptor(p, name);
      if (!d || d.get || d.set || typeof d.value !== "function") continue;
      const method = d.value as (...args: unknown[]) => unknown;
      const wrapped = function (this: Agent, ...args: unknown[]): unknown {
        if (!(this instanceof Agent) || agentContext.getStore()?.agent === this)
          return method.apply(this, args);
        return runInContext(
          { agent: this, connection: undefined, request: undefined, email: undefined },
          () => method.apply(this, args),
        );
      };
      Object.defineProperty(wrapped, "name", { value: method.name });
      copyCallable(method, wrapped);
      Object.defineProperty(p, name, { ...d, value: wrapped });
    }
  }
}

/** Names of `Agent` and its bases: the framework's own, already run in context. */
let baseMembers: Set<string> | undefined;
function isBaseMember(name: string): boolean {
  if (!baseMembers) {
    baseMembers = new Set();
    for (let p: object | null = Agent.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p))
      for (const n of Object.getOwnPropertyNames(p)) baseMembers.add(n);
  }
  return baseMembers.has(name);
}

/**
 * An Agent: a named Durable Object with state synchronised to its WebSocket clients, callable
 * methods, schedules and workflows, compatible with `Agent` of Cloudflare's `agents` package
 * (SPEC §13.2; docs/agents.md).
 *
 * ```ts
 * export class Counter extends Agent<Env, { count: number }> {
 *   initialState = { count: 0 };
 *   @callable() increment() { this.setState({ count: this.state.count + 1 }); return this.state.count; }
 * }
 * ```
 */
export class Agent<
  Env = unknown,
  State = unknown,
  Props extends Record<string, unknown> = Record<string, unknown>,
> extends DurableObject<Env> {
  /** The state used when the agent has none stored yet. */
  initialState: State = DEFAULT_STATE as State;
  /** Options of the class; only what differs from the defaults. */
  static options: AgentStaticOptions = {};

  declare protected ctx: DurableObjectState<Props>;
  declare protected env: Env;

  #state: State | typeof DEFAULT_STATE = DEFAULT_STATE;
  #name: string | undefined;
  #started: "zero" | "starting" | "started" = "zero";
  #starting: Promise<void> | undefined;
  #props: Props | undefined;
  #hookMode: "none" | "new" | "old" = "none";
  #flushingQueue = false;
  #destroyed = false;
  #excludeFromProtocolBroadcast = new Set<string>();
  #keepAlives = 0;

  constructor(ctx: DurableObjectState<Props>, env: Env) {
    super(ctx, env);
    this.ctx.storage.sql.exec(SCHEMA);
    const ctxName = this.ctx.id.name;
    if (ctxName !== undefined) {
      if (this.ctx.storage.kv.get(NAME_KEY) !== ctxName) this.ctx.storage.kv.put(NAME_KEY, ctxName);
      this.#name = ctxName;
    } else {
      const stored = this.ctx.storage.kv.get<string>(NAME_KEY);
      if (typeof stored === "string") this.#name = stored;
    }
    const proto = Object.getPrototypeOf(this);
    const ownNew = Object.hasOwn(proto, "onStateChanged");
    const ownOld = Object.hasOwn(proto, "onStateUpdate");
    if (ownNew && ownOld)
      throw new Error(
        "[Agent] Cannot override both onStateChanged and onStateUpdate. " +
          "Remove onStateUpdate — it has been renamed to onStateChanged.",
      );
    if (ownOld && !warnedOldHook.has(this.constructor)) {
      warnedOldHook.add(this.constructor);
      console.warn(
        "[Agent] onStateUpdate is deprecated. Rename to onStateChanged — the behavior is identical.",
      );
    }
    wrapCustomMethods(proto);
    if (proto.onStateChanged !== Agent.prototype.onStateChanged) this.#hookMode = "new";
    else if (proto.onStateUpdate !== Agent.prototype.onStateUpdate) this.#hookMode = "old";
  }

  // ---- identity and options ----

  /** The agent's name (the name its id was made from). */
  get name(): string {
    const name = this.ctx.id.name ?? this.#name;
    if (name === undefined)
      throw new Error(
        `Attempting to read .name on ${this.constructor.name}, but the agent was not addressed by name ` +
          "(use idFromName/getByName or getAgentByName)",
      );
    return name;
  }

  /** `static options` merged over the defaults. */
  get #options(): ResolvedOptions {
    const own = (this.constructor as typeof Agent).options ?? {};
    return {
      sendIdentityOnConnect: own.sendIdentityOnConnect ?? DEFAULT_AGENT_STATIC_OPTIONS.sendIdentityOnConnect,
      hungScheduleTimeoutSeconds:
        own.hungScheduleTimeoutSeconds ?? DEFAULT_AGENT_STATIC_OPTIONS.hungScheduleTimeoutSeconds,
      keepAliveIntervalMs: own.keepAliveIntervalMs ?? DEFAULT_AGENT_STATIC_OPTIONS.keepAliveIntervalMs,
      retry: resolveRetry(own.retry, DEFAULT_AGENT_STATIC_OPTIONS.retry),
    };
  }

  // ---- lifecycle hooks (override) ----

  /** Runs once per load, before any request, message or alarm. */
  onStart(_props?: Props): void | Promise<void> {}
  onRequest(request: Request): Response | Promise<Response> {
    console.warn(
      `onRequest hasn't been implemented on ${this.constructor.name}:${this.name} responding to ${request.url}`,
    );
    return new Response("Not implemented", { status: 404 });
  }
  onConnect(_connection: Connection, _ctx: ConnectionContext): void | Promise<void> {}
  onMessage(_connection: Connection, _message: WSMessage): void | Promise<void> {}
  onClose(
    _connection: Connection,
    _code: number,
    _reason: string,
    _wasClean: boolean,
  ): void | Promise<void> {}
  onError(connection: Connection, error: unknown): void | Promise<void>;
  onError(error: unknown): void | Promise<void>;
  onError(connectionOrError: unknown, error?: unknown): void | Promise<void> {
    let theError: unknown;
    if (connectionOrError && error) {
      theError = error;
      console.error("Error on websocket connection:", (connectionOrError as Connection).id, theError);
      console.error("Override onError(connection, error) to handle websocket connection errors");
    } else {
      theError = connectionOrError;
      console.error("Error on server:", theError);
      console.error("Override onError(error) to handle server errors");
    }
    throw theError;
  }
  /** Throw to refuse a state change (nothing is written or sent). */
  validateStateChange(_nextState: State, _source: Connection | "server"): void {}
  /** Runs after a state change was written and broadcast (not awaited by `setState`). */
  onStateChanged(_state: State | undefined, _source: Connection | "server"): void | Promise<void> {}
  /** @deprecated renamed to `onStateChanged`. */
  onStateUpdate(_state: State | undefined, _source: Connection | "server"): void | Promise<void> {}
  getConnectionTags(_connection: Connection, _ctx: ConnectionContext): string[] | Promise<string[]> {
    return [];
  }
  shouldConnectionBeReadonly(_connection: Connection, _ctx: ConnectionContext): boolean {
    return false;
  }
  shouldSendProtocolMessages(_connection: Connection, _ctx: ConnectionContext): boolean {
    return true;
  }

  // ---- start ----

  /** @internal Runs `onStart` once per load (what `getAgentByName` awaits). */
  async __unsafe_ensureInitialized(props?: Props): Promise<void> {
    if (props !== undefined && this.#started !== "started") this.#props = props;
    if (this.#started === "started") return;
    if (this.#starting) return this.#starting;
    this.#started = "starting";
    this.#starting = this.ctx
      .blockConcurrencyWhile(async () => {
        await runInContext(this.#context(), async () => {
          await this.onStart(this.#props);
          await this.onLoad();
        });
      })
      .then(
        () => {
          this.#started = "started";
          this.#starting = undefined;
          void this.#flushQueue();
        },
        (e) => {
          this.#started = "zero";
          this.#starting = undefined;
          throw e;
        },
      );
    return this.#starting;
  }

  /** @internal Framework work at load, after `onStart` (workflow reconciliation, alarm re-arm). */
  protected async onLoad(): Promise<void> {
    await this.#reconcilePendingWorkflows();
    this.#armAlarm();
  }

  #context(over: Partial<AgentContext> = {}): AgentContext {
    const outer = agentContext.getStore();
    return {
      agent: this,
      connection: outer?.agent === this ? outer.connection : undefined,
      request: outer?.agent === this ? outer.request : undefined,
      email: outer?.agent === this ? outer.email : undefined,
      ...over,
    };
  }

  async #tryCatch<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw await this.onError(e);
    }
  }

  // ---- platform handlers ----

  override async fetch(request: Request): Promise<Response> {
    try {
      const props = decodeProps(request.headers.get(PROPS_HEADER)) as Props | undefined;
      await this.__unsafe_ensureInitialized(props);
      if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
        return await runInContext(this.#context({ connection: undefined, request }), () =>
          this.#tryCatch(() => this.onRequest(request)),
        );
      const url = new URL(request.url);
      const { Pair, Resp } = workersGlobals();
      const pair = new Pair();
      const client = pair[0];
      const server = pair[1];
      const id = url.searchParams.get("_pk") || nanoid();
      const provisional = Object.assign(server, {
        id,
        uri: request.url,
        server: this.name,
        state: null,
      }) as unknown as Connection;
      const ctx: ConnectionContext = { request };
      const userTags = await this.getConnectionTags(provisional, ctx);
      if (!Array.isArray(userTags) || userTags.some((t) => typeof t !== "string"))
        throw new TypeError("getConnectionTags must return an array of strings");
      const tags = [id, ...userTags.filter((t) => t !== id)];
      for (const key of ["id", "uri", "server", "state"]) delete (server as any)[key];
      this.ctx.acceptWebSocket(server, tags);
      const connection = initConnection(server, id, tags, request.url);
      connection.server = this.name;
      await this.#onConnect(connection, ctx);
      return new Resp(null, { status: 101, webSocket: client });
    } catch (err) {
      console.error(
        `Error in ${this.constructor.name}:${this.ctx.id.name ?? this.#name ?? "<unnamed>"} fetch:`,
        err,
      );
      if (!(err instanceof Error)) throw err;
      if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") {
        const { Pair, Resp } = workersGlobals();
        const pair = new Pair();
        pair[1].accept();
        pair[1].send(JSON.stringify({ error: err.stack }));
        pair[1].closeInternal(1011, "Uncaught exception during session setup", true);
        return new Resp(null, { status: 101, webSocket: pair[0] });
      }
      return new Response(err.stack, { status: 500 });
    }
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (!isAgentSocket(ws)) return;
    try {
      const connection = asConnection(ws);
      await this.__unsafe_ensureInitialized();
      connection.server = this.name;
      await this.#onMessage(connection, message);
    } catch (e) {
      console.error(`Error in ${this.constructor.name}:${this.#name ?? "<unnamed>"} webSocketMessage:`, e);
    }
  }

  override async webSocketClose(
    ws: WebSocket,
    code: number,
    reason: string,
    wasClean: boolean,
  ): Promise<void> {
    if (!isAgentSocket(ws)) return;
    try {
      const connection = asConnection(ws);
      await this.__unsafe_ensureInitialized();
      connection.server = this.name;
      await runInContext(this.#context({ connection, request: undefined }), () =>
        this.#tryCatch(() => this.onClose(connection, code, reason, wasClean)),
      );
    } catch (e) {
      console.error(`Error in ${this.constructor.name}:${this.#name ?? "<unnamed>"} webSocketClose:`, e);
    } finally {
      closeQuietly(ws, code, reason);
    }
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    if (!isAgentSocket(ws) || ws.readyState >= 2) return;
    try {
      const connection = asConnection(ws);
      await this.__unsafe_ensureInitialized();
      await runInContext(this.#context({ connection }), () => this.onError(connection, error));
    } catch (e) {
      console.error(`Error in ${this.constructor.name}:${this.#name ?? "<unnamed>"} webSocketError:`, e);
    }
  }

  override async alarm(): Promise<void> {
    if (this.#destroyed) return;
    await this.__unsafe_ensureInitialized();
    await runInContext(this.#context({ connection: undefined, request: undefined }), () =>
      this.#runDueSchedules(),
    );
  }

  async #onConnect(connection: Connection, ctx: ConnectionContext): Promise<void> {
    await runInContext(this.#context({ connection, request: ctx.request }), async () => {
      if (this.shouldConnectionBeReadonly(connection, ctx)) this.setConnectionReadonly(connection, true);
      if (this.shouldSendProtocolMessages(connection, ctx)) {
        if (this.#options.sendIdentityOnConnect)
          connection.send(
            JSON.stringify({
              name: this.name,
              agent: camelCaseToKebabCase(this.constructor.name),
              type: MessageType.CF_AGENT_IDENTITY,
            }),
          );
        // Reading the state may persist initialState; this connection gets it below instead.
        this.#excludeFromProtocolBroadcast.add(connection.id);
        let state: State | undefined;
        try {
          state = this.state;
        } finally {
          this.#excludeFromProtocolBroadcast.delete(connection.id);
        }
        if (state !== undefined) connection.send(JSON.stringify({ state, type: MessageType.CF_AGENT_STATE }));
        connection.send(
          JSON.stringify({ mcp: this.getMcpServers(), type: MessageType.CF_AGENT_MCP_SERVERS }),
        );
      } else {
        setConnectionFlag(connection, "noProtocol", true);
      }
      await this.#tryCatch(() => this.onConnect(connection, ctx));
    });
  }

  async #onMessage(connection: Connection, message: WSMessage): Promise<void> {
    await runInContext(this.#context({ connection, request: undefined }), async () => {
      if (typeof message !== "string") return this.#tryCatch(() => this.onMessage(connection, message));
      let parsed: unknown;
      try {
        parsed = JSON.parse(message);
      } catch {
        return this.#tryCatch(() => this.onMessage(connection, message));
      }
      if (isStateUpdateMessage(parsed)) {
        if (this.isConnectionReadonly(connection)) {
          connection.send(
            JSON.stringify({ type: MessageType.CF_AGENT_STATE_ERROR, error: "Connection is readonly" }),
          );
          return;
        }
        try {
          this.#setStateInternal(parsed.state as State, connection);
        } catch (e) {
          console.error("[Agent] State update rejected:", e);
          connection.send(
            JSON.stringify({ type: MessageType.CF_AGENT_STATE_ERROR, error: "State update rejected" }),
          );
        }
        return;
      }
      if (isRPCRequest(parsed)) return this.#rpc(connection, parsed.id, parsed.method, parsed.args);
      return this.#tryCatch(() => this.onMessage(connection, message));
    });
  }

  async #rpc(connection: Connection, id: string, method: string, args: unknown[]): Promise<void> {
    try {
      const fn = (this as Record<string, unknown>)[method];
      if (typeof fn !== "function") throw new Error(`Method ${method} does not exist`);
      const metadata = callableOf(fn);
      if (!metadata) throw new Error(`Method ${method} is not callable`);
      if (metadata.streaming) {
        const stream = new StreamingResponse(connection, id);
        try {
          await fn.apply(this, [stream, ...args]);
        } catch (err) {
          console.error(`Error in streaming method "${method}":`, err);
          if (!stream.isClosed) stream.error(err instanceof Error ? err.message : String(err));
        }
        return;
      }
      const result = await fn.apply(this, args);
      const response: RPCResponse = { done: true, id, result, success: true, type: "rpc" };
      sendIfOpen(connection, response);
    } catch (e) {
      sendIfOpen(connection, {
        error: e instanceof Error ? e.message : "Unknown error occurred",
        id,
        success: false,
        type: "rpc",
      });
      console.error("RPC error:", e);
    }
  }

  // ---- connections ----

  /** Open connections, those with `tag` when given. */
  *getConnections<TState = unknown>(tag?: string): Iterable<Connection<TState>> {
    for (const ws of this.ctx.getWebSockets(tag))
      if (ws.readyState === 1 && isAgentSocket(ws)) yield asConnection(ws) as Connection<TState>;
  }

  getConnection<TState = unknown>(id: string): Connection<TState> | undefined {
    const matching = this.ctx
      .getWebSockets(id)
      .filter((ws) => isAgentSocket(ws) && asConnection(ws).id === id);
    return matching.length > 0 ? (asConnection(matching[0]!) as Connection<TState>) : undefined;
  }

  /** Sends `msg` to every connection except those whose id is in `without`. */
  broadcast(msg: string | ArrayBuffer | ArrayBufferView, without?: string[]): void {
    for (const connection of this.getConnections()) {
      if (without?.includes(connection.id)) continue;
      sendOrClose(connection, msg);
    }
  }

  #broadcastProtocol(msg: string, without: string[] = []): void {
    for (const connection of this.getConnections()) {
      if (without.includes(connection.id) || this.#excludeFromProtocolBroadcast.has(connection.id)) continue;
      if (connectionFlag(connection, "noProtocol")) continue;
      sendOrClose(connection, msg);
    }
  }

  setConnectionReadonly(connection: Connection, readonly = true): void {
    setConnectionFlag(connection, "readonly", readonly);
  }

  isConnectionReadonly(connection: Connection): boolean {
    return connectionFlag(connection, "readonly");
  }

  /** Whether protocol frames (identity, state, MCP) go to this connection. */
  isConnectionProtocolEnabled(connection: Connection): boolean {
    return !connectionFlag(connection, "noProtocol");
  }

  getMcpServers(): MCPServersState {
    return { prompts: [], resources: [], servers: {}, tools: [] };
  }

  // ---- state ----

  /** The agent's state: the stored row, else `initialState` (persisted on first read), else undefined. */
  get state(): State {
    if (this.#state !== DEFAULT_STATE) return this.#state;
    const rows = this.sql<{ state: string }>`SELECT state FROM cf_agents_state WHERE id = ${STATE_ROW_ID}`;
    if (rows.length > 0) {
      try {
        this.#state = JSON.parse(rows[0]!.state) as State;
        return this.#state;
      } catch (e) {
        console.error("Failed to parse stored state, falling back to initialState:", e);
        if (this.initialState !== DEFAULT_STATE) {
          this.#setStateInternal(this.initialState);
          return this.initialState;
        }
        this.sql`DELETE FROM cf_agents_state WHERE id = ${STATE_ROW_ID}`;
        return undefined as State;
      }
    }
    if (this.initialState === DEFAULT_STATE) return undefined as State;
    this.#setStateInternal(this.initialState);
    return this.initialState;
  }

  /**
   * Replaces the state, synchronously: `validateStateChange` (a throw aborts), write, broadcast to
   * every protocol connection, then `onStateChanged` in the background.
   */
  setState(state: State): void {
    const store = agentContext.getStore();
    if (store?.agent === this && store.connection && this.isConnectionReadonly(store.connection))
      throw codedError("agent.readonly", "Connection is readonly");
    this.#setStateInternal(state, "server");
  }

  #setStateInternal(next: State, source: Connection | "server" = "server"): void {
    try {
      this.validateStateChange(next, source);
    } catch (e) {
      throw withCode(e, "agent.state_rejected");
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(next);
    } catch (e) {
      throw codedError(
        "agent.state_rejected",
        `setState: the state cannot be serialized as JSON: ${(e as Error).message}`,
        TypeError,
      );
    }
    if (json === undefined)
      throw codedError(
        "agent.state_rejected",
        `setState: the state must be a JSON value, got ${typeof next}`,
        TypeError,
      );
    const bytes = Buffer.byteLength(json);
    if (bytes > MAX_STATE_BYTES)
      throw codedError(
        "agent.state_rejected",
        `setState: the state is ${bytes} bytes of JSON; at most ${MAX_STATE_BYTES} are allowed`,
        RangeError,
      );
    this.sql`INSERT OR REPLACE INTO cf_agents_state (id, state) VALUES (${STATE_ROW_ID}, ${json})`;
    this.#state = JSON.parse(json) as State;
    this.#broadcastProtocol(
      `{"state":${json},"type":"${MessageType.CF_AGENT_STATE}"}`,
      source === "server" ? [] : [source.id],
    );
    const ctx = this.#context();
    const state = this.#state;
    this.ctx.waitUntil(
      (async () => {
        try {
          await runInContext(ctx, async () => {
            if (this.#hookMode === "new") await this.onStateChanged(state, source);
            else if (this.#hookMode === "old") await this.onStateUpdate(state, source);
          });
        } catch (e) {
          try {
            await this.onError(e);
          } catch {
            // The default onError rethrows; the write stands.
          }
        }
      })(),
    );
  }

  // ---- SQL ----

  /** ``this.sql`SELECT … WHERE id = ${id}` ``: the rows; interpolations are bound parameters. */
  sql<T = Record<string, string | number | boolean | null>>(
    strings: TemplateStringsArray,
    ...values: (string | number | boolean | null | undefined)[]
  ): T[] {
    let query = "";
    try {
      query = strings.reduce((acc, str, i) => acc + str + (i < values.length ? "?" : ""), "");
      return this.ctx.storage.sql
        .exec(query, ...(values.map((v) => (v === undefined ? null : v)) as any[]))
        .toArray() as T[];
    } catch (e) {
      throw new SqlError(query, e);
    }
  }

  // ---- callable methods ----

  /** Every `@callable()` method, walking the prototype chain (the subclass's entry wins). */
  getCallableMethods(): Map<string, CallableMetadata> {
    const result = new Map<string, CallableMetadata>();
    for (let p = Object.getPrototypeOf(this); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const name of Object.getOwnPropertyNames(p)) {
        if (name === "constructor" || result.has(name)) continue;
        const d = Object.getOwnPropertyDescriptor(p, name);
        const meta = callableOf(d?.value);
        if (meta) result.set(name, meta);
      }
    }
    return result;
  }

  // ---- queue ----

  /** Runs `this[callback](payload, item)` soon, in FIFO order, with retries; returns the item's id. */
  async queue<T = unknown>(
    callback: keyof this,
    payload: T,
    options?: { retry?: RetryOptions },
  ): Promise<string> {
    if (typeof callback !== "string") throw codedError("schedule.invalid", "Callback must be a string");
    if (typeof this[callback] !== "function")
      throw codedError("schedule.invalid", `this.${callback} is not a function`);
    if (options?.retry) validRetry(options.retry, this.#options.retry);
    const id = nanoid(9);
    const seq = (this.sql<{ n: number }>`SELECT coalesce(max(seq), 0) + 1 AS n FROM cf_agents_queues`[0]?.n ??
      1) as number;
    this.sql`INSERT INTO cf_agents_queues (id, payload, callback, retry_options, seq)
      VALUES (${id}, ${JSON.stringify(payload) ?? null}, ${callback}, ${options?.retry ? JSON.stringify(options.retry) : null}, ${seq})`;
    void this.#flushQueue().catch((e) => console.error("Error flushing queue:", e));
    return id;
  }

  async dequeue(id: string): Promise<void> {
    this.sql`DELETE FROM cf_agents_queues WHERE id = ${id}`;
  }

  async dequeueAll(): Promise<void> {
    this.sql`DELETE FROM cf_agents_queues`;
  }

  async dequeueAllByCallback(callback: string): Promise<void> {
    this.sql`DELETE FROM cf_agents_queues WHERE callback = ${callback}`;
  }

  async getQueue(id: string): Promise<QueueItem<string> | undefined> {
    const row = this.sql<any>`SELECT * FROM cf_agents_queues WHERE id = ${id}`[0];
    return row ? queueItem(row) : undefined;
  }

  async getQueues(key: string, value: string): Promise<QueueItem<string>[]> {
    return this.sql<any>`SELECT * FROM cf_agents_queues ORDER BY seq`
      .map(queueItem)
      .filter((item) => (item.payload as any)?.[key] === value);
  }

  async #flushQueue(): Promise<void> {
    if (this.#flushingQueue || this.#started !== "started") return;
    this.#flushingQueue = true;
    try {
      for (;;) {
        const rows = this.sql<any>`SELECT * FROM cf_agents_queues ORDER BY seq, created_at`;
        if (rows.length === 0 || this.#destroyed) break;
        for (const row of rows) {
          const fn = (this as Record<string, unknown>)[row.callback];
          if (typeof fn !== "function") {
            console.error(`callback ${row.callback} not found`);
            await this.dequeue(row.id);
            continue;
          }
          const item = queueItem(row);
          const retry = resolveRetry(item.retry, this.#options.retry);
          try {
            await runInContext(this.#context(), () =>
              tryN(retry, () => Promise.resolve(fn.call(this, item.payload, item))),
            );
          } catch (e) {
            console.error(`queue callback "${row.callback}" failed after ${retry.maxAttempts} attempts`, e);
            try {
              await this.onError(e);
            } catch {
              // logged above
            }
          }
          await this.dequeue(row.id);
        }
      }
    } finally {
      this.#flushingQueue = false;
    }
  }

  // ---- schedules ----

  /**
   * Runs `this[callback](payload, schedule)` at a `Date`, after `when` seconds, or on a cron
   * expression (5 fields). Cron schedules are idempotent on (callback, cron, payload) by default.
   */
  async schedule<T = string>(
    when: Date | string | number,
    callback: keyof this,
    payload?: T,
    options?: { retry?: RetryOptions; idempotent?: boolean },
  ): Promise<Schedule<T>> {
    if (typeof callback !== "string") throw codedError("schedule.invalid", "Callback must be a string");
    if (typeof this[callback] !== "function")
      throw codedError("schedule.invalid", `this.${callback} is not a function`);
    if (options?.retry) validRetry(options.retry, this.#options.retry);
    const retryJson = options?.retry ? JSON.stringify(options.retry) : null;
    const payloadJson = JSON.stringify(payload) ?? null;
    let type: Schedule["type"];
    let time: number;
    let extra: { delayInSeconds?: number; cron?: string } = {};
    let idempotent = options?.idempotent ?? false;
    if (when instanceof Date) {
      if (Number.isNaN(when.getTime()))
        throw codedError(
          "schedule.invalid",
          `Invalid schedule type: ${JSON.stringify(when)}(object) trying to schedule ${callback}`,
        );
      type = "scheduled";
      time = Math.floor(when.getTime() / 1000);
    } else if (typeof when === "number" && Number.isFinite(when)) {
      type = "delayed";
      time = Math.floor((Date.now() + when * 1000) / 1000);
      extra = { delayInSeconds: when };
    } else if (typeof when === "string") {
      type = "cron";
      time = Math.floor(nextCronTime(when).getTime() / 1000);
      extra = { cron: when };
      idempotent = options?.idempotent ?? true;
    } else
      throw codedError(
        "schedule.invalid",
        `Invalid schedule type: ${JSON.stringify(when)}(${typeof when}) trying to schedule ${callback}`,
      );
    if (idempotent) {
      const existing =
        type === "cron"
          ? this
              .sql<ScheduleRow>`SELECT * FROM cf_agents_schedules WHERE type = 'cron' AND callback = ${callback}
              AND cron = ${extra.cron!} AND payload IS ${payloadJson} LIMIT 1`
          : this
              .sql<ScheduleRow>`SELECT * FROM cf_agents_schedules WHERE type = ${type} AND callback = ${callback}
              AND payload IS ${payloadJson} LIMIT 1`;
      if (existing.length > 0) {
        this.#armAlarm();
        return toSchedule<T>(existing[0]!);
      }
    }
    const id = nanoid(9);
    this
      .sql`INSERT INTO cf_agents_schedules (id, callback, payload, type, time, delayInSeconds, cron, retry_options)
      VALUES (${id}, ${callback}, ${payloadJson}, ${type}, ${time}, ${extra.delayInSeconds ?? null}, ${extra.cron ?? null}, ${retryJson})`;
    this.#armAlarm();
    return {
      id,
      callback,
      payload: payload as T,
      ...(options?.retry ? { retry: options.retry } : {}),
      time,
      type,
      ...extra,
    } as Schedule<T>;
  }

  /**
   * Runs `this[callback](payload, schedule)` every `intervalSeconds` (first run one interval from
   * now; the next measured from the end of the previous). Idempotent on (callback, interval,
   * payload); a tick while the previous run is still going is skipped.
   */
  async scheduleEvery<T = string>(
    intervalSeconds: number,
    callback: keyof this,
    payload?: T,
    options?: { retry?: RetryOptions },
  ): Promise<Schedule<T>> {
    if (typeof intervalSeconds !== "number" || !(intervalSeconds > 0))
      throw codedError("schedule.invalid", "intervalSeconds must be a positive number");
    if (intervalSeconds > MAX_INTERVAL_SECONDS)
      throw codedError(
        "schedule.invalid",
        `intervalSeconds cannot exceed ${MAX_INTERVAL_SECONDS} seconds (30 days)`,
      );
    if (typeof callback !== "string") throw codedError("schedule.invalid", "Callback must be a string");
    if (typeof this[callback] !== "function")
      throw codedError("schedule.invalid", `this.${callback} is not a function`);
    if (options?.retry) validRetry(options.retry, this.#options.retry);
    const payloadJson = JSON.stringify(payload) ?? null;
    const existing = this.sql<ScheduleRow>`SELECT * FROM cf_agents_schedules WHERE type = 'interval'
      AND callback = ${callback} AND intervalSeconds = ${intervalSeconds} AND payload IS ${payloadJson} LIMIT 1`;
    if (existing.length > 0) {
      this.#armAlarm();
      return toSchedule<T>(existing[0]!);
    }
    const id = nanoid(9);
    const time = nowSeconds() + intervalSeconds;
    this
      .sql`INSERT INTO cf_agents_schedules (id, callback, payload, type, time, intervalSeconds, running, retry_options)
      VALUES (${id}, ${callback}, ${payloadJson}, 'interval', ${time}, ${intervalSeconds}, 0,
        ${options?.retry ? JSON.stringify(options.retry) : null})`;
    this.#armAlarm();
    return {
      id,
      callback,
      payload: payload as T,
      ...(options?.retry ? { retry: options.retry } : {}),
      time,
      type: "interval",
      intervalSeconds,
    } as Schedule<T>;
  }

  async getScheduleById<T = string>(id: string): Promise<Schedule<T> | undefined> {
    return this.getSchedule<T>(id);
  }

  /** @deprecated use `getScheduleById`. */
  getSchedule<T = string>(id: string): Schedule<T> | undefined {
    const row = this.sql<ScheduleRow>`SELECT * FROM cf_agents_schedules WHERE id = ${id}`[0];
    return row ? toSchedule<T>(row) : undefined;
  }

  async listSchedules<T = string>(criteria: ScheduleCriteria = {}): Promise<Schedule<T>[]> {
    return this.getSchedules<T>(criteria);
  }

  /** @deprecated use `listSchedules`. */
  getSchedules<T = string>(criteria: ScheduleCriteria = {}): Schedule<T>[] {
    const start = criteria.timeRange?.start ? Math.floor(criteria.timeRange.start.getTime() / 1000) : null;
    const end = criteria.timeRange?.end ? Math.floor(criteria.timeRange.end.getTime() / 1000) : null;
    return this.sql<ScheduleRow>`SELECT * FROM cf_agents_schedules
      WHERE (${criteria.id ?? null} IS NULL OR id = ${criteria.id ?? null})
        AND (${criteria.type ?? null} IS NULL OR type = ${criteria.type ?? null})
        AND (${start} IS NULL OR time >= ${start}) AND (${end} IS NULL OR time <= ${end})
      ORDER BY time, id`.map((r) => toSchedule<T>(r));
  }

  /** Deletes a schedule; false when there is none with that id. */
  async cancelSchedule(id: string): Promise<boolean> {
    const found = this.sql`SELECT id FROM cf_agents_schedules WHERE id = ${id}`.length > 0;
    if (!found) return false;
    this.sql`DELETE FROM cf_agents_schedules WHERE id = ${id}`;
    this.#armAlarm();
    return true;
  }

  /** Sets the object's alarm to the earliest schedule (or removes it). */
  #armAlarm(): void {
    if (this.#destroyed) return;
    // An interval still running is looked at again when it would count as hung, not before.
    const hung = this.#options.hungScheduleTimeoutSeconds;
    const next =
      this.sql<{ t: number | null }>`SELECT min(CASE WHEN type = 'interval' AND running = 1
        THEN max(time, coalesce(execution_started_at, 0) + ${hung}) ELSE time END) AS t FROM cf_agents_schedules`[0]
        ?.t ?? null;
    if (next === null) {
      if (this.#keepAlives === 0) void this.ctx.storage.deleteAlarm();
      else void this.ctx.storage.setAlarm(Date.now() + this.#options.keepAliveIntervalMs);
      return;
    }
    const at = Math.max(next * 1000, Date.now());
    void this.ctx.storage.setAlarm(
      this.#keepAlives > 0 ? Math.min(at, Date.now() + this.#options.keepAliveIntervalMs) : at,
    );
  }

  async #runDueSchedules(): Promise<void> {
    const now = nowSeconds();
    const rows = this
      .sql<ScheduleRow>`SELECT * FROM cf_agents_schedules WHERE time <= ${now} ORDER BY time, id`;
    for (const row of rows) {
      if (row.type === "interval" && row.running === 1) {
        const elapsed = now - (row.execution_started_at ?? 0);
        if (elapsed < this.#options.hungScheduleTimeoutSeconds) {
          console.warn(`Skipping interval schedule ${row.id}: previous execution still running`);
          continue;
        }
        console.warn(`Forcing reset of hung interval schedule ${row.id} (started ${elapsed}s ago)`);
      }
      if (row.type === "interval")
        this
          .sql`UPDATE cf_agents_schedules SET running = 1, execution_started_at = ${now} WHERE id = ${row.id}`;
      await this.#executeSchedule(row);
      if (this.#destroyed) return;
      if (row.type === "cron") {
        const next = Math.floor(nextCronTime(row.cron ?? "").getTime() / 1000);
        this.sql`UPDATE cf_agents_schedules SET time = ${next} WHERE id = ${row.id}`;
      } else if (row.type === "interval") {
        const next = nowSeconds() + (row.intervalSeconds ?? 0);
        this.sql`UPDATE cf_agents_schedules SET running = 0, time = ${next} WHERE id = ${row.id}`;
      } else this.sql`DELETE FROM cf_agents_schedules WHERE id = ${row.id}`;
    }
    this.#armAlarm();
  }

  async #executeSchedule(row: ScheduleRow): Promise<void> {
    const fn = (this as Record<string, unknown>)[row.callback];
    if (typeof fn !== "function") {
      console.error(`callback ${row.callback} not found`);
      return;
    }
    const schedule = toSchedule(row);
    const retry = resolveRetry(schedule.retry, this.#options.retry);
    try {
      await tryN(retry, () => Promise.resolve(fn.call(this, schedule.payload, schedule)));
    } catch (e) {
      console.error(`error executing callback "${row.callback}" after ${retry.maxAttempts} attempts`, e);
      try {
        await this.onError(e);
      } catch {
        // logged above
      }
    }
  }

  // ---- workflows ----

  #workflowBinding(workflowName: string): WorkflowBindingLike {
    const w = (this.env as Record<string, unknown> | undefined)?.[workflowName] as
      | WorkflowBindingLike
      | undefined;
    if (!w || typeof w !== "object" || typeof w.create !== "function" || typeof w.get !== "function")
      throw new Error(`Workflow binding '${workflowName}' not found in environment`);
    return w;
  }

  /** The `env` binding whose namespace this agent belongs to (ids are per namespace). */
  #ownBinding(): string | undefined {
    const hex = this.ctx.id.toString();
    for (const [key, value] of Object.entries((this.env as Record<string, unknown>) ?? {})) {
      if (!value || typeof value !== "object" || typeof (value as any).idFromName !== "function") continue;
      try {
        if ((value as any).idFromName(this.name).toString() === hex) return key;
      } catch {
        // not a namespace of this host
      }
    }
    return undefined;
  }

  #trackedRow(workflowId: string): WorkflowRow {
    const row = this.sql<WorkflowRow>`SELECT * FROM cf_agents_workflows WHERE workflow_id = ${workflowId}`[0];
    if (!row) throw codedError("workflow.not_tracked", `Workflow ${workflowId} not found in tracking table`);
    return row;
  }

  /**
   * Starts the workflow `workflowName` (a binding in `env`) and tracks it. The tracking row is
   * written first (`pending`), then the instance created with its id, so a crash in between leaves
   * a row that the next load reconciles, never an untracked instance.
   */
  async runWorkflow<P = unknown>(
    workflowName: string,
    params: P,
    options: RunWorkflowOptions = {},
  ): Promise<string> {
    const workflow = this.#workflowBinding(workflowName);
    const agentBinding = options.agentBinding ?? this.#ownBinding();
    if (!agentBinding)
      throw new Error(
        "Could not detect Agent binding name from class name. Pass it explicitly via options.agentBinding",
      );
    const workflowId = options.id ?? `wf_${nanoid()}`;
    if (this.sql`SELECT 1 FROM cf_agents_workflows WHERE workflow_id = ${workflowId}`.length > 0)
      throw new Error(`Workflow with ID "${workflowId}" is already being tracked`);
    const now = nowSeconds();
    this
      .sql`INSERT INTO cf_agents_workflows (id, workflow_id, workflow_name, status, metadata, created_at, updated_at, binding)
      VALUES (${nanoid()}, ${workflowId}, ${workflowName}, 'pending',
        ${options.metadata ? JSON.stringify(options.metadata) : null}, ${now}, ${now}, ${agentBinding})`;
    // Committed before the instance exists (the output gate waits for it before anything leaves).
    await this.ctx.storage.sync?.();
    try {
      await workflow.create({
        id: workflowId,
        params: {
          ...(params as object),
          __agentName: this.name,
          __agentBinding: agentBinding,
          __workflowName: workflowName,
          __agentOrigin: { kind: "agent", binding: agentBinding, name: this.name },
        },
        ...(options.retention ? { retention: options.retention } : {}),
      });
    } catch (e) {
      this.sql`DELETE FROM cf_agents_workflows WHERE workflow_id = ${workflowId} AND status = 'pending'`;
      throw e;
    }
    this.sql`UPDATE cf_agents_workflows SET status = 'queued', updated_at = ${nowSeconds()}
      WHERE workflow_id = ${workflowId} AND status = 'pending'`;
    return workflowId;
  }

  /** Tracking rows left `pending` by a crash: kept when the instance exists, deleted otherwise. */
  async #reconcilePendingWorkflows(): Promise<void> {
    const pending = this.sql<WorkflowRow>`SELECT * FROM cf_agents_workflows WHERE status = 'pending'`;
    for (const row of pending) {
      let status: string | undefined;
      try {
        const instance = await this.#workflowBinding(row.workflow_name).get(row.workflow_id);
        status = (await instance.status()).status;
      } catch {
        status = undefined;
      }
      if (status === undefined)
        this.sql`DELETE FROM cf_agents_workflows WHERE workflow_id = ${row.workflow_id}`;
      else this.#syncStatus(row.workflow_id, status);
    }
  }

  #syncStatus(workflowId: string, status: string, error?: unknown): void {
    const now = nowSeconds();
    const done = status === "complete" || status === "errored" || status === "terminated";
    const err =
      error && typeof error === "object" ? (error as { name?: string; message?: string }) : undefined;
    this.sql`UPDATE cf_agents_workflows SET status = ${status}, updated_at = ${now},
      completed_at = CASE WHEN ${done ? 1 : 0} = 1 THEN coalesce(completed_at, ${now}) ELSE NULL END,
      error_name = coalesce(${err?.name ?? null}, error_name), error_message = coalesce(${err?.message ?? null}, error_message)
      WHERE workflow_id = ${workflowId}`;
  }

  async sendWorkflowEvent(
    workflowName: string,
    workflowId: string,
    event: WorkflowEventPayload,
  ): Promise<void> {
    const instance = await this.#workflowBinding(workflowName).get(workflowId);
    await instance.sendEvent(event);
  }

  async approveWorkflow(
    workflowId: string,
    data: { reason?: string; metadata?: Record<string, unknown> } = {},
  ): Promise<void> {
    const row = this.#trackedRow(workflowId);
    await this.sendWorkflowEvent(row.workflow_name, workflowId, {
      type: "approval",
      payload: { approved: true, reason: data.reason, metadata: data.metadata },
    });
  }

  async rejectWorkflow(workflowId: string, data: { reason?: string } = {}): Promise<void> {
    const row = this.#trackedRow(workflowId);
    await this.sendWorkflowEvent(row.workflow_name, workflowId, {
      type: "approval",
      payload: { approved: false, reason: data.reason },
    });
  }

  async #control(workflowId: string, action: "pause" | "resume" | "terminate" | "restart"): Promise<void> {
    const row = this.#trackedRow(workflowId);
    const instance = await this.#workflowBinding(row.workflow_name).get(workflowId);
    await instance[action]();
    const s = await instance.status();
    this.#syncStatus(workflowId, s.status, s.error);
  }

  async pauseWorkflow(workflowId: string): Promise<void> {
    await this.#control(workflowId, "pause");
  }
  async resumeWorkflow(workflowId: string): Promise<void> {
    await this.#control(workflowId, "resume");
  }
  async terminateWorkflow(workflowId: string): Promise<void> {
    await this.#control(workflowId, "terminate");
  }
  async restartWorkflow(workflowId: string, options: { resetTracking?: boolean } = {}): Promise<void> {
    const row = this.#trackedRow(workflowId);
    const instance = await this.#workflowBinding(row.workflow_name).get(workflowId);
    await instance.restart();
    if (options.resetTracking ?? true) {
      const now = nowSeconds();
      this.sql`UPDATE cf_agents_workflows SET status = 'queued', created_at = ${now}, updated_at = ${now},
        completed_at = NULL, error_name = NULL, error_message = NULL WHERE workflow_id = ${workflowId}`;
    } else {
      const s = await instance.status();
      this.#syncStatus(workflowId, s.status, s.error);
    }
  }

  /** The instance's live status (also written to the tracking row). */
  async getWorkflowStatus(
    workflowName: string,
    workflowId: string,
  ): Promise<{ status: string; error?: unknown; output?: unknown }> {
    const instance = await this.#workflowBinding(workflowName).get(workflowId);
    const s = await instance.status();
    if (this.sql`SELECT 1 FROM cf_agents_workflows WHERE workflow_id = ${workflowId}`.length > 0)
      this.#syncStatus(workflowId, s.status, s.error);
    return s;
  }

  getWorkflow(workflowId: string): WorkflowInfo | undefined {
    const row = this.sql<WorkflowRow>`SELECT * FROM cf_agents_workflows WHERE workflow_id = ${workflowId}`[0];
    return row ? workflowInfo(row) : undefined;
  }

  /** Tracked workflows, newest first by default, a page at a time (keyset on created_at, workflow_id). */
  getWorkflows(criteria: WorkflowQueryCriteria = {}): WorkflowPage {
    const { where, params } = workflowWhere(criteria);
    const total = (this.ctx.storage.sql
      .exec(`SELECT count(*) AS n FROM cf_agents_workflows ${where}`, ...params)
      .one().n ?? 0) as number;
    const limit = Math.min(Math.max(1, Math.floor(criteria.limit ?? 50)), 100);
    const desc = (criteria.orderBy ?? "desc") === "desc";
    const conds = [where];
    const pageParams = [...params];
    if (criteria.cursor !== undefined) {
      const c = decodeCursor(criteria.cursor);
      conds.push(
        `${where ? "AND" : "WHERE"} (created_at ${desc ? "<" : ">"} ? OR (created_at = ? AND workflow_id ${desc ? "<" : ">"} ?))`,
      );
      pageParams.push(c.createdAt, c.createdAt, c.workflowId);
    }
    const order = desc ? "DESC" : "ASC";
    const rows = this.ctx.storage.sql
      .exec(
        `SELECT * FROM cf_agents_workflows ${conds.join(" ")} ORDER BY created_at ${order}, workflow_id ${order} LIMIT ?`,
        ...pageParams,
        limit + 1,
      )
      .toArray() as unknown as WorkflowRow[];
    const more = rows.length > limit;
    const workflows = rows.slice(0, limit).map(workflowInfo);
    const last = workflows.at(-1);
    return {
      workflows,
      total,
      nextCursor:
        more && last
          ? btoa(JSON.stringify({ c: Math.floor(last.createdAt.getTime() / 1000), i: last.workflowId }))
          : null,
    };
  }

  deleteWorkflow(workflowId: string): boolean {
    if (this.sql`SELECT 1 FROM cf_agents_workflows WHERE workflow_id = ${workflowId}`.length === 0)
      return false;
    this.sql`DELETE FROM cf_agents_workflows WHERE workflow_id = ${workflowId}`;
    return true;
  }

  deleteWorkflows(
    criteria: Omit<WorkflowQueryCriteria, "limit" | "orderBy" | "cursor"> & { createdBefore?: Date } = {},
  ): number {
    const { where, params } = workflowWhere(criteria);
    const extra = criteria.createdBefore ? `${where ? "AND" : "WHERE"} created_at < ?` : "";
    if (criteria.createdBefore) params.push(Math.floor(criteria.createdBefore.getTime() / 1000));
    return this.ctx.storage.sql.exec(`DELETE FROM cf_agents_workflows ${where} ${extra}`, ...params)
      .rowsWritten;
  }

  migrateWorkflowBinding(oldName: string, newName: string): number {
    return this.ctx.storage.sql.exec(
      "UPDATE cf_agents_workflows SET workflow_name = ? WHERE workflow_name = ?",
      newName,
      oldName,
    ).rowsWritten;
  }

  /** @internal Called by AgentWorkflow. */
  async _workflow_handleCallback(callback: WorkflowCallback): Promise<void> {
    await this.__unsafe_ensureInitialized();
    await runInContext(this.#context({ connection: undefined, request: undefined }), () =>
      this.onWorkflowCallback(callback),
    );
  }

  /** @internal Called by AgentWorkflow. */
  async _workflow_broadcast(message: unknown): Promise<void> {
    await this.__unsafe_ensureInitialized();
    this.broadcast(JSON.stringify(message));
  }

  /** @internal Called by AgentWorkflow. */
  async _workflow_updateState(action: "set" | "merge" | "reset", state?: unknown): Promise<void> {
    await this.__unsafe_ensureInitialized();
    if (action === "set") this.setState(state as State);
    else if (action === "merge")
      this.setState({ ...((this.state ?? {}) as object), ...(state as object) } as State);
    else this.setState(this.initialState);
  }

  /** Dispatches a workflow's report, after updating its tracking row. Override to take everything. */
  async onWorkflowCallback(callback: WorkflowCallback): Promise<void> {
    const now = nowSeconds();
    switch (callback.type) {
      case "progress":
        this.sql`UPDATE cf_agents_workflows SET status = 'running', updated_at = ${now}
          WHERE workflow_id = ${callback.workflowId} AND status IN ('pending', 'queued', 'waiting')`;
        await this.onWorkflowProgress(callback.workflowName, callback.workflowId, callback.progress);
        break;
      case "complete":
        this
          .sql`UPDATE cf_agents_workflows SET status = 'complete', updated_at = ${now}, completed_at = ${now}
          WHERE workflow_id = ${callback.workflowId} AND status NOT IN ('terminated', 'paused')`;
        await this.onWorkflowComplete(callback.workflowName, callback.workflowId, callback.result);
        break;
      case "error":
        this
          .sql`UPDATE cf_agents_workflows SET status = 'errored', updated_at = ${now}, completed_at = ${now},
          error_name = 'WorkflowError', error_message = ${callback.error}
          WHERE workflow_id = ${callback.workflowId} AND status NOT IN ('terminated', 'paused')`;
        await this.onWorkflowError(callback.workflowName, callback.workflowId, callback.error);
        break;
      case "event":
        await this.onWorkflowEvent(callback.workflowName, callback.workflowId, callback.event);
        break;
    }
  }

  async onWorkflowProgress(_workflowName: string, _workflowId: string, _progress: unknown): Promise<void> {}
  async onWorkflowComplete(_workflowName: string, _workflowId: string, _result?: unknown): Promise<void> {}
  async onWorkflowError(workflowName: string, workflowId: string, error: string): Promise<void> {
    console.error(
      `Workflow error [${workflowName}/${workflowId}]: ${error}. Override onWorkflowError() in your Agent to handle workflow errors.`,
    );
  }
  async onWorkflowEvent(_workflowName: string, _workflowId: string, _event: unknown): Promise<void> {}

  // ---- email ----

  /** Handles a message routed by `routeAgentEmail`. */
  onEmail(_email: AgentEmail): void | Promise<void> {
    console.log(`${this.constructor.name}:${this.name} received an email; override onEmail to handle it`);
  }

  /**
   * @internal Called by routeAgentEmail: runs onEmail; returns the rejection reason it set, if any,
   * and the replies `replyToEmail` composed (routeAgentEmail sends them through the message's `reply`).
   */
  async _onEmail(data: {
    from: string;
    to: string;
    headers: [string, string][];
    raw: Uint8Array;
    rawSize: number;
    _secureRouted: boolean;
  }): Promise<{ rejection: string | null; replies: OutboundEmail[] }> {
    await this.__unsafe_ensureInitialized();
    let rejection: string | null = null;
    const replies: OutboundEmail[] = [];
    const email: AgentEmail = {
      from: data.from,
      to: data.to,
      headers: new Headers(data.headers),
      rawSize: data.rawSize,
      getRaw: async () => data.raw,
      setReject: (reason: string) => {
        rejection = reason;
      },
      reply: async (message: OutboundEmail) => {
        replies.push(message);
      },
      _secureRouted: data._secureRouted,
    };
    await runInContext(this.#context({ connection: undefined, request: undefined, email }), () =>
      this.#tryCatch(() => this.onEmail(email)),
    );
    return { rejection, replies };
  }

  /** `X-Agent-Name`/`X-Agent-ID`, and with a secret the signature headers, of this agent's mail. */
  async #agentMailHeaders(secret: string | null | undefined): Promise<Record<string, string>> {
    const agentName = camelCaseToKebabCase(this.constructor.name);
    const agentId = this.name;
    if (secret) return signAgentHeaders(secret, agentName, agentId);
    return { "X-Agent-Name": agentName, "X-Agent-ID": agentId };
  }

  /**
   * Replies to `email` (during `onEmail`): from its recipient, to its sender, `Re: <subject>` unless
   * `subject` is given, `In-Reply-To` its Message-ID; with `secret` signed so that a reply to the
   * reply is routed back here by `createSecureReplyEmailResolver`.
   */
  async replyToEmail(
    email: AgentEmail,
    options: {
      fromName: string;
      subject?: string;
      body: string;
      contentType?: string;
      headers?: Record<string, string>;
      secret?: string | null;
    },
  ): Promise<void> {
    if (email._secureRouted && options.secret === undefined)
      throw new Error(
        "This email was routed via createSecureReplyEmailResolver. " +
          "You must pass a secret to replyToEmail() to sign replies, " +
          "or pass secret: null to explicitly opt-out of signing.",
      );
    if (!email.reply) throw new Error("This email cannot be replied to (replyToEmail works during onEmail)");
    const agentHeaders = await this.#agentMailHeaders(options.secret);
    const messageId = email.headers.get("message-id");
    const domain = email.from.split("@")[1] ?? "localhost";
    const html = options.contentType === "text/html";
    const raw = await composeEmail({
      from: { name: options.fromName, address: email.to },
      to: email.from,
      subject: options.subject ?? `Re: ${email.headers.get("subject") ?? "No subject"}`,
      ...(html ? { html: options.body } : { text: options.body }),
      messageId: `<${nanoid()}.${this.name.replace(/[^A-Za-z0-9._-]/g, "_")}@${domain}>`,
      ...(messageId ? { inReplyTo: messageId, references: messageId } : {}),
      headers: { ...(options.headers ?? {}), ...agentHeaders },
    });
    await email.reply({ from: email.to, to: email.from, raw });
  }

  /**
   * Sends a new message through a `send_email` binding (`env[binding]` or the binding itself),
   * with this agent's `X-Agent-*` headers (signed with `secret`).
   */
  async sendEmail(options: {
    binding: string | { send(message: OutboundEmail): Promise<unknown> };
    from: string | { name?: string; address: string };
    to: string;
    subject: string;
    text?: string;
    html?: string;
    replyTo?: string;
    inReplyTo?: string;
    headers?: Record<string, string>;
    secret?: string | null;
  }): Promise<void> {
    const binding =
      typeof options.binding === "string"
        ? ((this.env as Record<string, unknown> | undefined)?.[options.binding] as
            | { send?: (m: OutboundEmail) => Promise<unknown> }
            | undefined)
        : options.binding;
    if (!binding || typeof binding.send !== "function")
      throw new Error(
        `sendEmail: ${typeof options.binding === "string" ? `env.${options.binding}` : "binding"} is not a send_email binding`,
      );
    if (options.text === undefined && options.html === undefined)
      throw new Error("sendEmail: give text or html");
    const agentHeaders = await this.#agentMailHeaders(options.secret);
    const fromAddress = typeof options.from === "string" ? options.from : options.from.address;
    const raw = await composeEmail({
      from: options.from,
      to: options.to,
      subject: options.subject,
      ...(options.text !== undefined ? { text: options.text } : {}),
      ...(options.html !== undefined ? { html: options.html } : {}),
      ...(options.replyTo ? { replyTo: options.replyTo } : {}),
      ...(options.inReplyTo ? { inReplyTo: options.inReplyTo, references: options.inReplyTo } : {}),
      headers: { ...(options.headers ?? {}), ...agentHeaders },
    });
    await binding.send({ from: fromAddress, to: options.to, raw });
  }

  // ---- keep-alive, destroy ----

  /** Keeps the agent loaded (its alarm beats every `keepAliveIntervalMs`) until the returned function is called. */
  async keepAlive(): Promise<() => void> {
    this.#keepAlives++;
    this.#armAlarm();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#keepAlives--;
      this.#armAlarm();
    };
  }

  async keepAliveWhile<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.keepAlive();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Drops the framework's tables and all storage, deletes the alarm and unloads the agent. */
  async destroy(): Promise<void> {
    for (const table of ["state", "schedules", "queues", "workflows"])
      this.ctx.storage.sql.exec(`DROP TABLE IF EXISTS cf_agents_${table}`);
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    // The reset below drops writes not yet committed, and with them the caller's answer (the output
    // gate): commit the drops first, so the next instance starts empty and the answer leaves.
    await this.ctx.storage.sync();
    this.#destroyed = true;
    setTimeout(() => this.ctx.abort("destroyed"), 0);
  }
}

interface WorkflowRow {
  id: string;
  workflow_id: string;
  workflow_name: string;
  status: WorkflowInfo["status"];
  metadata: string | null;
  error_name: string | null;
  error_message: string | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
}

function workflowInfo(row: WorkflowRow): WorkflowInfo {
  return {
    id: row.id,
    workflowId: row.workflow_id,
    workflowName: row.workflow_name,
    status: row.status,
    metadata: row.metadata ? JSON.parse(row.metadata) : null,
    error:
      row.error_name || row.error_message
        ? { name: row.error_name ?? "Error", message: row.error_message ?? "" }
        : null,
    createdAt: new Date(row.created_at * 1000),
    updatedAt: new Date(row.updated_at * 1000),
    completedAt: row.completed_at === null ? null : new Date(row.completed_at * 1000),
  };
}

function workflowWhere(criteria: Pick<WorkflowQueryCriteria, "status" | "workflowName" | "metadata">): {
  where: string;
  params: (string | number)[];
} {
  const conds: string[] = [];
  const params: (string | number)[] = [];
  if (criteria.status !== undefined) {
    const list = Array.isArray(criteria.status) ? criteria.status : [criteria.status];
    conds.push(`status IN (${list.map(() => "?").join(", ") || "NULL"})`);
    params.push(...list);
  }
  if (criteria.workflowName !== undefined) {
    conds.push("workflow_name = ?");
    params.push(criteria.workflowName);
  }
  for (const [key, value] of Object.entries(criteria.metadata ?? {})) {
    if (!/^[A-Za-z0-9_]+$/.test(key)) throw new Error(`Invalid metadata key: ${JSON.stringify(key)}`);
    conds.push(`json_extract(metadata, '$.${key}') = ?`);
    params.push(typeof value === "boolean" ? (value ? 1 : 0) : value);
  }
  return { where: conds.length ? `WHERE ${conds.join(" AND ")}` : "", params };
}

function decodeCursor(cursor: string): { createdAt: number; workflowId: string } {
  try {
    const data = JSON.parse(atob(cursor));
    if (typeof data.c !== "number" || typeof data.i !== "string") throw new Error("Invalid cursor structure");
    return { createdAt: data.c, workflowId: data.i };
  } catch {
    throw new Error("Invalid pagination cursor. The cursor may be malformed or corrupted.");
  }
}

export interface ScheduleCriteria {
  id?: string;
  type?: Schedule["type"];
  timeRange?: { start?: Date; end?: Date };
}

function toSchedule<T>(row: ScheduleRow): Schedule<T> {
  const base: Record<string, unknown> = {
    callback: row.callback,
    id: row.id,
    payload: row.payload === null || row.payload === undefined ? undefined : JSON.parse(row.payload),
    time: row.time,
    type: row.type,
  };
  if (row.retry_options) base.retry = JSON.parse(row.retry_options);
  if (row.type === "delayed") base.delayInSeconds = row.delayInSeconds ?? 0;
  if (row.type === "cron") base.cron = row.cron ?? "";
  if (row.type === "interval") base.intervalSeconds = row.intervalSeconds ?? 0;
  return base as Schedule<T>;
}

function queueItem(row: any): QueueItem<string> {
  return {
    id: row.id,
    callback: row.callback,
    payload: row.payload === null ? undefined : JSON.parse(row.payload),
    created_at: row.created_at,
    ...(row.retry_options ? { retry: JSON.parse(row.retry_options) } : {}),
  } as QueueItem<string>;
}

function sendOrClose(connection: Connection, msg: string | ArrayBuffer | ArrayBufferView): void {
  try {
    connection.send(msg);
  } catch {
    try {
      connection.closeInternal(1011, "Unexpected error", true);
    } catch {
      // already closed
    }
  }
}

function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === 3) return;
  try {
    if (code === 1005 || code === 1006 || code === 1015) ws.close();
    else ws.closeInternal(code, reason, true);
  } catch {
    // already closing
  }
}
