export {
  type ApiOptions,
  appToken,
  BATCH_BODY_LIMIT,
  createApi,
  MAX_DRAIN_BYTES,
  SINGLE_BODY_LIMIT,
  SSE_KEEP_ALIVE_MS,
  unauthorized,
} from "./app.ts";
export { bearerToken, checkToken, isLoopback, tokenMatches } from "./auth.ts";
export {
  DASHBOARD_PREFIX,
  type DashboardOptions,
  isDashboardPath,
  serveDashboard,
  servesDashboard,
} from "./dashboard.ts";
export { describeError, envelope, errorEnvelope, HttpError, validationError } from "./errors.ts";
export { crossSite, type HostPattern, hostAllowed, hostName, isJsonType, parseHostAllow } from "./guard.ts";
export { type ObjectsView, registerObjectRoutes } from "./objects.ts";
export { openApiDocument } from "./openapi.ts";
export { type RunningServer, type ServerOptions, startServer } from "./server.ts";
export {
  attemptsOf,
  DETAIL_OUTPUT_LIMIT,
  instanceDetail,
  instanceSummary,
  REDACTED,
  stepDetails,
  stepOutput,
  stepResult,
  subscribeEvent,
  type TruncatedOutput,
  truncate,
} from "./views.ts";
