/**
 * Stable node ids: the path from the root, so the same source always yields the same ids.
 * `run`'s nodes are "n0", "n1", …; children append their index ("n2.0"), and nodes with several
 * child lists (branches of `if`/`switch`, try/catch/finally blocks) append the list's index first
 * ("n3.1.0" is the first node of the second branch of n3). A helper's definition is "f:<name>" and
 * its nodes "f:<name>.0", "f:<name>.0.1", ….
 */
import { childLists } from "./analyzer/tree.ts";
import type { GraphNode, WorkflowGraph } from "./types.ts";

/** Writes ids into every node, branch and block of `graph` (in place) and returns it. */
export function assignIds(graph: WorkflowGraph): WorkflowGraph {
  for (const [i, node] of graph.workflow.nodes.entries()) assignNode(node, `n${i}`);
  for (const def of Object.values(graph.workflow.functions)) {
    def.id = `f:${def.name}`;
    for (const [i, node] of def.nodes.entries()) assignNode(node, `${def.id}.${i}`);
  }
  return graph;
}

function assignNode(node: GraphNode, id: string): void {
  node.id = id;
  for (const list of childLists(node)) {
    let prefix = id;
    if (list.owner) {
      list.owner.id = `${id}.${list.segment}`;
      prefix = list.owner.id;
    }
    for (const [i, child] of list.nodes.entries()) assignNode(child, `${prefix}.${i}`);
  }
}
