export { ENV_SLOT, EXPORTS_SLOT } from "./cloudflare-workers.ts";
export { type DevOptions, type DevServer, runDev } from "./dev.ts";
export { type DevSecrets, readDevSecrets } from "./dev-vars.ts";
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
export { describeLoadError, type LoadFailure } from "./load-error.ts";
export {
  CLOUDFLARE_MODULES,
  importProjectModule,
  installCloudflareModules,
  missingExtends,
} from "./loader.ts";
export {
  createLogger,
  LOG_LEVELS,
  type LogFormat,
  type Logger,
  type LoggerOptions,
  type LogLevel,
} from "./logger.ts";
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
export { bannerLines, listenErrorMessage, type ProjectInfo, projectInfo } from "./project-info.ts";
export {
  checkPython,
  compatibilityOf,
  hostPythonProject,
  isPythonMain,
  PYTHON_SDK_DIR,
  type PythonHostOptions,
  pyprojectWarning,
  pythonEnv,
  pythonGraphs,
  pythonMain,
} from "./python-host.ts";
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
  UNSUPPORTED_SECTIONS,
  WRANGLER_CONFIG_FILES,
  type WranglerConfig,
  WranglerConfigError,
  type WranglerConfigOptions,
  type WranglerWorkflow,
} from "./wrangler.ts";
