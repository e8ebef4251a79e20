export { decodeValue, encodeInput, encodeValue } from "./codec.ts";
export type { RuntimeHooks, StepHookInfo } from "./hooks.ts";
export type { RunOutcome } from "./run.ts";
export { InstanceHandle, Runtime, type RuntimeOptions, type WorkflowDefinition } from "./runtime.ts";
