// First: fail with a clear line on a Node.js without node:sqlite.
import "./node-check.ts";

export {
  type Clock,
  type Duration,
  type ExecutionContext,
  FakeClock,
  type InstanceEvent,
  type InstanceStatus,
  type InstanceStatusDetails,
  type InstanceSubscribeOptions,
  type LocationHint,
  NonRetryableError,
  type RestartOptions,
  type Workflow,
  type WorkflowCronSchedule,
  type WorkflowDelayFunction,
  WorkflowEntrypoint,
  WorkflowError,
  type WorkflowEvent,
  type WorkflowInstance,
  type WorkflowInstanceCreateOptions,
  type WorkflowSleepDuration,
  type WorkflowStep,
  type WorkflowStepConfig,
  type WorkflowStepContext,
  type WorkflowStepEvent,
  WorkflowTimeoutError,
} from "@cairn/core";
export {
  type Cairn,
  type CairnOptions,
  createCairn,
  DEFAULT_STORE_PATH,
  type ObjectConfig,
  POSTGRES_STORE_PACKAGE,
  type WorkflowConfig,
} from "@cairn/engine";
export {
  DurableObject,
  DurableObjectId,
  DurableObjectNamespace,
  DurableObjectState,
  type DurableObjectStub,
  type Migration,
  ObjectHost,
  SqlStorageCursor,
  WebSocketPair,
  WebSocketRequestResponsePair,
} from "@cairn/objects";
export { Runtime, type RuntimeHooks, type ScheduledController } from "@cairn/runtime";
