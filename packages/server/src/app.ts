import {
  API_PREFIX,
  changeStatusBody,
  createBatchBody,
  createInstanceBody,
  type DeleteBatchResult,
  deleteBatchBody,
  type InstanceSummary,
  listInstancesQuery,
  type StatusChange,
  stepQuery,
  subscribeQuery,
  type WorkflowSummary,
} from "@cairn/api";
import {
  INSTANCE_STATUSES,
  type InstanceStatus,
  MAX_PAYLOAD_BYTES,
  parseStepLabel,
  type StepKind,
  WorkflowError,
} from "@cairn/core";
import type { Runtime } from "@cairn/runtime";
import type { InstanceRow } from "@cairn/store";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { checkToken } from "./auth.ts";
import { type DashboardOptions, serveDashboard } from "./dashboard.ts";
import { describeError, envelope, errorEnvelope, HttpError, validationError } from "./errors.ts";
import { crossSite, isJsonType } from "./guard.ts";
import { type ObjectsView, registerObjectRoutes } from "./objects.ts";
import { openApiDocument } from "./openapi.ts";
import { subscribe } from "./subscribe.ts";
import { instanceDetail, instanceSummary, stepResult } from "./views.ts";

/** Largest body of a single create, event or control request: a 1 MiB payload plus room for JSON. */
export const SINGLE_BODY_LIMIT = MAX_PAYLOAD_BYTES + 64 * 1024;
/** Largest body of a batch create. */
export const BATCH_BODY_LIMIT = 8 * 1024 * 1024;
/**
 * How many bytes of a refused body (too large, not JSON) are read and discarded so the connection
 * can carry the next request; a longer body is refused with `Connection: close` instead.
 */
export const MAX_DRAIN_BYTES = 16 * 1024 * 1024;
/** How often an idle event stream sends a comment, so proxies keep it open. */
export const SSE_KEEP_ALIVE_MS = 15_000;

export interface ApiOptions {
  runtime: Runtime;
  /**
   * When set, every `/api/v1` request needs `Authorization: Bearer <token>` (event streams may pass
   * `?token=` instead, for `EventSource`). `/api/v1/openapi.json` is served without it.
   */
  token?: string;
  /** The diagram graph of a workflow, for `GET /workflows/:name/graph`; `undefined` = none (404). */
  graph?: (workflow: string) => unknown | Promise<unknown>;
  /** Interval of keep-alive comments on event streams. Default 15 s. */
  keepAliveMs?: number;
  /**
   * Event streams also look for new history this often, for changes written by other processes
   * (changes made through `runtime` wake them at once). Default 1000 ms; 0 turns it off.
   */
  pollMs?: number;
  /** Where unexpected errors are reported (they answer 500 `internal` without details). */
  log?: (message: string, error: unknown) => void;
  /**
   * Serves the web dashboard at `/_cairn/` and redirects `/` there (see `serveDashboard`):
   * `{ dir: dashboardDir }` with `dashboardDir` from `@cairn/dashboard`.
   */
  dashboard?: DashboardOptions;
  /** Durable Objects (`cairn.objects`): serves `/objects/*` read-only views and SQL (docs/objects.md). */
  objects?: ObjectsView;
}

/** The token each app was created with: `startServer` lets such apps listen beyond loopback. */
const appTokens = new WeakMap<object, string>();

/** The token `createApi` was given for this app, if any. */
export function appToken(app: object): string | undefined {
  return appTokens.get(app);
}

/** The 401 answer to a request without the right token. */
export function unauthorized(verdict: "missing" | "invalid"): HttpError {
  return new HttpError(
    "unauthorized",
    verdict === "missing" ? "Missing bearer token" : "Invalid bearer token",
    401,
  );
}

const ok = (c: Context, result: unknown, status: ContentfulStatusCode = 200) =>
  c.json(envelope(result), status);

function parse<S extends z.ZodType>(schema: S, value: unknown, where: "body" | "query"): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(where, parsed.error);
  return parsed.data;
}

/** How long a closing connection goes on dropping a refused body after the answer (see `jsonBody`). */
const LINGER_MS = 2000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Reads and drops up to about `budget` bytes of a body; whether it ended (or the client went away). */
async function discard(reader: ReadableStreamDefaultReader<Uint8Array>, budget: number): Promise<boolean> {
  let dropped = 0;
  try {
    while (dropped <= budget) {
      const { done, value } = await reader.read();
      if (done) return true;
      dropped += value.byteLength;
    }
  } catch {
    return true;
  }
  return false;
}

/** The bodies `jsonBody` read, by request context. */
const bodies = new WeakMap<Context, string>();

