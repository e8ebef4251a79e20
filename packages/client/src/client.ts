import {
  API_PREFIX,
  type ChangeStatusBody,
  type CreateInstanceBody,
  type DeleteBatchResult,
  type Envelope,
  type InstanceDetail,
  type InstanceSummary,
  type ListInstancesQuery,
  type ResultInfo,
  type StatusChange,
  type StepQuery,
  type StepResult,
  type SubscribeEvent,
  type WorkflowMetrics,
  type WorkflowMetricsQuery,
  type WorkflowSummary,
} from "@cairn/api";
import { FINAL_HISTORY_EVENTS } from "@cairn/core";
import { CairnApiError } from "./errors.ts";
import { parseSse } from "./sse.ts";

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The server's address, e.g. `"http://localhost:8787"` (a trailing `/api/v1` is accepted). */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Defaults to the global `fetch`; pass `app.fetch`-like functions to talk to an in-process app. */
  fetch?: (input: Request) => Promise<Response> | Response;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** One page of `listInstances`. */
export interface InstancePage {
  instances: InstanceSummary[];
  /** Pass back as `cursor` for the next page; absent on the last page. */
  cursor: string | undefined;
  info: ResultInfo | undefined;
}

/** Options of {@link CairnClient.subscribe}. */
export interface SubscribeOptions {
  /** Resume after this history event id (the `eventId` of the last event seen). */
  cursor?: number;
  /** Stops the stream. */
  signal?: AbortSignal;
  /**
   * Reconnect with the last seen event id as cursor when the stream ends before the instance
   * finished (default true). After three reconnects in a row without a new event it gives up.
   */
  reconnect?: boolean;
  /** Wait before reconnecting, in ms (default 250, or the stream's `retry:`). */
  reconnectDelayMs?: number;
}

/** `restart`'s optional starting point, as in `WorkflowInstance.restart({ from })`. */
export type RestartFrom = NonNullable<Extract<ChangeStatusBody, { status: "restart" }>["from"]>;

/**
 * Typed client of Cairn's HTTP API (SPEC §5). Every method unwraps the `{ success, result }`
 * envelope and throws {@link CairnApiError} on an error envelope or when the server is unreachable.
 */
export interface CairnClient {
  /** The API root the client talks to, e.g. `"http://localhost:8787/api/v1"`. */
  readonly baseUrl: string;
  listWorkflows(): Promise<WorkflowSummary[]>;
  getWorkflow(workflow: string): Promise<WorkflowSummary>;
  /**
   * The workflow's diagram graph (`GET /workflows/:name/graph`; the `WorkflowGraph` of
   * `@cairn/diagram`). A server without a graph for it answers 404 (`CairnApiError`, code `not_found`).
   */
  getGraph<G = unknown>(workflow: string): Promise<G>;
  /**
   * Counts and summed wall and CPU time of the workflow's history entries in a range, grouped
   * (`GET /workflows/:name/metrics`, SPEC §12.2): e.g. `{ group_by: "instanceId", order_by:
   * "cpuTime", limit: 10 }` for the instances that used the most CPU time.
   */
  getWorkflowMetrics(workflow: string, query?: WorkflowMetricsQuery): Promise<WorkflowMetrics>;
  createInstance(workflow: string, body?: CreateInstanceBody): Promise<InstanceSummary>;
  /** Ids that already exist are skipped and left out of the result. */
  createBatch(workflow: string, body: CreateInstanceBody[]): Promise<InstanceSummary[]>;
  listInstances(workflow: string, query?: ListInstancesQuery): Promise<InstancePage>;
  /** Every instance matching `query`, following cursors page by page. */
  listAllInstances(
    workflow: string,
    query?: Omit<ListInstancesQuery, "cursor">,
  ): AsyncIterable<InstanceSummary>;
  getInstance(workflow: string, id: string): Promise<InstanceDetail>;
  /** One step's full output or error; `query.name` is `"<name>-<count>"`. */
  getStep(workflow: string, id: string, query: StepQuery): Promise<StepResult>;
  changeStatus(workflow: string, id: string, body: ChangeStatusBody): Promise<StatusChange>;
  pause(workflow: string, id: string): Promise<StatusChange>;
  resume(workflow: string, id: string): Promise<StatusChange>;
  /** With `rollback`, the instance's rollbacks run before it ends `terminated` (SPEC §9.1). */
  terminate(workflow: string, id: string, options?: { rollback?: boolean }): Promise<StatusChange>;
  restart(workflow: string, id: string, from?: RestartFrom): Promise<StatusChange>;
  sendEvent(workflow: string, id: string, type: string, payload?: unknown): Promise<unknown>;
  deleteBatch(workflow: string, ids: string[]): Promise<DeleteBatchResult>;
  /** The instance's history, then live events, as server-sent events. */
  subscribe(workflow: string, id: string, options?: SubscribeOptions): AsyncIterable<SubscribeEvent>;
  /**
   * What the host loaded (`GET /api/v1/project`): under `cairn dev`, the project's name, workflows,
   * bindings and store, or `error` when it did not load. `{}` from hosts that say nothing.
   */
  getProject<P = Record<string, unknown>>(): Promise<P>;
  /** The OpenAPI document of the API (`GET /api/v1/openapi.json`). */
  openapi(): Promise<unknown>;
}

