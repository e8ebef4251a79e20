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
  TEST_DEFAULT_RETRY_DELAY,
  type TestCairn,
  type TestCairnBaseOptions,
  type TestCairnExtras,
  type TestCairnOptions,
  testCairnFactory,
} from "./test-cairn.ts";
