import type { ResolvedStepConfig, StepKey } from "@cairn/core";

/** Which step of which instance a hook is called for. */
export interface StepHookInfo {
  workflow: string;
  instanceId: string;
  step: StepKey;
}

/**
 * The runtime's few extension points. Testing helpers use them to mock step results and skip waits;
 * applications can use them for tracing. Hooks run inside the engine: they must be quick and must not
 * throw unless they mean to fail the operation.
 */
export interface RuntimeHooks {
  /** Called before an instance is stored; throwing refuses the creation. */
  beforeCreate?(info: { workflow: string; id: string; params: unknown }): void | Promise<void>;
  /**
   * Wraps each attempt of a `step.do` callback. Call `next()` to run it; return a value or throw to
   * replace its outcome (which is then stored like a real one).
   */
  wrapStep?(
    info: StepHookInfo & { attempt: number; config: ResolvedStepConfig },
    next: () => Promise<unknown>,
  ): Promise<unknown>;
  /** Adjusts a wait before it starts: a sleep, a retry delay or an event-wait timeout, in ms. */
  adjustWait?(info: StepHookInfo & { reason: "sleep" | "retry" | "eventTimeout" }, ms: number): number;
}

/**
 * Runs two sets of runtime hooks as one. `outer` (the application's) sees every step first: its
 * `wrapStep` wraps `inner`'s, so tracing observes mocked outcomes; `adjustWait` applies `outer` then
 * `inner`; `beforeCreate` calls `outer` then `inner`.
 */
export function composeHooks(inner: RuntimeHooks, outer?: RuntimeHooks): RuntimeHooks {
  if (!outer) return inner;
  const hooks: RuntimeHooks = {};
  if (inner.beforeCreate || outer.beforeCreate)
    hooks.beforeCreate = async (info) => {
      await outer.beforeCreate?.(info);
      await inner.beforeCreate?.(info);
    };
  if (inner.wrapStep && outer.wrapStep) {
    const a = inner.wrapStep;
    const b = outer.wrapStep;
    hooks.wrapStep = (info, next) => b(info, () => a(info, next));
  } else if (inner.wrapStep || outer.wrapStep) hooks.wrapStep = inner.wrapStep ?? outer.wrapStep;
  if (inner.adjustWait || outer.adjustWait)
    hooks.adjustWait = (info, ms) => {
      const after = outer.adjustWait ? outer.adjustWait(info, ms) : ms;
      return inner.adjustWait ? inner.adjustWait(info, after) : after;
    };
  return hooks;
}
