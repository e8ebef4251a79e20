/**
 * `@cairn/sandbox` (users: `cairnjs/sandbox`; in projects `@cloudflare/sandbox` resolves here):
 * Sandboxes of SPEC §14. See docs/sandbox.md.
 *
 * ```ts
 * import { getSandbox, Sandbox } from "@cloudflare/sandbox";
 * export { Sandbox };
 * export default {
 *   async fetch(request: Request, env: Env) {
 *     const sandbox = getSandbox(env.Sandbox, "my-sandbox");
 *     return Response.json(await sandbox.exec("echo hello"));
 *   },
 * };
 * ```
 */
export {
  type BaseExecOptions,
  type ExecEvent,
  type ExecOptions,
  type ExecResult,
  type FileInfo,
  type LegacyExecEvent,
  type LogEvent,
  MAX_EXEC_OUTPUT,
  type Process,
  type ProcessInfo,
  type ProcessOptions,
  type ProcessStatus,
  previewUrl,
  SandboxApi,
  SandboxApi as ExecutionSession,
  type SessionOptions,
  type WaitForPortOptions,
} from "./api.ts";
export { ControlClient } from "./client.ts";
export {
  type Container,
  type ContainerExecOptions,
  containerFor,
  type ExecProcess,
  withContainer,
} from "./container.ts";
export {
  bwrapDriver,
  bwrapDriverAt,
  driverFor,
  egressAllowed,
  type IsolationName,
  type Jail,
  type JailSpec,
  noneDriver,
  type Probe,
  type SandboxDriver,
} from "./driver.ts";
export { SandboxError, type SandboxErrorCode } from "./errors.ts";
export {
  describeSandbox,
  execInSandbox,
  listSandboxes,
  type SandboxStatus,
  sandboxProcessLogs,
} from "./inspect.ts";
export {
  type CgroupMode,
  DEFAULT_LIMITS,
  detectCgroupMode,
  type ResolvedLimits,
  resolveLimits,
  type SandboxLimitsConfig,
} from "./limits.ts";
export { destroySandboxDirectory, listSandboxDirectories, type SandboxDirectory } from "./operate.ts";
export {
  configureSandboxes,
  listJails,
  probeIsolation,
  type SandboxConfig,
  sandboxConfig,
  stopAllJails,
} from "./runtime.ts";
export {
  getSandbox,
  proxyToSandbox,
  Sandbox,
  type SandboxHandle,
  type SandboxInfo,
  type SandboxOptions,
  sandboxInfo,
} from "./sandbox.ts";
export { buildSeccompFilter, deniedSyscalls, seccompSupported } from "./seccomp.ts";
export {
  asyncIterableToSSEStream,
  collectFile,
  type FileStreamEvent,
  parseSSEStream,
  responseToAsyncIterable,
  streamFile,
} from "./sse.ts";
export {
  CONTROL_PORT,
  MAX_ID_LENGTH,
  MAX_PATH_LENGTH,
  RESERVED_IDS,
  validatePath,
  validatePort,
  validateSandboxId,
} from "./validate.ts";
