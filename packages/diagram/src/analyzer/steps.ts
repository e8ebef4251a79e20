/**
 * Turning one `step.*(…)` call into a step node: the name (with `${…}` placeholders where it is
 * dynamic), and the constant parts of its config, duration, timestamp or event options.
 */
import {
  type DurationValue,
  type StepConfigDescriptor,
  type StepSleepNode,
  type StepSleepUntilNode,
  type StepWaitForEventNode,
  UNKNOWN,
} from "../types.ts";
import { type AstNode, unwrap } from "./ast.ts";
import { type ConstantValue, evaluate, NOT_CONSTANT } from "./constants.ts";
import type { Scope } from "./scope.ts";

/** The `step` methods that create steps, by the node type they become. */
export const STEP_METHODS = {
  do: "step_do",
  sleep: "step_sleep",
  sleepUntil: "step_sleep_until",
  waitForEvent: "step_wait_for_event",
} as const;

export type StepMethod = keyof typeof STEP_METHODS;

export function isStepMethod(name: string | undefined): name is StepMethod {
  return name !== undefined && Object.hasOwn(STEP_METHODS, name);
}

/** Engine defaults (SPEC §1), shown where a config leaves a field out. */
export const DEFAULT_STEP_CONFIG: StepConfigDescriptor = {
  retries: { limit: 5, delay: "10 seconds", backoff: "exponential" },
  timeout: "10 minutes",
};
export const DEFAULT_EVENT_TIMEOUT = "24 hours";

export interface RenderedName {
  name: string;
  dynamic: boolean;
}

/** A step name as text: constants folded, other parts as `${source}`. */
export function renderName(node: AstNode | undefined, scope: Scope, source: string): RenderedName {
  const expr = unwrap(node);
  if (!expr || expr.type === "SpreadElement") return { name: UNKNOWN, dynamic: true };
  const value = evaluate(expr, scope);
  if (typeof value === "string" || typeof value === "number") return { name: String(value), dynamic: false };
  if (expr.type === "TemplateLiteral") return renderTemplate(expr, scope, source);
  if (expr.type === "BinaryExpression" && expr.operator === "+") {
    const left = renderName(expr.left, scope, source);
    const right = renderName(expr.right, scope, source);
    return { name: left.name + right.name, dynamic: left.dynamic || right.dynamic };
  }
  return { name: placeholder(expr, source), dynamic: true };
}

function renderTemplate(expr: AstNode, scope: Scope, source: string): RenderedName {
  let name = "";
  let dynamic = false;
  expr.quasis.forEach((quasi: AstNode, i: number) => {
    name += quasi.value.cooked ?? quasi.value.raw;
    const inner = expr.expressions[i] as AstNode | undefined;
    if (!inner) return;
    const value = evaluate(inner, scope);
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      name += String(value);
    } else {
      name += placeholder(inner, source);
      dynamic = true;
    }
  });
  return { name, dynamic };
}

function placeholder(expr: AstNode, source: string): string {
  return "${" + source.slice(expr.start, expr.end) + "}";
}

/** A duration value (`"5 minutes"`, `5000`) or "unknown". */
export function durationOf(value: ConstantValue): DurationValue {
  return typeof value === "string" || typeof value === "number" ? value : UNKNOWN;
}

/** Resolves a `step.do` config argument; absent fields take engine defaults, opaque ones "unknown". */
export function stepConfig(node: AstNode | undefined, scope: Scope): StepConfigDescriptor {
  const defaults = DEFAULT_STEP_CONFIG;
  if (!node) return structuredClone(defaults);
  const value = evaluate(node, scope);
  if (value === NOT_CONSTANT || typeof value !== "object" || value === null || Array.isArray(value)) {
    return { retries: { limit: UNKNOWN, delay: UNKNOWN, backoff: UNKNOWN }, timeout: UNKNOWN };
  }
  const retries = value.retries;
  const retriesKnown = retries === undefined || (typeof retries === "object" && retries !== null);
  const field = (object: ConstantValue, key: string): ConstantValue =>
    retriesKnown && typeof object === "object" && object !== null && !Array.isArray(object)
      ? object[key]
      : NOT_CONSTANT;
  const limit = retries === undefined ? defaults.retries.limit : field(retries, "limit");
  const delay = retries === undefined ? defaults.retries.delay : field(retries, "delay");
  const backoff = retries === undefined ? defaults.retries.backoff : field(retries, "backoff");
  return {
    retries: {
      limit: typeof limit === "number" ? limit : limit === undefined ? defaults.retries.limit : UNKNOWN,
      delay: delay === undefined ? defaults.retries.delay : durationOf(delay),
      backoff:
        backoff === undefined ? defaults.retries.backoff : typeof backoff === "string" ? backoff : UNKNOWN,
    },
    timeout: value.timeout === undefined ? defaults.timeout : durationOf(value.timeout),
  };
}

/** The node for `step.sleep(name, duration)`. */
export function sleepFields(args: AstNode[], scope: Scope): Pick<StepSleepNode, "duration"> {
  return { duration: durationOf(evaluate(args[1], scope)) };
}

/** The node for `step.sleepUntil(name, timestamp)`: a constant string/number, or `new Date(constant)`. */
export function sleepUntilFields(args: AstNode[], scope: Scope): Pick<StepSleepUntilNode, "timestamp"> {
  const expr = unwrap(args[1]);
  const isDate =
    expr?.type === "NewExpression" && expr.callee.type === "Identifier" && expr.callee.name === "Date";
  const value = evaluate(isDate && expr.arguments.length === 1 ? expr.arguments[0] : expr, scope);
  return { timestamp: typeof value === "string" || typeof value === "number" ? value : UNKNOWN };
}

/** The node for `step.waitForEvent(name, { type, timeout })`. */
export function waitForEventFields(args: AstNode[], scope: Scope): Pick<StepWaitForEventNode, "options"> {
  if (!args[1]) return { options: null };
  const value = evaluate(args[1], scope);
  const options = typeof value === "object" && value !== null && !Array.isArray(value) ? value : {};
  return {
    options: {
      event_type: typeof options.type === "string" ? options.type : UNKNOWN,
      timeout:
        options.timeout === undefined && value !== NOT_CONSTANT
          ? DEFAULT_EVENT_TIMEOUT
          : durationOf(options.timeout ?? NOT_CONSTANT),
    },
  };
}