/**
 * ```ts
 * const client = createClient({ url: "http://localhost:8787", token: process.env.CAIRN_TOKEN });
 * const { id } = await client.createInstance("checkout", { params: { orderId: "42" } });
 * for await (const e of client.subscribe("checkout", id)) console.log(e.type);
 * ```
 */
export function createClient(options: ClientOptions): CairnClient {
  if (typeof options?.url !== "string" || options.url === "") throw new TypeError("createClient needs a url");
  const base = apiRoot(options.url);
  const doFetch = options.fetch ?? ((request: Request) => fetch(request));

  function url(path: string, query?: Record<string, unknown>): string {
    const u = new URL(base + path);
    for (const [k, v] of Object.entries(query ?? {}))
      if (v !== undefined && v !== null) u.searchParams.set(k, String(v));
    return u.toString();
  }

  function headers(extra?: Record<string, string>): Headers {
    const h = new Headers(options.headers);
    if (options.token) h.set("authorization", `Bearer ${options.token}`);
    for (const [k, v] of Object.entries(extra ?? {})) h.set(k, v);
    return h;
  }

  async function send(
    method: string,
    target: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<Response> {
    const init: RequestInit = {
      method,
      headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (signal) init.signal = signal;
    try {
      return await doFetch(new Request(target, init));
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new CairnApiError({
        status: 0,
        code: "network",
        message: `Cannot reach the Cairn server at ${target}: ${describeCause(e)}`,
        url: target,
        cause: e,
      });
    }
  }

  async function call<T>(
    method: string,
    target: string,
    body?: unknown,
  ): Promise<{ result: T; info?: ResultInfo }> {
    const response = await send(method, target, body);
    const envelope = await readEnvelope<T>(response, target);
    return { result: envelope.result, info: envelope.result_info };
  }

  const wf = (workflow: string) => `/workflows/${encodeURIComponent(workflow)}`;
  const inst = (workflow: string, id: string) => `${wf(workflow)}/instances/${encodeURIComponent(id)}`;

  const client: CairnClient = {
    baseUrl: base,
    async listWorkflows() {
      return (await call<WorkflowSummary[]>("GET", url("/workflows"))).result;
    },
    async getWorkflow(workflow) {
      return (await call<WorkflowSummary>("GET", url(wf(workflow)))).result;
    },
    async getWorkflowMetrics(workflow, query = {}) {
      return (await call<WorkflowMetrics>("GET", url(`${wf(workflow)}/metrics`, query))).result;
    },
    async getGraph<G>(workflow: string) {
      return (await call<G>("GET", url(`${wf(workflow)}/graph`))).result;
    },
    async createInstance(workflow, body = {}) {
      return (await call<InstanceSummary>("POST", url(`${wf(workflow)}/instances`), body)).result;
    },
    async createBatch(workflow, body) {
      return (await call<InstanceSummary[]>("POST", url(`${wf(workflow)}/instances/batch`), body)).result;
    },
    async listInstances(workflow, query = {}) {
      const { result, info } = await call<InstanceSummary[]>("GET", url(`${wf(workflow)}/instances`, query));
      return { instances: result, cursor: info?.cursor || undefined, info };
    },
    async *listAllInstances(workflow, query = {}) {
      let cursor: string | undefined;
      const seen = new Set<string>();
      do {
        const page = await client.listInstances(workflow, { ...query, cursor });
        for (const instance of page.instances) yield instance;
        if (page.cursor !== undefined && seen.has(page.cursor)) return; // a server repeating a cursor would loop
        if (page.cursor !== undefined) seen.add(page.cursor);
        cursor = page.cursor;
      } while (cursor !== undefined);
    },
    async getInstance(workflow, id) {
      return (await call<InstanceDetail>("GET", url(inst(workflow, id)))).result;
    },
    async getStep(workflow, id, query) {
      return (await call<StepResult>("GET", url(`${inst(workflow, id)}/step`, query))).result;
    },
    async changeStatus(workflow, id, body) {
      return (await call<StatusChange>("PATCH", url(`${inst(workflow, id)}/status`), body)).result;
    },
    pause: (workflow, id) => client.changeStatus(workflow, id, { status: "pause" }),
    resume: (workflow, id) => client.changeStatus(workflow, id, { status: "resume" }),
    terminate: (workflow, id, options) =>
      client.changeStatus(
        workflow,
        id,
        options?.rollback ? { status: "terminate", rollback: true } : { status: "terminate" },
      ),
    restart: (workflow, id, from) =>
      client.changeStatus(workflow, id, from ? { status: "restart", from } : { status: "restart" }),
    async sendEvent(workflow, id, type, payload) {
      const target = url(`${inst(workflow, id)}/events/${encodeURIComponent(type)}`);
      return (await call<unknown>("POST", target, payload === undefined ? null : payload)).result;
    },
    async deleteBatch(workflow, ids) {
      return (
        await call<DeleteBatchResult>("POST", url(`${wf(workflow)}/instances/batch/delete`), {
          instances: ids,
        })
      ).result;
    },
    subscribe(workflow, id, subscribeOptions = {}) {
      return subscribeStream((cursor, signal) => {
        const target = url(`${inst(workflow, id)}/subscribe`, { cursor });
        return send("GET", target, undefined, signal).then(async (response) => {
          if (!response.ok || !response.headers.get("content-type")?.includes("text/event-stream")) {
            await readEnvelope(response, target); // throws the server's error
            throw unexpected(response, target);
          }
          return response;
        });
      }, subscribeOptions);
    },
    async getProject<P>() {
      return (await call<P>("GET", url("/project"))).result;
    },
    async openapi() {
      const target = url("/openapi.json");
      const response = await send("GET", target);
      const body = await readJson(response, target);
      if (isEnvelope(body)) return unwrap(body, response, target);
      if (!response.ok) throw unexpected(response, target);
      return body;
    },
  };
  return client;
}

const FINAL = new Set<string>(FINAL_HISTORY_EVENTS);

async function* subscribeStream(
  open: (cursor: number | undefined, signal: AbortSignal) => Promise<Response>,
  options: SubscribeOptions,
): AsyncGenerator<SubscribeEvent> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) return;
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let cursor = options.cursor;
  let delay = options.reconnectDelayMs ?? 250;
  let idle = 0;
  try {
    for (;;) {
      let finished = false;
      let progressed = false;
      try {
        const response = await open(cursor, controller.signal);
        for await (const message of parseSse(response.body!)) {
          if (message.retry !== undefined && options.reconnectDelayMs === undefined) delay = message.retry;
          let event: SubscribeEvent;
          try {
            event = JSON.parse(message.data) as SubscribeEvent;
          } catch {
            continue; // keep-alives or foreign messages
          }
          if (typeof event !== "object" || event === null) continue;
          if (event.type === undefined && message.event !== "message")
            event.type = message.event as SubscribeEvent["type"];
          if (typeof event.eventId !== "number" && message.id !== undefined && /^\d+$/.test(message.id))
            event.eventId = Number(message.id);
          if (typeof event.eventId === "number") {
            if (cursor !== undefined && event.eventId <= cursor) continue; // replayed after a reconnect
            cursor = event.eventId;
          }
          progressed = true;
          yield event;
          if (FINAL.has(event.type)) finished = true;
        }
      } catch (e) {
        if (controller.signal.aborted) return;
        if (CairnApiError.is(e) && e.code !== "network") throw e;
        if (!(options.reconnect ?? true) || idle >= 3) throw e;
      }
      if (controller.signal.aborted || finished || !(options.reconnect ?? true)) return;
      idle = progressed ? 0 : idle + 1;
      if (idle > 3) return;
      await sleep(delay, controller.signal);
      if (controller.signal.aborted) return;
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    controller.abort();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** `http://h:1/` → `http://h:1/api/v1`; `http://h:1/api/v1/` → `http://h:1/api/v1`. */
function apiRoot(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`Not a URL: ${JSON.stringify(url)} (expected e.g. http://localhost:8787)`);
  }
  const path = u.pathname.replace(/\/+$/, "");
  u.pathname = path.endsWith(API_PREFIX) ? path : path + API_PREFIX;
  u.search = "";
  u.hash = "";
  return u.toString().replace(/\/+$/, "");
}

async function readEnvelope<T>(response: Response, target: string): Promise<Envelope<T>> {
  const body = await readJson(response, target);
  if (!isEnvelope(body)) throw unexpected(response, target);
  return { ...body, result: unwrap(body, response, target) as T };
}

async function readJson(response: Response, target: string): Promise<unknown> {
  const text = await response.text().catch((e) => {
    throw new CairnApiError({
      status: response.status,
      code: "network",
      message: `Lost the connection to ${target}: ${describeCause(e)}`,
      url: target,
      cause: e,
    });
  });
  try {
    return text === "" ? undefined : JSON.parse(text);
  } catch {
    throw unexpected(response, target, text);
  }
}

function isEnvelope(body: unknown): body is Envelope<unknown> {
  return (
    typeof body === "object" && body !== null && typeof (body as { success?: unknown }).success === "boolean"
  );
}

function unwrap(body: Envelope<unknown>, response: Response, target: string): unknown {
  if (body.success && response.ok) return body.result;
  const errors = Array.isArray(body.errors) && body.errors.length > 0 ? body.errors : undefined;
  const first = errors?.[0];
  throw new CairnApiError({
    status: response.status,
    code: first?.code ?? "http",
    message: first?.message ?? `${target} answered ${response.status} ${response.statusText}`.trim(),
    url: target,
    errors,
  });
}

function unexpected(response: Response, target: string, text?: string): CairnApiError {
  const snippet = text ? `: ${text.slice(0, 200)}` : "";
  return new CairnApiError({
    status: response.status,
    code: response.status === 401 ? "unauthorized" : "http",
    message: `Unexpected response from ${target} (HTTP ${response.status})${snippet}`,
    url: target,
  });
}

function describeCause(e: unknown): string {
  const cause = (e as { cause?: unknown })?.cause;
  const code = (cause as { code?: string })?.code ?? (e as { code?: string })?.code;
  const message = cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e);
  return code && !message.includes(code) ? `${code} ${message}` : message;
}
