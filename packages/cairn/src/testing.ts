/**
 * `cairnjs/testing`: test workflows with a fake clock and Cloudflare's introspection API
 * (`introspectWorkflowInstance`, `introspectWorkflow`), in vitest or `node:test`. See docs/testing.md.
 */
import { type TestCairn, type TestCairnOptions, testCairnFactory } from "@cairn/testing";
import { type CairnOptions as AllOptions, type Cairn, createCairn, type WorkflowConfig } from "./cairn.ts";

/** Test Cairns are about workflows: `workflows` is required here. */
type CairnOptions = AllOptions & { workflows: WorkflowConfig[] };

export { FakeClock } from "@cairn/core";
export {
  composeHooks,
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

const create = testCairnFactory<CairnOptions, Cairn>(createCairn);

/**
 * A real Cairn for tests: in-memory store, `FakeClock`, 10 ms default retry delay, and the hooks the
 * introspectors need. Its bindings (`cairn.env.X`) are what `introspectWorkflowInstance` and
 * `introspectWorkflow` take.
 *
 * ```ts
 * await using cairn = await createTestCairn({ workflows: [{ binding: "WF", name: "wf", class: MyWorkflow }] });
 * await cairn.env.WF.create({ id: "1" });
 * await cairn.advanceTime("30 days");
 * ```
 */
export function createTestCairn<Env = Record<string, unknown>>(
  options: TestCairnOptions<CairnOptions>,
): Promise<TestCairn<Cairn<Env>>> {
  return create(options) as Promise<TestCairn<Cairn<Env>>>;
}
