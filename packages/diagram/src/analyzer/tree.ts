/** Small structural helpers over graph nodes, shared by the analyzer, ids and collapsing. */
import type { BlockNode, Branch, GraphNode } from "../types.ts";

/** A list of child nodes and the path segment that leads to it from its parent. */
export interface ChildList {
  segment: number;
  nodes: GraphNode[];
  /** The branch or block that owns the list, when there is one between parent and children. */
  owner?: Branch | BlockNode;
}

/** The child lists of a node, in display order (try/catch/finally blocks, branches, plain nodes). */
export function childLists(node: GraphNode): ChildList[] {
  switch (node.type) {
    case "if":
    case "switch":
      return node.branches.map((branch, segment) => ({ segment, nodes: branch.nodes, owner: branch }));
    case "try":
      return [node.try_block, node.catch_block, node.finally_block].flatMap((block, segment) =>
        block ? [{ segment, nodes: block.nodes, owner: block }] : [],
      );
    case "step_do":
    case "loop":
    case "parallel":
    case "block":
      return [{ segment: -1, nodes: node.nodes }];
    default:
      return [];
  }
}

/** Every node in `nodes` and below, pre-order. */
export function* descendants(nodes: readonly GraphNode[]): Generator<GraphNode> {
  for (const node of nodes) {
    yield node;
    for (const list of childLists(node)) yield* descendants(list.nodes);
  }
}

/** True when a step or helper call occurs in `nodes` or below. */
export function hasStep(nodes: readonly GraphNode[]): boolean {
  for (const node of descendants(nodes)) {
    if (node.type.startsWith("step_") || node.type === "function_call") return true;
  }
  return false;
}

/** How many step nodes occur in `nodes` or below. */
export function countSteps(nodes: readonly GraphNode[]): number {
  let count = 0;
  for (const node of descendants(nodes)) if (node.type.startsWith("step_")) count++;
  return count;
}

/**
 * Removes calls to helpers that are not defined (pruned for having no steps), then containers
 * left without steps. Mutates child lists in place and returns the kept top-level nodes.
 */
export function pruneCalls(nodes: GraphNode[], defined: ReadonlySet<string>): GraphNode[] {
  return nodes.filter((node) => {
    if (node.type === "function_call") return node.unresolved === true || defined.has(node.name);
    const lists = childLists(node);
    for (const list of lists) list.nodes.splice(0, list.nodes.length, ...pruneCalls(list.nodes, defined));
    if (node.type === "if" || node.type === "switch") return node.branches.some((b) => b.nodes.length > 0);
    if (node.type === "step_do" || lists.length === 0) return true;
    return hasStep(lists.flatMap((list) => list.nodes));
  });
}
