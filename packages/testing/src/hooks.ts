import type { RuntimeHooks } from "@cairn/runtime";

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
