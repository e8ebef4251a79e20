export { ENV_SLOT, EXPORTS_SLOT } from "./cloudflare-workers.ts";
export { type DevOptions, type DevServer, runDev } from "./dev.ts";
export { bundleEntry, projectGraphs } from "./graphs.ts";
export {
  type CloseOptions,
  type CreateApi,
  DEFAULT_HOST,
  DEFAULT_PORT,
  type HostedProject,
  type HostOptions,
  hostProject,
  type StartServer,
} from "./host.ts";
export { CLOUDFLARE_MODULES, importProjectModule, installCloudflareModules } from "./loader.ts";
export {
  CAIRN_CONFIG_FILES,
  type FetchContext,
  type FetchHandler,
  isWorkflowClass,
  type LoadedProject,
  type LoadProjectOptions,
  loadProject,
  ProjectError,
  type ProjectWorkflow,
} from "./project.ts";
export {
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  runStart,
  type StartedProject,
  type StartOptions,
} from "./start.ts";
export {
  fetcherOf,
  fetchHandler,
  type TrackedContext,
  toRequest,
  trackedContext,
  type WorkerFetcher,
  workerExports,
} from "./worker-exports.ts";
export {
  hostProjectInWorker,
  type ProjectSummary,
  type ServedProject,
  type WorkerHostOptions,
} from "./worker-host.ts";
export {
  findWranglerConfig,
  loadWranglerConfig,
  parseWranglerConfig,
  WRANGLER_CONFIG_FILES,
  type WranglerConfig,
  WranglerConfigError,
  type WranglerWorkflow,
} from "./wrangler.ts";
