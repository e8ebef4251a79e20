import { createRequire } from "node:module";
import type { Runtime } from "@cairn/runtime";
import { z } from "zod";
import { envelope } from "./errors.ts";
import type { PrometheusMetrics } from "./prometheus.ts";
import { defineRoute, type RouteGroup } from "./routes.ts";

/** This package's version, reported by `GET /api/v1/health`. */
export const VERSION: string = createRequire(import.meta.url)("../package.json").version;

/** How long `GET /health` waits for the store before answering 503. */
export const HEALTH_TIMEOUT_MS = 2000;

export interface SystemApiDeps {
  runtime: Runtime;
  /** What the host loaded (see `ApiOptions.project`). */
  project?: () => unknown;
}

const healthSchema = z.object({
  status: z.enum(["ok", "unavailable"]),
  store: z.string().describe('"sqlite" or "postgres"'),
  version: z.string(),
  error: z.string().optional(),
});

/**
 * `GET /api/v1/health`, for load balancers (no token needed): 200 `{ status: "ok", store, version }`
 * when the store answers a read within `HEALTH_TIMEOUT_MS`, else 503 `{ status: "unavailable", … }`.
 */
export const healthRoute = defineRoute<SystemApiDeps>({
  method: "get",
  path: "/health",
  operationId: "health",
  summary: "Health check for load balancers (no token needed); 503 when the store cannot be reached",
  public: true,
  response: {
    description: "The store answers (503 with the same shape and `error` when it does not)",
    content: { "application/json": { schema: healthSchema } },
  },
  handle: async ({ c }, { runtime }) => {
    const store = runtime.store.kind;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        runtime.store.instances.get("health", "health"),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`)),
            HEALTH_TIMEOUT_MS,
          );
        }),
      ]);
      return c.json({ status: "ok", store, version: VERSION });
    } catch (e) {
      return c.json(
        {
          status: "unavailable",
          store,
          version: VERSION,
          error: `the store cannot be reached: ${(e as Error)?.message ?? e}`,
        },
        503,
      );
    } finally {
      clearTimeout(timer);
    }
  },
});

/**
 * `GET /api/v1/metrics`: Prometheus text format 0.0.4 (SPEC §12.3). Needs the API's token unless
 * the app was created with `metrics: { public: true }`.
 */
export const metricsRoute = defineRoute<{ prometheus: PrometheusMetrics }>({
  method: "get",
  path: "/metrics",
  operationId: "prometheusMetrics",
  summary: "Prometheus metrics (text format 0.0.4); no instance ids or step names in labels",
  response: {
    description: "every metric",
    content: { "text/plain": { schema: z.string() } },
  },
  handle: async ({ c }, { prometheus }) =>
    c.body(await prometheus.text(), 200, { "content-type": prometheus.contentType }),
});

/** `GET /api/v1/project`: what the host loaded, or why it failed (`error`); the dashboard's banner. */
export const projectRoute = defineRoute<SystemApiDeps>({
  method: "get",
  path: "/project",
  operationId: "project",
  summary: "What the host loaded (name, workflows, bindings, store) or why it failed (`error`)",
  response: { description: "the project", result: z.record(z.string(), z.unknown()) },
  handle: ({ c }, { project }) => c.json(envelope(project?.() ?? {})),
});

export const systemRoutes: RouteGroup<SystemApiDeps> = {
  tag: "system",
  description: "Health, Prometheus metrics and what the host loaded",
  routes: [healthRoute, projectRoute, metricsRoute as never],
};
