/** Source → workflow graphs. Parses with oxc; never executes the code it reads. */
import { parseSync } from "oxc-parser";
import { assignIds } from "../ids.ts";
import type { AnalyzeOptions, WorkflowGraph } from "../types.ts";
import type { AstNode } from "./ast.ts";
import { findWorkflowClasses } from "./classes.ts";
import { reassignedNames } from "./scope.ts";
import { pruneCalls } from "./tree.ts";
import { GraphBuilder } from "./walker.ts";

/**
 * Analyses a module's source and returns one graph per workflow class it defines, in source order.
 *
 * Works on TypeScript and JavaScript sources and on bundled/minified output. Source that does not
 * parse, or that defines no workflow, yields `[]`; constructs the analyzer does not understand are
 * skipped (steps inside them are still found where possible) and values it cannot know without
 * running the code are written as `"unknown"`. The code is never executed.
 *
 * @example
 * const [graph] = analyzeWorkflows(readFileSync("src/checkout.ts", "utf8"), { filename: "checkout.ts" });
 * graph.workflow.nodes[0]; // { type: "step_do", kind: "do", name: "load order", id: "n0", … }
 */
export function analyzeWorkflows(source: string, options: AnalyzeOptions = {}): WorkflowGraph[] {
  const program = parse(source, options.filename ?? "workflow.ts");
  if (!program) return [];
  return findWorkflowClasses(program, reassignedNames(program)).map((workflow) => {
    const builder = new GraphBuilder(source, workflow);
    const nodes = builder.run(workflow.run);
    const defined = new Set(Object.keys(builder.functions));
    for (const def of Object.values(builder.functions)) def.nodes = pruneCalls(def.nodes, defined);
    const graph: WorkflowGraph = {
      version: 1,
      workflow: {
        class_name: workflow.name,
        functions: builder.functions,
        nodes: pruneCalls(nodes, defined),
      },
    };
    return assignIds(graph);
  });
}

function parse(source: string, filename: string): AstNode | undefined {
  try {
    const result = parseSync(filename, source);
    const program = result.program as unknown as AstNode;
    return program.body.length > 0 ? program : undefined;
  } catch {
    return undefined;
  }
}
