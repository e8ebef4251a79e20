export type { CairnLike } from "./harness.ts";
export { composeHooks } from "./hooks.ts";
export {
  introspectWorkflow,
  introspectWorkflowInstance,
  type WorkflowInstanceIntrospector,
  type WorkflowIntrospector,
} from "./introspect.ts";
export type { WorkflowInstanceModifier } from "./modifier.ts";
export { type StepSelector, selectorKey } from "./selectors.ts";
export {
  createTestCairn,
  TEST_DEFAULT_RETRY_DELAY,
  type TestCairn,
  type TestCairnBaseOptions,
  type TestCairnCreateOptions,
  type TestCairnExtras,
  type TestCairnOptions,
} from "./test-cairn.ts";
