/**
 * What `import … from "cloudflare:test"` loads under `cairnjs/vitest`: Cloudflare's test API for
 * Workers with workflows. `env`, `SELF` and `exports` belong to the test file's Worker.
 */
import { type TrackedContext, trackedContext, type WorkerFetcher } from "@cairn/compat";
import { env, exports } from "@cairn/compat/cloudflare-workers";
import { selfFetcher } from "./worker.ts";

export {
  introspectWorkflow,
  introspectWorkflowInstance,
  type WorkflowInstanceIntrospector,
  type WorkflowInstanceModifier,
  type WorkflowIntrospector,
} from "@cairn/testing";
export { env, exports };

/** The Worker's default entrypoint: `SELF.fetch("https://example.com/")` calls its fetch handler. */
export const SELF: WorkerFetcher = {
  fetch: (input, init) => selfFetcher().fetch(input, init),
};

/** An `ExecutionContext` to pass to a handler called directly; see `waitOnExecutionContext`. */
export function createExecutionContext(): TrackedContext {
  return trackedContext();
}

/** Waits for every `ctx.waitUntil` promise (also ones added while waiting) to settle. */
export async function waitOnExecutionContext(ctx: unknown): Promise<void> {
  if (typeof (ctx as TrackedContext | undefined)?.settle !== "function")
    throw new TypeError("waitOnExecutionContext needs a context made by createExecutionContext()");
  await (ctx as TrackedContext).settle();
}

function unsupported(name: string): (...args: unknown[]) => never {
  return () => {
    throw new Error(
      `cloudflare:test: ${name} is not supported by Cairn (only Workers with workflows run here)`,
    );
  };
}

export const runInDurableObject = unsupported("runInDurableObject");
export const runDurableObjectAlarm = unsupported("runDurableObjectAlarm");
export const listDurableObjectIds = unsupported("listDurableObjectIds");
export const applyD1Migrations = unsupported("applyD1Migrations");
export const createScheduledController = unsupported("createScheduledController");
export const createMessageBatch = unsupported("createMessageBatch");
export const getQueueResult = unsupported("getQueueResult");
