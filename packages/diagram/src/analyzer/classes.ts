/**
 * Finding workflow classes: every class that extends `WorkflowEntrypoint` (under any import alias,
 * as `ns.WorkflowEntrypoint`, or through another workflow class in the file), plus any class whose
 * `run(event, step)` uses its second parameter as a step object (minified bundles that inlined or
 * renamed the base class). Each class is returned with the scope it is declared in.
 */
import { type AstNode, childNodes, isFunction, keyName, propertyName, unwrap, walk } from "./ast.ts";
import { Scope } from "./scope.ts";
import { isStepMethod } from "./steps.ts";
import type { ClassInfo } from "./walker.ts";

const BASE_CLASS = "WorkflowEntrypoint";

interface FoundClass {
  node: AstNode;
  name: string;
  scope: Scope;
}

/** Workflow classes in source order, each with its `run` method. */
export function findWorkflowClasses(
  program: AstNode,
  reassigned: ReadonlySet<string>,
): (ClassInfo & { run: AstNode })[] {
  const classes: FoundClass[] = [];
  const aliases = new Set<string>([BASE_CLASS]);
  collect(program, new Scope(undefined, reassigned), undefined, classes, aliases);
  const workflowNames = new Set<string>();
  const workflows = new Set<FoundClass>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const found of classes) {
      if (workflows.has(found) || !isWorkflowClass(found.node, aliases, workflowNames)) continue;
      workflows.add(found);
      workflowNames.add(found.name);
      changed = true;
    }
  }
  return classes.flatMap((found) => {
    const methods = classMethods(found.node);
    const run = methods.get("run");
    return workflows.has(found) && run ? [{ name: found.name, methods, scope: found.scope, run }] : [];
  });
}

function collect(
  node: AstNode,
  scope: Scope,
  parent: AstNode | undefined,
  classes: FoundClass[],
  aliases: Set<string>,
) {
  let inner = scope;
  if (node.type === "Program" || node.type === "BlockStatement" || node.type === "StaticBlock") {
    inner = node.type === "Program" ? scope : scope.child();
    inner.declareStatements(node.body);
  } else if (isFunction(node)) {
    inner = scope.child();
    inner.declareParams(node.params ?? [], new Set());
  } else if (node.type === "ClassDeclaration" || node.type === "ClassExpression") {
    classes.push({ node, name: className(node, parent), scope });
  } else {
    noteAlias(node, aliases);
  }
  for (const child of childNodes(node)) collect(child, inner, node, classes, aliases);
}

/** Records local names of `WorkflowEntrypoint` (imports, `x.WorkflowEntrypoint`, destructuring). */
function noteAlias(node: AstNode, aliases: Set<string>): void {
  if (node.type === "ImportSpecifier" && keyName(node.imported) === BASE_CLASS) aliases.add(node.local.name);
  if (node.type === "VariableDeclarator" && node.id.type === "Identifier") {
    const init = unwrap(node.init);
    if (init?.type === "MemberExpression" && propertyName(init) === BASE_CLASS) aliases.add(node.id.name);
  }
  if (node.type === "Property" && keyName(node.key) === BASE_CLASS && node.value?.type === "Identifier") {
    aliases.add(node.value.name);
  }
}

function className(node: AstNode, parent: AstNode | undefined): string {
  if (node.id?.name) return node.id.name;
  if (parent?.type === "VariableDeclarator" && parent.id.type === "Identifier") return parent.id.name;
  if (parent?.type === "AssignmentExpression") {
    const left = parent.left as AstNode;
    return left.type === "Identifier" ? left.name : (propertyName(left) ?? "anonymous");
  }
  if (parent?.type === "Property") return keyName(parent.key) ?? "anonymous";
  return parent?.type === "ExportDefaultDeclaration" ? "default" : "anonymous";
}

function isWorkflowClass(
  node: AstNode,
  aliases: ReadonlySet<string>,
  workflowNames: ReadonlySet<string>,
): boolean {
  const superClass = unwrap(node.superClass);
  if (
    superClass?.type === "Identifier" &&
    (aliases.has(superClass.name) || workflowNames.has(superClass.name))
  ) {
    return true;
  }
  if (superClass?.type === "MemberExpression" && propertyName(superClass) === BASE_CLASS) return true;
  return runUsesStep(classMethods(node).get("run"));
}

/** True when an async `run`'s second parameter is called as `p.do / sleep / sleepUntil / waitForEvent(…)`. */
function runUsesStep(run: AstNode | undefined): boolean {
  const param = run?.params?.[1];
  if (!run?.async || !run.body || param?.type !== "Identifier") return false;
  let used = false;
  walk(run.body, (n) => {
    const callee = n.type === "CallExpression" ? unwrap(n.callee) : undefined;
    if (callee?.type !== "MemberExpression") return;
    const object = unwrap(callee.object);
    if (object?.type === "Identifier" && object.name === param.name && isStepMethod(propertyName(callee))) {
      used = true;
    }
  });
  return used;
}

/** A class's methods and function-valued fields, by name. */
function classMethods(node: AstNode): Map<string, AstNode> {
  const methods = new Map<string, AstNode>();
  for (const member of node.body?.body ?? []) {
    const name = keyName(member.key, member.computed);
    const value = unwrap(member.value);
    if (!name || !value || !isFunction(value)) continue;
    if (member.type === "MethodDefinition" && member.kind === "method") methods.set(name, value);
    if (member.type === "PropertyDefinition") methods.set(name, value);
  }
  return methods;
}
