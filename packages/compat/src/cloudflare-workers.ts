/**
 * What `import … from "cloudflare:workers"` loads under Cairn. Workflows and Durable Objects are
 * Cairn's own; the other Workers classes are harmless stand-ins so that modules importing them
 * still load.
 */
import { type ExecutionContext, NonRetryableError, WorkflowEntrypoint } from "@cairn/core";

export type {
  ExecutionContext,
  WorkflowEvent,
  WorkflowSleepDuration,
  WorkflowStep,
  WorkflowStepConfig,
  WorkflowStepContext,
} from "@cairn/core";
export {
  DurableObject,
  type DurableObjectId,
  type DurableObjectNamespace,
  type DurableObjectState,
  type DurableObjectStub,
  type SqlStorageCursor,
} from "@cairn/objects";
export { NonRetryableError, WorkflowEntrypoint };

/** Where the host puts the project's `env` for the `env` export (shared by every copy of this module). */
export const ENV_SLOT: unique symbol = Symbol.for("cairn.compat.env") as never;

/** Where the host puts the entry module's entrypoints for the `exports` export (see `workerExports`). */
export const EXPORTS_SLOT: unique symbol = Symbol.for("cairn.compat.exports") as never;

/** Stand-in for Cloudflare's `WorkerEntrypoint`: keeps `ctx` and `env`; a default export may extend it. */
export abstract class WorkerEntrypoint<Env = unknown, _Props = unknown> {
  protected ctx: ExecutionContext;
  protected env: Env;
  constructor(ctx: ExecutionContext, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }
}

/** Stand-in for Cloudflare's `RpcTarget` marker class. */
export class RpcTarget {}

/** A live view of what the host put in a global slot (so every copy of this module sees the same). */
function slotView(slot: symbol): Record<string, any> {
  const current = (): Record<string | symbol, unknown> =>
    ((globalThis as any)[slot] as Record<string, unknown> | undefined) ?? {};
  return new Proxy(
    {},
    {
      get: (_t, key) => current()[key as string],
      has: (_t, key) => key in current(),
      ownKeys: () => Reflect.ownKeys(current()),
      getOwnPropertyDescriptor: (_t, key) => {
        const d = Reflect.getOwnPropertyDescriptor(current(), key);
        return d ? { ...d, configurable: true } : undefined;
      },
    },
  );
}

/** The project's bindings and vars, like `import { env } from "cloudflare:workers"`. */
export const env: Record<string, any> = slotView(ENV_SLOT);

/**
 * The entry module's entrypoints, like `import { exports } from "cloudflare:workers"`:
 * `exports.default.fetch("https://example.com/")` calls the Worker's own fetch handler in-process.
 */
export const exports: Record<string, any> = slotView(EXPORTS_SLOT);

/** Like Cloudflare's `waitUntil`: the host keeps the promise's errors from going unhandled. */
export function waitUntil(promise: Promise<unknown>): void {
  promise.catch((e) => console.error("waitUntil: a promise failed", e));
}
