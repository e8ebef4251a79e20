export { type AgentApiDeps, agentRoutes } from "./agent-routes.ts";
export {
  type ApiOptions,
  appToken,
  createApi,
  prometheusFor,
  SSE_KEEP_ALIVE_MS,
  unauthorized,
} from "./app.ts";
export { bearerToken, checkToken, isLoopback, tokenMatches } from "./auth.ts";
export { bodyText, jsonBody, MAX_DRAIN_BYTES } from "./body.ts";
export {
  DASHBOARD_PREFIX,
  type DashboardOptions,
  isDashboardPath,
  serveDashboard,
  servesDashboard,
} from "./dashboard.ts";
export { type EmailApiDeps, emailRoutes, MAX_EMAIL_BYTES } from "./email-routes.ts";
export { describeError, envelope, errorEnvelope, HttpError, validationError } from "./errors.ts";
export { crossSite, type HostPattern, hostAllowed, hostName, isJsonType, parseHostAllow } from "./guard.ts";
export { type ObjectApiDeps, type ObjectsView, objectRoutes } from "./objects.ts";
export { API_ROUTE_GROUPS, openApiDocument } from "./openapi.ts";
export { INSTANCE_GAUGE_MAX_AGE_MS, PrometheusMetrics } from "./prometheus.ts";
export {
  type ApiRoute,
  defineRoute,
  mountRoutes,
  type RouteDeclaration,
  type RouteGroup,
  type RouteInput,
} from "./routes.ts";
export { type SandboxApiDeps, type SandboxesView, sandboxRoutes } from "./sandbox-routes.ts";
export { type RunningServer, type ServerOptions, startServer } from "./server.ts";
export {
  attemptsOf,
  DETAIL_OUTPUT_LIMIT,
  instanceDetail,
  instanceMetrics,
  instanceSummary,
  REDACTED,
  stepDetails,
  stepOutput,
  stepResult,
  subscribeEvent,
  type TruncatedOutput,
  truncate,
} from "./views.ts";
export { type WorkerApiDeps, workerRoutes } from "./worker-routes.ts";
export {
  BATCH_BODY_LIMIT,
  SINGLE_BODY_LIMIT,
  type WorkflowApiDeps,
  workflowRoutes,
} from "./workflow-routes.ts";
