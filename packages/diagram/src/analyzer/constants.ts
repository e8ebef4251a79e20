/**
 * Constant folding for the values a diagram shows: step names, configs, durations, event types.
 * Only literals and `const` bindings are followed; anything else is {@link NOT_CONSTANT}.
 * Objects may be partly constant: a non-constant property holds NOT_CONSTANT.
 */
import { type AstNode, keyName, propertyName, unwrap } from "./ast.ts";
import type { Scope } from "./scope.ts";

export const NOT_CONSTANT: unique symbol = Symbol("not constant");

export type ConstantValue =
  | string
  | number
  | boolean
  | null
  | undefined
  | typeof NOT_CONSTANT
  | ConstantValue[]
  | { [key: string]: ConstantValue };

const MAX_DEPTH = 32;

/** Folds `node` to a constant where the source alone decides its value. */
export function evaluate(node: AstNode | null | undefined, scope: Scope, depth = 0): ConstantValue {
  const expr = unwrap(node);
  if (!expr || depth > MAX_DEPTH) return NOT_CONSTANT;
  const next = (child: AstNode | null | undefined) => evaluate(child, scope, depth + 1);
  switch (expr.type) {
    case "Literal":
      return isPlainLiteral(expr.value) && expr.regex === undefined && expr.bigint === undefined
        ? expr.value
        : NOT_CONSTANT;
    case "TemplateLiteral":
      return evaluateTemplate(expr, next);
    case "Identifier":
      return evaluateIdentifier(expr.name, scope, depth);
    case "UnaryExpression":
      return evaluateUnary(expr.operator, next(expr.argument));
    case "BinaryExpression":
      return evaluateBinary(expr.operator, next(expr.left), next(expr.right));
    case "ConditionalExpression": {
      const test = next(expr.test);
      return test === NOT_CONSTANT ? NOT_CONSTANT : next(test ? expr.consequent : expr.alternate);
    }
    case "ObjectExpression":
      return evaluateObject(expr, next);
    case "ArrayExpression":
      return expr.elements.map((e: AstNode | null) =>
        e && e.type !== "SpreadElement" ? next(e) : NOT_CONSTANT,
      );
    case "MemberExpression":
      return evaluateMember(expr, next);
    default:
      return NOT_CONSTANT;
  }
}

function isPlainLiteral(value: unknown): value is string | number | boolean | null {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}

function evaluateIdentifier(name: string, scope: Scope, depth: number): ConstantValue {
  if (name === "undefined") return undefined;
  const binding = scope.lookup(name);
  return binding?.kind === "const" ? evaluate(binding.init, binding.scope, depth + 1) : NOT_CONSTANT;
}

function evaluateTemplate(expr: AstNode, next: (n: AstNode) => ConstantValue): ConstantValue {
  let out = "";
  for (let i = 0; i < expr.quasis.length; i++) {
    out += expr.quasis[i].value.cooked ?? expr.quasis[i].value.raw;
    const inner = expr.expressions[i] as AstNode | undefined;
    if (!inner) continue;
    const value = next(inner);
    if (!isScalar(value)) return NOT_CONSTANT;
    out += String(value);
  }
  return out;
}

function isScalar(value: ConstantValue): value is string | number | boolean | null | undefined {
  return value !== NOT_CONSTANT && (value === null || typeof value !== "object");
}

function evaluateUnary(operator: string, value: ConstantValue): ConstantValue {
  if (value === NOT_CONSTANT) return NOT_CONSTANT;
  if (operator === "!") return !value;
  if (operator === "void") return undefined;
  if (typeof value !== "number") return NOT_CONSTANT;
  return operator === "-" ? -value : operator === "+" ? value : NOT_CONSTANT;
}

function evaluateBinary(operator: string, left: ConstantValue, right: ConstantValue): ConstantValue {
  if (!isScalar(left) || !isScalar(right)) return NOT_CONSTANT;
  if (operator === "+" && (typeof left === "string" || typeof right === "string")) {
    return String(left) + String(right);
  }
  if (typeof left !== "number" || typeof right !== "number") return NOT_CONSTANT;
  switch (operator) {
    case "+":
      return left + right;
    case "-":
      return left - right;
    case "*":
      return left * right;
    case "/":
      return left / right;
    default:
      return NOT_CONSTANT;
  }
}

function evaluateObject(expr: AstNode, next: (n: AstNode) => ConstantValue): ConstantValue {
  const out: Record<string, ConstantValue> = {};
  for (const property of expr.properties as AstNode[]) {
    if (property.type === "SpreadElement") {
      const spread = next(property.argument);
      if (spread === NOT_CONSTANT || typeof spread !== "object" || spread === null) return NOT_CONSTANT;
      Object.assign(out, spread);
      continue;
    }
    const key = property.computed ? next(property.key) : keyName(property.key);
    if (typeof key !== "string" && typeof key !== "number") return NOT_CONSTANT;
    out[String(key)] = property.kind === "init" && !property.method ? next(property.value) : NOT_CONSTANT;
  }
  return out;
}

function evaluateMember(expr: AstNode, next: (n: AstNode) => ConstantValue): ConstantValue {
  const object = next(expr.object);
  const key = expr.computed ? next(expr.property) : propertyName(expr);
  if (object === NOT_CONSTANT || typeof object !== "object" || object === null) return NOT_CONSTANT;
  if (typeof key !== "string" && typeof key !== "number") return NOT_CONSTANT;
  if (Array.isArray(object) && key === "length") return object.length;
  return Object.hasOwn(object, key) ? (object as Record<string, ConstantValue>)[key] : undefined;
}