/** The body `jsonBody` read, as JSON; an empty body is `undefined`. */
function readJson(c: Context): unknown {
  const text = bodies.get(c);
  if (text === undefined) throw new Error("readJson: the route has no jsonBody middleware");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WorkflowError("body", `Malformed JSON in request body: ${(e as Error).message}`);
  }
}

/**
 * Reads a JSON request body of at most `maxSize` bytes, whatever its framing (`Content-Length` or
 * chunked), for `readJson`. A non-empty body must say `Content-Type: application/json` (415
 * otherwise); a larger one is answered 413. A refused body is read to its end first (up to
 * `MAX_DRAIN_BYTES`) so the connection can carry the next request; beyond that the answer says
 * `Connection: close`, is sent at once, and the body is dropped for up to `LINGER_MS` more before
 * the connection closes, so the client reads the answer instead of a reset. (Hono's `bodyLimit`
 * leaves a refused body half read on a keep-alive connection, hence this middleware.)
 */
function jsonBody(maxSize: number): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    const type = c.req.header("content-type");
    const lengthHeader = c.req.header("content-length");
    const declared =
      lengthHeader !== undefined && c.req.header("transfer-encoding") === undefined
        ? Number(lengthHeader)
        : undefined;
    const tooLarge = () =>
      new HttpError("payload.too_large", `Request body is larger than the limit of ${maxSize} bytes`, 413);
    const notJson = () =>
      new HttpError(
        "unsupported_media_type",
        `Request body must be JSON sent with Content-Type: application/json, got ${type === undefined ? "no Content-Type" : `"${type}"`}`,
        415,
      );
    const refuse = async (
      error: HttpError,
      read: { reader?: ReadableStreamDefaultReader<Uint8Array>; ended?: boolean } = {},
    ) => {
      const { status, error: body } = describeError(error);
      const reader = read.ended ? undefined : (read.reader ?? raw.body?.getReader());
      const drainable = declared === undefined || declared <= maxSize + MAX_DRAIN_BYTES;
      if (!reader || (drainable && (await discard(reader, MAX_DRAIN_BYTES))))
        return c.json(errorEnvelope(body), status as ContentfulStatusCode);
      // Too long to drain: answer at once and close the connection, but go on dropping what the
      // client still sends for a while, so that it reads the answer before the connection closes.
      const bytes = new TextEncoder().encode(JSON.stringify(errorEnvelope(body)));
      const lingered = Promise.race([discard(reader, MAX_DRAIN_BYTES), delay(LINGER_MS)]);
      const stream = new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(bytes),
        pull: async (controller) => {
          await lingered;
          controller.close();
        },
      });
      return new Response(stream, {
        status,
        headers: {
          "content-type": "application/json",
          "content-length": String(bytes.byteLength),
          connection: "close",
        },
      });
    };

    if (type !== undefined && !isJsonType(type)) return refuse(notJson());
    if (declared !== undefined && declared > maxSize) return refuse(tooLarge());
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (raw.body) {
      const reader = raw.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        chunks.push(value);
        if (size > maxSize) return refuse(tooLarge(), { reader });
      }
    }
    if (size > 0 && type === undefined) return refuse(notJson(), { ended: true });
    bodies.set(c, new TextDecoder().decode(Buffer.concat(chunks)));
    await next();
  };
}

/** `date_start`/`date_end`: an ISO date or epoch milliseconds. */
function parseDate(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new WorkflowError(
      "body",
      `query ${field}: expected an ISO date or epoch milliseconds, got "${value}"`,
    );
  return ms;
}

/**
 * Cairn's HTTP API (SPEC §5) as a Hono app, rooted at `/api/v1`. Responses use Cloudflare's
 * envelope; errors answer `{ success: false, errors: [{ code, message }] }` with the status of
 * `ERROR_STATUS`. Serve it with `startServer`, or test it with `app.request(path, init)`.
 *
 * ```ts
 * const app = createApi({ runtime: cairn.runtime, token: process.env.CAIRN_TOKEN });
 * const res = await app.request("/api/v1/workflows/checkout/instances", {
 *   method: "POST",
 *   headers: { authorization: `Bearer ${token}` },
 *   body: JSON.stringify({ instance_id: "order-42", params: { orderId: "42" } }),
 * });
 * ```
 */
