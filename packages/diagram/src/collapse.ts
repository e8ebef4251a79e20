/**
 * Folding parts of a graph for a high-level view: loops, branches, try blocks, parallel groups,
 * and helpers (by their `f:<name>` id) can be collapsed by id and expanded again by leaving the
 * id out. Renderers draw a collapsed container as one box that says how many steps it hides.
 */
import { childLists, countSteps, descendants } from "./analyzer/tree.ts";
import type { GraphNode, WorkflowGraph } from "./types.ts";

/**
 * Returns a copy of `graph` in which every node whose `id` is in `collapsedIds` keeps its own
 * fields but loses its children (`collapsed: true`, `hidden_steps: <steps hidden>`).
 * Ids that name no container are ignored; the input graph is not modified.
 *
 * @example
 * const overview = collapseGraph(graph, new Set(collapsibleIds(graph)));
 */
export function collapseGraph(graph: WorkflowGraph, collapsedIds: ReadonlySet<string>): WorkflowGraph {
  const copy = structuredClone(graph);
  collapseList(copy.workflow.nodes, collapsedIds);
  for (const def of Object.values(copy.workflow.functions)) {
    if (collapsedIds.has(def.id) && def.nodes.length > 0) {
      Object.assign(def, { collapsed: true, hidden_steps: countSteps(def.nodes), nodes: [] });
    } else {
      collapseList(def.nodes, collapsedIds);
    }
  }
  return copy;
}

function collapseList(nodes: GraphNode[], collapsedIds: ReadonlySet<string>): void {
  for (const node of nodes) {
    const lists = childLists(node);
    if (collapsedIds.has(node.id) && lists.some((list) => list.nodes.length > 0)) {
      node.collapsed = true;
      node.hidden_steps = lists.reduce((sum, list) => sum + countSteps(list.nodes), 0);
      for (const list of lists) list.nodes.length = 0;
    } else {
      for (const list of lists) collapseList(list.nodes, collapsedIds);
    }
  }
}

/** Ids of everything that can be collapsed: containers with children, and helper definitions. */
export function collapsibleIds(graph: WorkflowGraph): string[] {
  const roots = [graph.workflow.nodes, ...Object.values(graph.workflow.functions).map((def) => def.nodes)];
  const ids = roots.flatMap((nodes) =>
    [...descendants(nodes)]
      .filter((node) => childLists(node).some((l) => l.nodes.length > 0))
      .map((n) => n.id),
  );
  return [...ids, ...Object.values(graph.workflow.functions).map((def) => def.id)];
}
