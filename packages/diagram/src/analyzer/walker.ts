/**
 * The statement and expression walker: turns one function body into graph nodes.
 *
 * Invariants:
 * - nodes come out in evaluation order; a statement or expression the walker does not know is
 *   searched generically for step calls, so unknown syntax loses structure, never steps;
 * - only the step object (the second parameter of `run`, and whatever it is passed to or aliased
 *   as) makes steps; helpers are analysed once, at their first call that can reach a step;
 * - containers without steps are dropped as they are built (`if`/`switch` survive with only an
 *   early exit inside, since that changes the flow).
 */
import type {
  BlockNode,
  Branch,
  FunctionCallNode,
  FunctionDefNode,
  GraphNode,
  IfNode,
  LoopKind,
  ParallelNode,
  StepNode,
} from "../types.ts";
import { type AstNode, childNodes, isFunction, patternNames, propertyName, unwrap, walk } from "./ast.ts";
import type { Binding, Scope } from "./scope.ts";
import {
  isStepMethod,
  renderName,
  type StepMethod,
  sleepFields,
  sleepUntilFields,
  stepConfig,
  waitForEventFields,
} from "./steps.ts";
import { hasStep } from "./tree.ts";

/** Whether the value of an expression is settled where it stands (awaited, returned) or left running. */
type Mode = "await" | "detached";

interface Context {
  scope: Scope;
  /** The await counter of the enclosing function (see `Concurrency` in types.ts). */
  flow: { counter: number };
  /** What an unlabelled `break` leaves. */
  breakTarget: "loop" | "switch" | undefined;
  /**
   * Whether a `return` here leaves the function being drawn (`run` or a helper). In a callback run
   * in place (a step's, a `.then`'s, a `map`'s) it only ends the callback, and is not drawn (like
   * `continue`).
   */
  returnExits: boolean;
}

/** The workflow class being analysed: its name, helper methods, and the scope it is declared in. */
export interface ClassInfo {
  name: string;
  methods: Map<string, AstNode>;
  scope: Scope;
}

const PARALLEL_KINDS: Record<string, ParallelNode["kind"]> = {
  all: "all",
  any: "any",
  allSettled: "all_settled",
  race: "race",
};

const ITERATION_METHODS: Record<string, LoopKind> = { forEach: "for_each", map: "map", flatMap: "map" };

/** Builds the graph of one workflow class: `run` plus the helpers it reaches. */
export class GraphBuilder {
  readonly functions: Record<string, FunctionDefNode> = {};
  readonly #keys = new Map<AstNode, string>();
  readonly #started = new Set<string>();

  readonly source: string;
  readonly workflow: ClassInfo;

  constructor(source: string, workflow: ClassInfo) {
    this.source = source;
    this.workflow = workflow;
  }

  /** The nodes of `run(event, step)`. */
  run(method: AstNode): GraphNode[] {
    return this.#functionBody(method, this.workflow.scope, new Set([1]));
  }

