export {
  type ChunkReader,
  decodeStepResult,
  decodeValue,
  encodeInput,
  encodeStreamMarker,
  encodeValue,
  isStreamValue,
  STREAM_CHUNK_BYTES,
  stepChunks,
  storedByteLength,
  streamByteLength,
} from "./codec.ts";
export { composeHooks, type RuntimeHooks, type StepHookInfo } from "./hooks.ts";
export {
  type RemoteLogLine,
  RemoteWorkers,
  type RemoteWorkersOptions,
  type RemoteWorkflow,
  WORKER_PROTOCOLS,
} from "./remote.ts";
export type { RunOutcome } from "./run.ts";
export type { RunInfo } from "./runtime.ts";
export {
  type BindingOwner,
  bindingOwner,
  InstanceHandle,
  Runtime,
  type RuntimeOptions,
  type WorkflowDefinition,
} from "./runtime.ts";
export type { ScheduledController, ScheduledHandler } from "./scheduler.ts";
export { type FollowedEntry, type FollowOptions, followHistory } from "./subscribe.ts";
export { CpuMeter, composeTelemetry, cpuMeter, type Telemetry } from "./telemetry.ts";
export { activeTraceparent, isTraceparent, loadTracing } from "./tracing.ts";
