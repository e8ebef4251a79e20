import { type StepKind, stepKeyString } from "@cairn/core";

/**
 * Picks a step the way Cloudflare's introspection API does: by name, and by 1-based `index` among the
 * steps of that name (the step key's `count`). `index` defaults to 1.
 */
export interface StepSelector {
  name: string;
  index?: number;
}

/** The `stepKeyString` of the step a selector names, for a given kind of step. */
export function selectorKey(kind: StepKind, selector: StepSelector): string {
  if (typeof selector !== "object" || selector === null || typeof selector.name !== "string")
    throw new TypeError("[WorkflowIntrospector] A step selector must be { name: string, index?: number }");
  const index = selector.index ?? 1;
  if (!Number.isInteger(index) || index < 1)
    throw new TypeError(
      `[WorkflowIntrospector] The index of step '${selector.name}' must be a whole number ≥ 1 (it is 1-based), got ${selector.index}`,
    );
  return stepKeyString({ kind, name: selector.name, count: index });
}