  #functionBody(fn: AstNode, defScope: Scope, stepIndexes: ReadonlySet<number>): GraphNode[] {
    const scope = defScope.child();
    scope.declareParams(fn.params ?? [], stepIndexes);
    const context: Context = { scope, flow: { counter: 1 }, breakTarget: undefined, returnExits: true };
    return this.#body(fn, context, "await");
  }

  /** A function's body in `context`: a block (its trailing `return` is not an early exit) or an expression. */
  #body(fn: AstNode, context: Context, mode: Mode): GraphNode[] {
    const body = fn.body as AstNode | null;
    if (!body) return [];
    if (body.type === "BlockStatement") return this.#statements(body.body, context, true);
    return this.#expression(body, context, mode);
  }

  #text(node: AstNode): string {
    return this.source.slice(node.start, node.end);
  }

  // ---------------------------------------------------------------- statements

  #statements(statements: readonly AstNode[], context: Context, tail = false): GraphNode[] {
    context.scope.declareStatements(statements);
    const nodes: GraphNode[] = [];
    statements.forEach((statement, i) => {
      try {
        nodes.push(...this.#statement(statement, context, tail && i === statements.length - 1));
      } catch {
        // A construct the walker mishandles is skipped; the rest of the diagram still renders.
      }
    });
    return nodes;
  }

  #block(statements: readonly AstNode[], context: Context, tail = false): GraphNode[] {
    return this.#statements(statements, { ...context, scope: context.scope.child() }, tail);
  }

  /** A statement used as a body (`if (x) stmt`, loop bodies): a block or a single statement. */
  #nested(statement: AstNode | null, context: Context, tail = false): GraphNode[] {
    if (!statement) return [];
    if (statement.type === "BlockStatement") return this.#block(statement.body, context, tail);
    return this.#block([statement], context, tail);
  }

  #statement(statement: AstNode, context: Context, tail: boolean): GraphNode[] {
    switch (statement.type) {
      case "ExpressionStatement":
        return this.#expression(statement.expression, context, "detached");
      case "VariableDeclaration":
        return this.#variableDeclaration(statement, context);
      case "ReturnStatement":
        return this.#return(statement, context, tail);
      case "IfStatement":
        return this.#if(statement, context, tail);
      case "BlockStatement":
        return this.#block(statement.body, context, tail);
      case "ForStatement":
      case "ForInStatement":
      case "ForOfStatement":
      case "WhileStatement":
      case "DoWhileStatement":
        return this.#loopStatement(statement, context);
      case "SwitchStatement":
        return this.#switch(statement, context);
      case "TryStatement":
        return this.#try(statement, context);
      case "BreakStatement":
        return context.breakTarget === "loop" || statement.label
          ? [{ type: "break", id: "", kind: "break" }]
          : [];
      case "LabeledStatement":
        return this.#statement(statement.body, context, tail);
      case "ExportNamedDeclaration":
      case "ExportDefaultDeclaration":
      case "FunctionDeclaration":
      case "ClassDeclaration":
      case "ContinueStatement":
      case "EmptyStatement":
        return [];
      default:
        return statement.type.startsWith("TS") ? [] : this.#generic(statement, context);
    }
  }

  #variableDeclaration(statement: AstNode, context: Context): GraphNode[] {
    const nodes: GraphNode[] = [];
    for (const declarator of statement.declarations as AstNode[]) {
      const produced = declarator.init ? this.#expression(declarator.init, context, "detached") : [];
      nodes.push(...produced);
      context.scope.declareVariable(statement.kind, declarator);
      const started = startedNodes(produced);
      if (started.length > 0 && declarator.id.type === "Identifier") {
        context.scope.declare(declarator.id.name, { kind: "pending", nodes: started });
      }
    }
    return nodes;
  }

  #return(statement: AstNode, context: Context, tail: boolean): GraphNode[] {
    const nodes = statement.argument ? this.#awaitedValue(statement.argument, context) : [];
    return tail || !context.returnExits ? nodes : [...nodes, { type: "break", id: "", kind: "return" }];
  }

  #if(statement: AstNode, context: Context, tail: boolean): GraphNode[] {
    const before = this.#expression(statement.test, context, "detached");
    const branches: Branch[] = [];
    let current: AstNode = statement;
    for (;;) {
      branches.push(branch(this.#text(current.test), this.#nested(current.consequent, context, tail)));
      const alternate = current.alternate as AstNode | null;
      if (!alternate) break;
      if (alternate.type === "IfStatement" && !containsAwait(alternate.test)) {
        current = alternate;
        continue;
      }
      branches.push(branch(null, this.#nested(alternate, context, tail)));
      break;
    }
    return [...before, ...ifNode(branches)];
  }

  #loopStatement(statement: AstNode, context: Context): GraphNode[] {
    const scope = context.scope.child();
    const inner: Context = { ...context, scope, breakTarget: "loop" };
    const before: GraphNode[] = [];
    const body: GraphNode[] = [];
    const kind = LOOP_KINDS[statement.type]!;
    if (statement.type === "ForStatement") {
      if (statement.init) before.push(...this.#statement(asStatement(statement.init), inner, false));
      if (statement.test) body.push(...this.#expression(statement.test, inner, "detached"));
      body.push(...this.#nested(statement.body, inner));
      if (statement.update) body.push(...this.#expression(statement.update, inner, "detached"));
    } else if (statement.type === "ForInStatement" || statement.type === "ForOfStatement") {
      before.push(...this.#expression(statement.right, context, "detached"));
      const left = statement.left as AstNode;
      const declared =
        left.type === "VariableDeclaration" ? left.declarations.map((d: AstNode) => d.id) : [left];
      for (const pattern of declared) for (const name of patternNames(pattern)) scope.declare(name);
      body.push(...this.#nested(statement.body, inner));
    } else if (statement.type === "WhileStatement") {
      body.push(
        ...this.#expression(statement.test, inner, "detached"),
        ...this.#nested(statement.body, inner),
      );
    } else {
      body.push(
        ...this.#nested(statement.body, inner),
        ...this.#expression(statement.test, inner, "detached"),
      );
    }
    return [...before, ...loopNode(kind, body)];
  }

  #switch(statement: AstNode, context: Context): GraphNode[] {
    const before = this.#expression(statement.discriminant, context, "detached");
    const inner: Context = { ...context, scope: context.scope.child(), breakTarget: "switch" };
    const branches = (statement.cases as AstNode[]).map((switchCase) =>
      branch(
        switchCase.test ? this.#text(switchCase.test) : null,
        this.#statements(switchCase.consequent, inner),
      ),
    );
    if (!branches.some((b) => b.nodes.length > 0)) return before;
    return [
      ...before,
      { type: "switch", id: "", discriminant: this.#text(statement.discriminant), branches },
    ];
  }

  #try(statement: AstNode, context: Context): GraphNode[] {
    const tryNodes = this.#block(statement.block.body, context);
    let catchNodes: GraphNode[] | null = null;
    if (statement.handler) {
      const scope = context.scope.child();
      for (const name of patternNames(statement.handler.param)) scope.declare(name);
      catchNodes = this.#block(statement.handler.body.body, { ...context, scope });
    }
    const finallyNodes = statement.finalizer ? this.#block(statement.finalizer.body, context) : null;
    return tryNode(tryNodes, catchNodes, finallyNodes);
  }

  // --------------------------------------------------------------- expressions

  #expression(node: AstNode | null | undefined, context: Context, mode: Mode): GraphNode[] {
    const expr = unwrap(node);
    if (!expr) return [];
    switch (expr.type) {
      case "AwaitExpression":
        return this.#awaitedValue(expr.argument, context);
      case "CallExpression":
        return this.#call(expr, context, mode);
      case "ConditionalExpression":
        return this.#conditional(expr, context, mode);
      case "LogicalExpression":
        return this.#logical(expr, context, mode);
      case "SequenceExpression":
        return expr.expressions.flatMap((e: AstNode, i: number) =>
          this.#expression(e, context, i === expr.expressions.length - 1 ? mode : "detached"),
        );
      case "AssignmentExpression":
        return this.#assignment(expr, context);
      case "ArrowFunctionExpression":
      case "FunctionExpression":
      case "ClassExpression":
      case "Identifier":
      case "Literal":
      case "ThisExpression":
        return [];
      default:
        return this.#generic(expr, context);
    }
  }

  /** An awaited or returned value: settles pending promises it names, or walks it as awaited. */
  #awaitedValue(node: AstNode, context: Context): GraphNode[] {
    const expr = unwrap(node);
    if (expr?.type === "Identifier" && this.#settle([expr], context)) return [];
    return this.#expression(expr, context, "await");
  }

  /** Marks the promises named by `identifiers` as resolved by one await. Returns whether any were pending. */
  #settle(identifiers: readonly AstNode[], context: Context): boolean {
    const pending = identifiers.flatMap((identifier) => {
      const binding = identifier.type === "Identifier" ? context.scope.lookup(identifier.name) : undefined;
      if (binding?.kind !== "pending") return [];
      context.scope.assign(identifier.name, { kind: "opaque" });
      return binding.nodes;
    });
    if (pending.length === 0) return false;
    context.flow.counter += 1;
    for (const node of pending) (node as StepNode | FunctionCallNode).resolves = context.flow.counter;
    return true;
  }

  #conditional(expr: AstNode, context: Context, mode: Mode): GraphNode[] {
    const before = this.#expression(expr.test, context, "detached");
    const branches = [
      branch(this.#text(expr.test), this.#expression(expr.consequent, context, mode)),
      branch(null, this.#expression(expr.alternate, context, mode)),
    ];
    return [...before, ...ifNode(branches)];
  }

  #logical(expr: AstNode, context: Context, mode: Mode): GraphNode[] {
    const before = this.#expression(expr.left, context, mode);
    const left = this.#text(expr.left);
    const condition =
      expr.operator === "&&" ? left : expr.operator === "||" ? `!(${left})` : `${left} == null`;
    return [...before, ...ifNode([branch(condition, this.#expression(expr.right, context, mode))])];
  }

  #assignment(expr: AstNode, context: Context): GraphNode[] {
    const nodes = this.#expression(expr.right, context, "detached");
    const started = startedNodes(nodes);
    if (expr.left.type === "Identifier") {
      const right = unwrap(expr.right);
      const isStep = right?.type === "Identifier" && context.scope.lookup(right.name)?.kind === "step";
      if (started.length > 0) context.scope.assign(expr.left.name, { kind: "pending", nodes: started });
      else if (isStep) context.scope.assign(expr.left.name, { kind: "step" });
    }
    return nodes;
  }

  /** Unknown constructs: their sub-expressions in order, without entering nested functions. */
  #generic(node: AstNode, context: Context): GraphNode[] {
    return childNodes(node).flatMap((child) =>
      isFunction(child) || child.type.startsWith("TS") ? [] : this.#childOfGeneric(child, context),
    );
  }

  #childOfGeneric(child: AstNode, context: Context): GraphNode[] {
    if (child.type.endsWith("Statement") || child.type.endsWith("Declaration")) {
      return this.#statement(child, context, false);
    }
    return this.#expression(child, context, "detached");
  }

  // --------------------------------------------------------------------- calls

  #call(call: AstNode, context: Context, mode: Mode): GraphNode[] {
    const callee = unwrap(call.callee) as AstNode;
    const member = callee.type === "MemberExpression" ? callee : undefined;
    const method = member ? propertyName(member) : undefined;
    if (member && isStepMethod(method) && this.#isStep(member.object, context)) {
      return [this.#step(method, call, context, mode)];
    }
    if (member && method && isPromiseGlobal(member.object, context) && PARALLEL_KINDS[method]) {
      return this.#parallel(PARALLEL_KINDS[method], call.arguments[0], context);
    }
    if (member && method && ITERATION_METHODS[method] && isFunction(unwrap(call.arguments[0]))) {
      return this.#iteration(ITERATION_METHODS[method], member, call.arguments[0], context, mode);
    }
    if (member && (method === "then" || method === "catch" || method === "finally")) {
      return this.#promiseChain(method, member, call.arguments, context, mode);
    }
    if (isFunction(callee)) return this.#inlineCallback(callee, context, "await");
    const object = member ? this.#expression(member.object, context, "detached") : [];
    const args = this.#arguments(call.arguments, context);
    return [...object, ...args, ...this.#helperCall(callee, call.arguments, context, mode)];
  }

  #isStep(node: AstNode, context: Context): boolean {
    const expr = unwrap(node);
    return expr?.type === "Identifier" && context.scope.lookup(expr.name)?.kind === "step";
  }

  #step(method: StepMethod, call: AstNode, context: Context, mode: Mode): StepNode {
    const args = call.arguments as AstNode[];
    const { name, dynamic } = renderName(args[0], context.scope, this.source);
    const base = { id: "", name, ...(dynamic ? { dynamic_name: true } : {}) };
    let node: StepNode;
    if (method === "do") {
      const callback = unwrap(args[args.length - 1]);
      const config = args.length >= 3 ? args[1] : undefined;
      const nodes = isFunction(callback) ? this.#inlineCallback(callback!, context, "await") : [];
      node = { type: "step_do", kind: "do", ...base, config: stepConfig(config, context.scope), nodes };
    } else if (method === "sleep") {
      node = { type: "step_sleep", kind: "sleep", ...base, ...sleepFields(args, context.scope) };
    } else if (method === "sleepUntil") {
      node = { type: "step_sleep_until", kind: "sleep", ...base, ...sleepUntilFields(args, context.scope) };
    } else {
      node = {
        type: "step_wait_for_event",
        kind: "waitForEvent",
        ...base,
        ...waitForEventFields(args, context.scope),
      };
    }
    if (mode === "detached") node.starts = context.flow.counter;
    return node;
  }

  /** `Promise.all([...])` and friends: one parallel branch per element; pending promises are settled. */
  #parallel(kind: ParallelNode["kind"], argument: AstNode | undefined, context: Context): GraphNode[] {
    const expr = unwrap(argument);
    const elements: AstNode[] =
      expr?.type === "ArrayExpression" ? expr.elements.filter(Boolean) : expr ? [expr] : [];
    const pending: AstNode[] = [];
    const children: GraphNode[] = [];
    for (const element of elements) {
      const item = unwrap(element.type === "SpreadElement" ? element.argument : element);
      if (item.type === "Identifier" && context.scope.lookup(item.name)?.kind === "pending") {
        pending.push(item);
        continue;
      }
      const nodes = this.#expression(item, context, "await");
      if (nodes.length === 1) children.push(nodes[0]!);
      else if (nodes.length > 1) children.push({ type: "block", id: "", nodes });
    }
    this.#settle(pending, context);
    return children.length > 0 ? [{ type: "parallel", id: "", kind, nodes: children }] : [];
  }

  /** `items.forEach(cb)`, `items.map(cb)`: the callback body as a loop. */
  #iteration(kind: LoopKind, member: AstNode, callback: AstNode, context: Context, mode: Mode): GraphNode[] {
    const before = this.#expression(member.object, context, "detached");
    const bodyMode = kind === "map" ? mode : "await";
    const body = this.#inlineCallback(unwrap(callback)!, { ...context, breakTarget: undefined }, bodyMode);
    return [...before, ...loopNode(kind, body)];
  }

  /** `p.then(cb)` runs cb after p; `p.catch(cb)` and `p.finally(cb)` read as try/catch and try/finally. */
  #promiseChain(method: string, member: AstNode, args: AstNode[], context: Context, mode: Mode): GraphNode[] {
    const first = this.#expression(member.object, context, mode);
    const callbacks = args.map((arg) => {
      const fn = unwrap(arg);
      return isFunction(fn) ? this.#inlineCallback(fn!, context, "await") : [];
    });
    const handlers = callbacks.flat();
    if (method === "then" || handlers.length === 0) return [...first, ...handlers];
    return method === "catch" ? tryNode(first, handlers, null) : tryNode(first, null, handlers);
  }

  /** A function value run in place: its parameters are opaque, it shares the caller's await counter. */
  #inlineCallback(fn: AstNode, context: Context, mode: Mode): GraphNode[] {
    const scope = context.scope.child();
    scope.declareParams(fn.params ?? [], new Set());
    return this.#body(fn, { ...context, scope, breakTarget: undefined, returnExits: false }, mode);
  }

  /** Arguments of an ordinary call: callbacks are run in place, other values walked. */
  #arguments(args: readonly AstNode[], context: Context): GraphNode[] {
    return args.flatMap((arg) => {
      const expr = unwrap(arg.type === "SpreadElement" ? arg.argument : arg);
      return isFunction(expr)
        ? this.#inlineCallback(expr, context, "await")
        : this.#expression(expr, context, "detached");
    });
  }

  /** A call of a helper that can reach the step object (passed in, or visible to a closure). */
  #helperCall(callee: AstNode, args: readonly AstNode[], context: Context, mode: Mode): GraphNode[] {
    const stepIndexes = new Set(args.flatMap((arg, i) => (this.#isStep(arg, context) ? [i] : [])));
    const target = this.#resolveCallee(callee, context);
    let call: FunctionCallNode | undefined;
    if (target && (stepIndexes.size > 0 || target.scope.seesStep())) {
      const key = this.#functionKey(target.fn, target.name);
      if (this.#define(key, target.fn, target.scope, stepIndexes))
        call = { type: "function_call", id: "", name: key };
    } else if (!target && stepIndexes.size > 0 && this.#isImported(callee, context)) {
      call = { type: "function_call", id: "", name: this.#text(callee), unresolved: true };
    }
    if (!call) return [];
    if (mode === "detached") call.starts = context.flow.counter;
    return [call];
  }

  /** True when the callee is an imported name or a member of one (`chargeCard`, `payments.charge`). */
  #isImported(callee: AstNode, context: Context): boolean {
    let root: AstNode | undefined = callee;
    while (root?.type === "MemberExpression") root = unwrap(root.object);
    return root?.type === "Identifier" && context.scope.lookup(root.name)?.kind === "import";
  }

  #resolveCallee(callee: AstNode, context: Context): Extract<Binding, { kind: "function" }> | undefined {
    if (callee.type === "Identifier") {
      const binding = context.scope.lookup(callee.name);
      return binding?.kind === "function" ? binding : undefined;
    }
    const object = callee.type === "MemberExpression" ? unwrap(callee.object) : undefined;
    const name = object?.type === "ThisExpression" ? propertyName(callee) : undefined;
    const fn = name ? this.workflow.methods.get(name) : undefined;
    return fn && name
      ? { kind: "function", fn, name: `${this.workflow.name}.${name}`, scope: this.workflow.scope }
      : undefined;
  }

  #functionKey(fn: AstNode, name: string): string {
    const known = this.#keys.get(fn);
    if (known) return known;
    const taken = new Set(this.#keys.values());
    let key = name;
    for (let n = 2; taken.has(key); n++) key = `${name}#${n}`;
    this.#keys.set(fn, key);
    return key;
  }

  /** Analyses a helper once. Returns whether it reaches a step (recursive calls are assumed to). */
  #define(key: string, fn: AstNode, scope: Scope, stepIndexes: ReadonlySet<number>): boolean {
    if (this.#started.has(key)) return key in this.functions || !this.#finished.has(key);
    this.#started.add(key);
    const def: FunctionDefNode = { type: "function_def", id: "", name: key, nodes: [] };
    this.functions[key] = def;
    def.nodes = this.#functionBody(fn, scope, stepIndexes);
    this.#finished.add(key);
    if (!hasStep(def.nodes)) delete this.functions[key];
    return key in this.functions;
  }

  readonly #finished = new Set<string>();
}

const LOOP_KINDS: Record<string, LoopKind> = {
  ForStatement: "for",
  ForInStatement: "for_in",
  ForOfStatement: "for_of",
  WhileStatement: "while",
  DoWhileStatement: "do_while",
};

function branch(condition: string | null, nodes: GraphNode[]): Branch {
  return { id: "", condition, nodes };
}

/** An `if` node, or nothing when no branch holds a node. A trailing empty `else` is dropped. */
function ifNode(branches: Branch[]): IfNode[] {
  if (!branches.some((b) => b.nodes.length > 0)) return [];
  const last = branches[branches.length - 1]!;
  const kept = last.condition === null && last.nodes.length === 0 ? branches.slice(0, -1) : branches;
  return [{ type: "if", id: "", branches: kept }];
}

function loopNode(kind: LoopKind, nodes: GraphNode[]): GraphNode[] {
  return hasStep(nodes) ? [{ type: "loop", id: "", loop_kind: kind, nodes }] : [];
}

function block(nodes: GraphNode[] | null): BlockNode | null {
  return nodes ? { type: "block", id: "", nodes } : null;
}

function tryNode(
  tryNodes: GraphNode[],
  catchNodes: GraphNode[] | null,
  finallyNodes: GraphNode[] | null,
): GraphNode[] {
  if (!hasStep([...tryNodes, ...(catchNodes ?? []), ...(finallyNodes ?? [])])) return [];
  return [
    {
      type: "try",
      id: "",
      try_block: block(tryNodes)!,
      catch_block: block(catchNodes),
      finally_block: block(finallyNodes),
    },
  ];
}

/** Step and call nodes started without `await` and not yet settled, at any depth. */
function startedNodes(nodes: readonly GraphNode[]): GraphNode[] {
  const out: GraphNode[] = [];
  const visit = (list: readonly GraphNode[]) => {
    for (const node of list) {
      if ("starts" in node && node.starts !== undefined && node.resolves === undefined) out.push(node);
      if (node.type === "loop" || node.type === "block") visit(node.nodes);
    }
  };
  visit(nodes);
  return out;
}

function containsAwait(node: AstNode): boolean {
  let found = false;
  walk(node, (n) => {
    if (n.type === "AwaitExpression") found = true;
  });
  return found;
}

function asStatement(node: AstNode): AstNode {
  return node.type === "VariableDeclaration"
    ? node
    : { type: "ExpressionStatement", start: node.start, end: node.end, expression: node };
}

function isPromiseGlobal(node: AstNode, context: Context): boolean {
  const expr = unwrap(node);
  return (
    expr?.type === "Identifier" && expr.name === "Promise" && context.scope.lookup("Promise") === undefined
  );
}
