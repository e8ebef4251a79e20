/**
 * Thin helpers over the ESTree/TS-ESTree AST that `oxc-parser` returns. The analyzer reads the AST
 * structurally, so nodes are typed loosely here; each helper tolerates shapes it does not know.
 */
import { visitorKeys } from "oxc-parser";

/** Any AST node: a `type` discriminator, a source span, and node-specific fields. */
export interface AstNode {
  type: string;
  start: number;
  end: number;
  [field: string]: any;
}

const WRAPPERS = new Set([
  "ParenthesizedExpression",
  "TSAsExpression",
  "TSSatisfiesExpression",
  "TSNonNullExpression",
  "TSTypeAssertion",
  "TSInstantiationExpression",
  "ChainExpression",
]);

/** Strips parentheses and TypeScript-only wrappers (`as`, `satisfies`, `!`, `<T>x`). */
export function unwrap(node: AstNode): AstNode;
export function unwrap(node: AstNode | null | undefined): AstNode | undefined;
export function unwrap(node: AstNode | null | undefined): AstNode | undefined {
  let current = node ?? undefined;
  while (current && WRAPPERS.has(current.type)) current = current.expression;
  return current;
}

export function isAstNode(value: unknown): value is AstNode {
  return typeof value === "object" && value !== null && typeof (value as AstNode).type === "string";
}

/** The node's children in evaluation order (per oxc's `visitorKeys`). */
export function childNodes(node: AstNode): AstNode[] {
  const out: AstNode[] = [];
  for (const key of visitorKeys[node.type] ?? []) {
    const value = node[key];
    if (Array.isArray(value)) {
      for (const item of value) if (isAstNode(item)) out.push(item);
    } else if (isAstNode(value)) {
      out.push(value);
    }
  }
  return out;
}

export function isFunction(node: AstNode | undefined): boolean {
  return (
    node?.type === "ArrowFunctionExpression" ||
    node?.type === "FunctionExpression" ||
    node?.type === "FunctionDeclaration"
  );
}

/** The name of a non-computed member property (`a.b`, `a["b"]`), or undefined. */
export function propertyName(member: AstNode): string | undefined {
  const property = member.property as AstNode | undefined;
  if (!property) return undefined;
  if (!member.computed && (property.type === "Identifier" || property.type === "PrivateIdentifier")) {
    return property.name;
  }
  if (property.type === "Literal" && typeof property.value === "string") return property.value;
  return undefined;
}

/** The name of an object/class key (`foo`, `"foo"`, `#foo`), or undefined when computed. */
export function keyName(key: AstNode | undefined, computed = false): string | undefined {
  if (!key) return undefined;
  if (!computed && (key.type === "Identifier" || key.type === "PrivateIdentifier")) return key.name;
  if (key.type === "Literal" && (typeof key.value === "string" || typeof key.value === "number")) {
    return String(key.value);
  }
  return undefined;
}

/** Every identifier a binding pattern declares (`a`, `{ a, b: [c] }`, `...d`, `e = 1`). */
export function patternNames(pattern: AstNode | null | undefined): string[] {
  if (!pattern) return [];
  switch (pattern.type) {
    case "Identifier":
      return [pattern.name];
    case "ObjectPattern":
      return pattern.properties.flatMap((p: AstNode) =>
        patternNames(p.type === "RestElement" ? p.argument : p.value),
      );
    case "ArrayPattern":
      return pattern.elements.flatMap((e: AstNode | null) => patternNames(e));
    case "RestElement":
      return patternNames(pattern.argument);
    case "AssignmentPattern":
      return patternNames(pattern.left);
    case "TSParameterProperty":
      return patternNames(pattern.parameter);
    default:
      return [];
  }
}

/** Depth-first pre-order walk over every node under `root` (inclusive). */
export function walk(root: AstNode, enter: (node: AstNode) => void): void {
  const stack: AstNode[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    enter(node);
    const children = childNodes(node);
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
}