export function createApi(options: ApiOptions): Hono {
  const { runtime, token, graph } = options;
  const store = runtime.store;
  const log = options.log ?? ((message: string, error: unknown) => console.error(message, error));
  const app = new Hono();
  if (token !== undefined) {
    if (typeof token !== "string" || token === "")
      throw new Error("createApi: token must be a non-empty string");
    appTokens.set(app, token);
  }

  app.onError((e, c) => {
    const { status, error, unexpected } = describeError(e);
    if (unexpected) log(`Cairn API: ${c.req.method} ${c.req.path} failed`, e);
    return c.json(errorEnvelope(error), status as ContentfulStatusCode);
  });
  app.notFound((c) =>
    c.json(
      errorEnvelope({ code: "not_found", message: `(not_found) No route for ${c.req.method} ${c.req.path}` }),
      404,
    ),
  );

  const api = new Hono();

  // Before everything, the OpenAPI document included: a foreign page must not drive the API.
  api.use("*", async (c, next) => {
    const why = crossSite({
      host: c.req.header("host") ?? new URL(c.req.url).host,
      origin: c.req.header("origin"),
      secFetchSite: c.req.header("sec-fetch-site"),
    });
    if (why !== undefined)
      throw new HttpError(
        "forbidden",
        `Cross-site request refused (${why}): the API answers browsers only from its own origin`,
        403,
      );
    return next();
  });

  api.get("/openapi.json", (c) => c.json(openApiDocument()));

  if (token !== undefined)
    api.use("*", async (c, next) => {
      const verdict = checkToken(
        {
          method: c.req.method,
          path: c.req.path,
          authorization: c.req.header("authorization"),
          queryToken: c.req.query("token"),
        },
        token,
      );
      if (verdict !== "ok") throw unauthorized(verdict);
      return next();
    });

  const workflowSummary = async (name: string): Promise<WorkflowSummary> => {
    const def = runtime.definition(name);
    const counts = await store.instances.countByStatus(name);
    const latest = await store.instances.list({ workflow: name, limit: 1, direction: "desc" });
    return summarize(def.name, def.class.name, counts, latest.items[0]);
  };

  api.get("/workflows", async (c) => {
    const counts = await store.instances.countByStatus();
    const result: WorkflowSummary[] = [];
    for (const def of runtime.workflows) {
      const latest = await store.instances.list({ workflow: def.name, limit: 1, direction: "desc" });
      result.push(
        summarize(
          def.name,
          def.class.name,
          counts.filter((r) => r.workflow === def.name),
          latest.items[0],
        ),
      );
    }
    return c.json(envelope(result, { per_page: result.length, count: result.length }));
  });

  api.get("/workflows/:name", async (c) => ok(c, await workflowSummary(c.req.param("name"))));

  api.get("/workflows/:name/graph", async (c) => {
    const name = c.req.param("name");
    runtime.definition(name);
    const g = graph ? await graph(name) : undefined;
    if (g === undefined || g === null)
      throw new HttpError("not_found", `No graph for workflow "${name}"`, 404);
    return ok(c, g);
  });

  api.post("/workflows/:name/instances", jsonBody(SINGLE_BODY_LIMIT), async (c) => {
    const name = c.req.param("name");
    const body = parse(createInstanceBody, readJson(c) ?? {}, "body");
    const id = await runtime.create(name, { id: body.instance_id, params: body.params });
    return ok(c, await summaryOf(runtime, name, id), 201);
  });

  api.post("/workflows/:name/instances/batch", jsonBody(BATCH_BODY_LIMIT), async (c) => {
    const name = c.req.param("name");
    const body = parse(createBatchBody, readJson(c), "body");
    const ids = await runtime.createBatch(
      name,
      body.map((b) => ({ id: b.instance_id, params: b.params })),
    );
    const rows = await Promise.all(ids.map((id) => store.instances.get(name, id)));
    const result: InstanceSummary[] = rows
      .filter((r): r is InstanceRow => r !== undefined)
      .map(instanceSummary);
    return ok(c, result, 201);
  });

  api.post("/workflows/:name/instances/batch/delete", jsonBody(SINGLE_BODY_LIMIT), async (c) => {
    const name = c.req.param("name");
    const body = parse(deleteBatchBody, readJson(c), "body");
    const result: DeleteBatchResult = await runtime.deleteBatch(name, body.instances);
    return ok(c, result);
  });

  api.get("/workflows/:name/instances", async (c) => {
    const name = c.req.param("name");
    runtime.definition(name);
    const q = parse(listInstancesQuery, c.req.query(), "query");
    const createdAfter = parseDate(q.date_start, "date_start");
    const createdBefore = parseDate(q.date_end, "date_end");
    let page: Awaited<ReturnType<typeof store.instances.list>>;
    try {
      page = await store.instances.list({
        workflow: name,
        status: q.status,
        cursor: q.cursor,
        limit: q.per_page,
        direction: q.direction,
        createdAfter,
        createdBefore,
        search: q.search,
      });
    } catch (e) {
      if (q.cursor !== undefined && !WorkflowError.is(e))
        throw new WorkflowError("body", "query cursor: not a cursor from a previous page");
      throw e;
    }
    const items = page.items.map(instanceSummary);
    const info: { cursor?: string; per_page: number; count: number } = {
      per_page: q.per_page,
      count: items.length,
    };
    if (page.cursor !== undefined) info.cursor = page.cursor;
    return c.json(envelope(items, info));
  });

  api.get("/workflows/:name/instances/:id", async (c) => {
    const name = c.req.param("name");
    const id = c.req.param("id");
    const row = await runtime.instance(name, id);
    const [steps, history] = await Promise.all([store.steps.list(name, id), store.history.list(name, id)]);
    return ok(c, instanceDetail(row, steps, history));
  });

  api.get("/workflows/:name/instances/:id/step", async (c) => {
    const name = c.req.param("name");
    const id = c.req.param("id");
    const q = parse(stepQuery, c.req.query(), "query");
    await runtime.instance(name, id);
    const { name: stepName, count } = parseStepLabel(q.name);
    const kinds: StepKind[] =
      q.type === "step"
        ? ["do"]
        : q.type === "sleep"
          ? ["sleep"]
          : q.type === "waitForEvent"
            ? ["waitForEvent"]
            : ["do", "waitForEvent", "sleep"];
    for (const kind of kinds) {
      const row = await store.steps.get(name, id, kind, stepName, count);
      if (row) return ok(c, stepResult(row));
    }
    throw new HttpError("not_found", `Step "${q.name}" not found in instance "${id}"`, 404);
  });

  api.patch("/workflows/:name/instances/:id/status", jsonBody(SINGLE_BODY_LIMIT), async (c) => {
    const name = c.req.param("name");
    const id = c.req.param("id");
    const body = parse(changeStatusBody, readJson(c), "body");
    switch (body.status) {
      case "pause":
        await runtime.pause(name, id);
        break;
      case "resume":
        await runtime.resume(name, id);
        break;
      case "terminate":
        await runtime.terminate(name, id);
        break;
      case "restart":
        await runtime.restart(name, id, body.from ? { from: body.from } : {});
        break;
    }
    const row = await runtime.instance(name, id);
    const result: StatusChange = {
      status: row.status,
      timestamp: new Date(runtime.clock.now()).toISOString(),
    };
    return ok(c, result);
  });

  api.post("/workflows/:name/instances/:id/events/:type", jsonBody(SINGLE_BODY_LIMIT), async (c) => {
    const name = c.req.param("name");
    const id = c.req.param("id");
    const payload = readJson(c) ?? null;
    await runtime.sendEvent(name, id, { type: c.req.param("type"), payload });
    return ok(c, null);
  });

  api.get("/workflows/:name/instances/:id/subscribe", async (c) => {
    const name = c.req.param("name");
    const id = c.req.param("id");
    const { token: _token, ...query } = c.req.query();
    const q = parse(subscribeQuery, query, "query");
    await runtime.instance(name, id);
    let cursor = q.cursor;
    const lastEventId = c.req.header("last-event-id");
    if (cursor === undefined && lastEventId !== undefined && /^\d+$/.test(lastEventId))
      cursor = Number(lastEventId);
    return subscribe(c, {
      runtime,
      workflow: name,
      id,
      cursor,
      keepAliveMs: options.keepAliveMs ?? SSE_KEEP_ALIVE_MS,
      pollMs: options.pollMs ?? 1000,
      log,
    });
  });

  if (options.objects) registerObjectRoutes(api, options.objects);

  // Mounting copies the routes, so it comes after they are all defined.
  app.route(API_PREFIX, api);
  if (options.dashboard) serveDashboard(app, options.dashboard.dir);
  return app;
}

function summarize(
  name: string,
  className: string,
  counts: { status: InstanceStatus; count: number }[],
  latest: InstanceRow | undefined,
): WorkflowSummary {
  const instances = Object.fromEntries(INSTANCE_STATUSES.map((s) => [s, 0])) as Record<
    InstanceStatus,
    number
  >;
  for (const r of counts) instances[r.status] = (instances[r.status] ?? 0) + r.count;
  return {
    id: name,
    name,
    class_name: className,
    instances,
    triggered_on: latest ? new Date(latest.createdAt).toISOString() : null,
  };
}

async function summaryOf(runtime: Runtime, workflow: string, id: string): Promise<InstanceSummary> {
  return instanceSummary(await runtime.instance(workflow, id));
}
