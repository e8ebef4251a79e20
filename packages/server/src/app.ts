import { API_PREFIX } from "@cairn/api";
import type { RemoteWorkers, Runtime } from "@cairn/runtime";
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { agentRoutes } from "./agent-routes.ts";
import { checkToken } from "./auth.ts";
import { type DashboardOptions, serveDashboard } from "./dashboard.ts";
import { type EmailApiDeps, emailRoutes } from "./email-routes.ts";
import { describeError, errorEnvelope, HttpError } from "./errors.ts";
import { crossSite } from "./guard.ts";
import { type ObjectsView, objectRoutes } from "./objects.ts";
import { openApiRoute } from "./openapi.ts";
import { PrometheusMetrics } from "./prometheus.ts";
import { mountRoutes } from "./routes.ts";
import { type SandboxesView, sandboxRoutes } from "./sandbox-routes.ts";
import { healthRoute, metricsRoute, projectRoute, VERSION } from "./system-routes.ts";
import { workerRoutes } from "./worker-routes.ts";
import { workflowRoutes } from "./workflow-routes.ts";

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
  /**
   * What the host loaded, for `GET /api/v1/project` (the dashboard shows `error` as a banner):
   * `cairn dev` passes the project's name, workflows, bindings, store and, after a failed reload,
   * the load error. Default: `{}`.
   */
  project?: () => unknown;
  /** Durable Objects (`cairn.objects`): serves `/objects/*` read-only views and SQL (docs/objects.md). */
  objects?: ObjectsView;
  /** Inbound mail (`POST /api/v1/email`) for the project's `email()` handler; without it the route answers 404. */
  deliverEmail?: EmailApiDeps["deliverEmail"];
  /** Sandboxes (`/sandboxes/*`); default: the jails of this process (`@cairn/sandbox`). */
  sandboxes?: SandboxesView;
  /** Remote workers (worker protocol v1, SPEC §11.3): serves `/workers/*`. */
  workers?: RemoteWorkers;
  /**
   * `GET /api/v1/metrics` (Prometheus, SPEC §12.3): behind the token like the rest unless
   * `public: true`. `prometheus` shares one set of metrics between apps (e.g. with `--metrics-port`);
   * by default the app makes its own and subscribes it to `runtime`'s telemetry.
   */
  metrics?: { public?: boolean; prometheus?: PrometheusMetrics };
}

/** The token each app was created with: `startServer` lets such apps listen beyond loopback. */
/** An app without Durable Objects answers the Objects routes with no namespaces. */
const NO_OBJECTS: ObjectsView = {
  listNamespaces: () => [],
  listObjects: () => [],
  describeObject: () => undefined,
  querySql: async () => ({ columns: [], rows: [], rowsWritten: 0 }),
};

const appTokens = new WeakMap<object, string>();

/** One set of Prometheus metrics per runtime, however many apps serve it. */
const runtimeMetrics = new WeakMap<Runtime, PrometheusMetrics>();

/** The Prometheus metrics of `runtime` (made, and subscribed to its telemetry, on first use). */
export function prometheusFor(runtime: Runtime): PrometheusMetrics {
  let m = runtimeMetrics.get(runtime);
  if (!m) {
    m = new PrometheusMetrics(runtime, { version: VERSION });
    runtime.addTelemetry(m);
    runtimeMetrics.set(runtime, m);
  }
  return m;
}

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

  mountRoutes(api, [openApiRoute], undefined);
  const system = { runtime, ...(options.project ? { project: options.project } : {}) };
  mountRoutes(api, [healthRoute], system);
  const prometheus = options.metrics?.prometheus ?? prometheusFor(runtime);
  if (options.metrics?.public) mountRoutes(api, [metricsRoute], { prometheus });

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

  mountRoutes(api, [projectRoute], system);
  if (!options.metrics?.public) mountRoutes(api, [metricsRoute], { prometheus });

  mountRoutes(api, workflowRoutes.routes, {
    runtime,
    graph,
    keepAliveMs: options.keepAliveMs ?? SSE_KEEP_ALIVE_MS,
    pollMs: options.pollMs ?? 1000,
    log,
  });

  mountRoutes(api, objectRoutes.routes, { objects: options.objects ?? NO_OBJECTS });
  mountRoutes(api, emailRoutes.routes, options.deliverEmail ? { deliverEmail: options.deliverEmail } : {});
  mountRoutes(api, agentRoutes.routes, {
    objects: options.objects ?? NO_OBJECTS,
    workflows: () => runtime.workflows,
  });
  const sandboxes = options.sandboxes;
  mountRoutes(api, sandboxRoutes.routes, {
    sandboxes: async () => sandboxes ?? (await import("@cairn/sandbox")),
  });
  mountRoutes(api, workerRoutes.routes, { workers: options.workers });

  // Mounting copies the routes, so it comes after they are all defined.
  app.route(API_PREFIX, api);
  if (options.dashboard) serveDashboard(app, options.dashboard.dir);
  return app;
}
