/**
 * `cairnjs/testing`: test workflows with a fake clock and Cloudflare's introspection API
 * (`introspectWorkflowInstance`, `introspectWorkflow`), in vitest or `node:test`. See docs/testing.md.
 * It re-exports `@cairn/testing`.
 */
export { FakeClock } from "@cairn/core";
export {
  composeHooks,
  createTestCairn,
  introspectWorkflow,
  introspectWorkflowInstance,
  type StepSelector,
  TEST_DEFAULT_RETRY_DELAY,
  type TestCairn,
  type TestCairnExtras,
  type TestCairnOptions,
  type WorkflowInstanceIntrospector,
  type WorkflowInstanceModifier,
  type WorkflowIntrospector,
} from "@cairn/testing";
