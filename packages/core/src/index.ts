export { type Clock, FakeClock, systemClock, type TimerHandle } from "./clock.ts";
export {
  type Backoff,
  canRetry,
  DEFAULT_RETRY_DELAY,
  defaultStepConfig,
  type ResolvedStepConfig,
  reconnectDelayMs,
  resolveStepConfig,
  retryDelayMs,
  type WorkflowStepConfig,
} from "./config.ts";
export { type Duration, type DurationUnit, formatDuration, parseDuration } from "./durations.ts";
export {
  deserializeError,
  ERROR_CODES,
  type ErrorCode,
  errorMessage,
  eventTimeoutError,
  eventTimeoutMessage,
  isNonRetryable,
  NonRetryableError,
  type SerializedError,
  serializeError,
  trimStack,
  WorkflowError,
  WorkflowFatalError,
  WorkflowTimeoutError,
} from "./errors.ts";
export {
  FINAL_HISTORY_EVENTS,
  HISTORY_EVENT_TYPES,
  type HistoryData,
  type HistoryDataOf,
  type HistoryEntry,
  type HistoryEventType,
  type NewHistoryEntry,
} from "./history.ts";
export { decidePause, decideResume, decideSendEvent, decideTerminate, type Transition } from "./lifecycle.ts";
export * from "./limits.ts";
export { MIN_NODE_VERSION, nodeVersionProblem } from "./node-version.ts";
export type { EventRow, InstancePatch, InstanceRow, RollbackState, StepRow, StepStatus } from "./records.ts";
export {
  ATTEMPT_LOST_ERROR,
  decideLostAttempt,
  type LostAttemptDecision,
  lostInARow,
  type SuspectLane,
  suspectLane,
} from "./recovery.ts";
export {
  API_INSTANCE_STATUSES,
  apiStatus,
  eligibleRollbacks,
  endRollbacks,
  parseRollbackOptions,
  ROLLBACK_MISSING,
  ROLLBACK_PHASE_MESSAGE,
  type RollbackOptions,
  rollbackCall,
  rollbackKeyString,
  rollbackMissing,
  startRollbacks,
  TERMINATE_TRIGGER_ERROR,
} from "./rollback.ts";
export {
  ACTIVE_STATUSES,
  type ApiInstanceStatus,
  type FinalStatus,
  INSTANCE_STATUSES,
  type InstanceStatus,
  isFinalStatus,
} from "./status.ts";
export {
  parseStepKeyString,
  parseStepLabel,
  STEP_KINDS,
  StepCounter,
  type StepKey,
  type StepKind,
  stepKeyString,
  stepLabel,
} from "./step-key.ts";
export {
  describeStoreLocation,
  parseStoreLocation,
  type StoreLocation,
} from "./store-location.ts";
export {
  type AdjustDelay,
  type Attempt,
  type AttemptEnd,
  type AttemptResult,
  endAttempt,
  endRun,
  endSleep,
  historyEntry,
  type InstanceWrite,
  loseAttempt,
  type ParkState,
  type ParkWrite,
  park,
  parkPaused,
  planRestart,
  type Replay,
  type RestartFrom,
  type RestartPlan,
  type RunResult,
  receiveEvent,
  replayStep,
  type StepCall,
  type StepWrite,
  startAttempt,
  startSleep,
  startWait,
  timeOutWait,
  waitMode,
  waitNext,
} from "./transitions.ts";
export {
  checkPayloadSize,
  validateEventType,
  validateInstanceId,
  validateStepName,
  validateWorkflowName,
} from "./validation.ts";
export {
  type ExecutionContext,
  type InstanceStatusDetails,
  type RestartOptions,
  type Workflow,
  type WorkflowClass,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowInstance,
  type WorkflowInstanceCreateOptions,
  type WorkflowInstanceTerminateOptions,
  type WorkflowRollbackContext,
  type WorkflowSleepDuration,
  type WorkflowStep,
  type WorkflowStepContext,
  type WorkflowStepEvent,
  type WorkflowStepRollbackOptions,
} from "./workflow.ts";
