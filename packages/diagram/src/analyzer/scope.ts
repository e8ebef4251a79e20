/**
 * Lexical scopes as the analyzer sees them: which names are the step object, constants, helper
 * functions, or promises started without `await`. Everything else is opaque.
 */
import type { GraphNode } from "../types.ts";
import { type AstNode, isFunction, patternNames, unwrap, walk } from "./ast.ts";

/** What a name is bound to, as far as the diagram cares. */
export type Binding =
  | { kind: "step" }
  | { kind: "const"; init: AstNode; scope: Scope }
  | { kind: "function"; fn: AstNode; name: string; scope: Scope }
  | { kind: "pending"; nodes: GraphNode[] }
  | { kind: "import" }
  | { kind: "opaque" };

const OPAQUE: Binding = { kind: "opaque" };

export class Scope {
  readonly #bindings = new Map<string, Binding>();

  readonly parent: Scope | undefined;
  /** Names assigned anywhere in the program: a `let`/`var` among them is not a constant. */
  readonly reassigned: ReadonlySet<string>;

  constructor(parent: Scope | undefined, reassigned: ReadonlySet<string>) {
    this.parent = parent;
    this.reassigned = reassigned;
  }

  child(): Scope {
    return new Scope(this, this.reassigned);
  }

  declare(name: string, binding: Binding = OPAQUE): void {
    this.#bindings.set(name, binding);
  }

  lookup(name: string): Binding | undefined {
    return this.#bindings.get(name) ?? this.parent?.lookup(name);
  }

  /** True when some enclosing scope binds the step object (a closure can use it). */
  seesStep(): boolean {
    for (const binding of this.#bindings.values()) if (binding.kind === "step") return true;
    return this.parent?.seesStep() ?? false;
  }

  /** Rebinds `name` where it is declared (for `p = step.do(…)`); declares it here if unknown. */
  assign(name: string, binding: Binding): void {
    let scope: Scope | undefined = this;
    while (scope && !scope.#bindings.has(name)) scope = scope.parent;
    (scope ?? this).#bindings.set(name, binding);
  }

  /** Hoists the declarations of a statement list (functions, variables, classes) into this scope. */
  declareStatements(statements: readonly AstNode[]): void {
    for (const statement of statements) this.#declareStatement(statement);
  }

  #declareStatement(statement: AstNode): void {
    const declaration =
      statement.type === "ExportNamedDeclaration" || statement.type === "ExportDefaultDeclaration"
        ? statement.declaration
        : statement;
    if (statement.type === "ImportDeclaration") {
      for (const specifier of statement.specifiers) this.declare(specifier.local.name, { kind: "import" });
    }
    if (!declaration) return;
    if (declaration.type === "FunctionDeclaration" && declaration.id) {
      this.declare(declaration.id.name, {
        kind: "function",
        fn: declaration,
        name: declaration.id.name,
        scope: this,
      });
    } else if (declaration.type === "ClassDeclaration" && declaration.id) {
      this.declare(declaration.id.name);
    } else if (declaration.type === "VariableDeclaration") {
      for (const declarator of declaration.declarations) this.declareVariable(declaration.kind, declarator);
    }
  }

  /** Binds one `const`/`let`/`var` declarator by what its initializer is. */
  declareVariable(kind: string, declarator: AstNode): void {
    const id = declarator.id as AstNode;
    if (id.type !== "Identifier") {
      for (const name of patternNames(id)) this.declare(name);
      return;
    }
    this.declare(id.name, this.#bindingOf(kind, id.name, unwrap(declarator.init)));
  }

  #bindingOf(kind: string, name: string, init: AstNode | undefined): Binding {
    if (!init) return OPAQUE;
    if (isFunction(init)) return { kind: "function", fn: init, name, scope: this };
    if (init.type === "Identifier" && this.lookup(init.name)?.kind === "step") return { kind: "step" };
    const constant = kind === "const" || !this.reassigned.has(name);
    return constant ? { kind: "const", init, scope: this } : OPAQUE;
  }

  /** Binds function parameters: those at `stepIndexes` are the step object, the rest opaque. */
  declareParams(params: readonly AstNode[], stepIndexes: ReadonlySet<number>): void {
    params.forEach((param, index) => {
      const target = param.type === "TSParameterProperty" ? param.parameter : param;
      if (stepIndexes.has(index) && target.type === "Identifier") this.declare(target.name, { kind: "step" });
      else for (const name of patternNames(target)) this.declare(name);
    });
  }
}

/** Names that appear as assignment or update targets anywhere in `root`. */
export function reassignedNames(root: AstNode): Set<string> {
  const names = new Set<string>();
  walk(root, (node) => {
    const target =
      node.type === "AssignmentExpression"
        ? node.left
        : node.type === "UpdateExpression"
          ? node.argument
          : null;
    if (target?.type === "Identifier") names.add(target.name);
  });
  return names;
}
