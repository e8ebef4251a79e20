/** A workflow class's graph from its own source text, for apps that call `createCairn` directly. */
import { analyzeWorkflows } from "./analyzer/index.ts";
import type { WorkflowGraph } from "./types.ts";

/**
 * Analyses a workflow class from `Function.prototype.toString` (the class's own source text, as the
 * JavaScript engine keeps it) and returns its graph, or `undefined` when the text holds no workflow
 * (e.g. a native or bound function).
 *
 * Only the class body is seen: helper functions defined outside the class (module functions,
 * imports) show as unresolved `function_call` nodes, and `const` values from outside the class
 * (configs, names) as `"unknown"`. Methods of the class itself are followed. Where the project is
 * loaded by `hostProject`/`cairn start`/`cairn dev`, the whole entry module is bundled and analysed
 * instead, which sees everything.
 *
 * @example
 * const graphs = new Map(workflows.map((w) => [w.name, graphOf(w.class)]));
 * createApi({ runtime: cairn.runtime, graph: (name) => graphs.get(name) });
 */
export function graphOf(
  workflowClass: abstract new (...args: never[]) => unknown,
): WorkflowGraph | undefined {
  let text: string;
  try {
    text = Function.prototype.toString.call(workflowClass);
  } catch {
    return undefined;
  }
  if (!/^class\b/.test(text)) return undefined;
  // A class expression as a statement needs a binding; an anonymous class gets the function's name.
  const named = /^class\s*(extends\b|\{)/.test(text)
    ? text.replace(/^class/, `class ${workflowClass.name || "Workflow"}`)
    : text;
  const graphs = analyzeWorkflows(`${named}\n`, { filename: "workflow.js" });
  return graphs.find((g) => g.workflow.class_name === workflowClass.name) ?? graphs[0];
}
