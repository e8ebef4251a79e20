/**
 * Graph → Mermaid `flowchart TD`. Sequences are chained with arrows; loops, parallel groups,
 * branches, try blocks and helpers are subgraphs. Steps started without `await` are reached by a
 * dotted arrow. Collapsed containers (see `collapseGraph`) are single nodes.
 */
import { branchTitle, labelOf, truncate } from "./labels.ts";
import type { Branch, GraphNode, WorkflowGraph } from "./types.ts";

const MAX_LABEL = 80;

/** Renders `graph` as Mermaid source. Node ids are the graph ids with `.`/`:` replaced by `_`. */
export function toMermaid(graph: WorkflowGraph): string {
  const out = new MermaidWriter();
  out.line("flowchart TD");
  out.line(`  start(["${escapeLabel(graph.workflow.class_name)}"])`);
  const last = out.sequence(graph.workflow.nodes, "  ", "start");
  out.line(`  done(["end"])`);
  out.line(`  ${last} --> done`);
  for (const def of Object.values(graph.workflow.functions)) {
    const id = mermaidId(def.id);
    const title = def.collapsed ? `${def.name}() (${def.hidden_steps ?? 0} steps hidden)` : `${def.name}()`;
    out.line(`  subgraph ${id}["${escapeLabel(title)}"]`);
    out.sequence(def.nodes, "    ", undefined);
    out.line("  end");
  }
  return `${out.lines.join("\n")}\n`;
}

class MermaidWriter {
  readonly lines: string[] = [];

  line(text: string): void {
    this.lines.push(text);
  }

  /** Writes `nodes` chained after `previous`; returns the id of the last item (or `previous`). */
  sequence(nodes: readonly GraphNode[], indent: string, previous: string | undefined): string {
    let last = previous;
    for (const node of nodes) {
      const id = this.node(node, indent);
      if (last)
        this.line(`${indent}${last} ${"starts" in node && node.starts !== undefined ? "-.->" : "-->"} ${id}`);
      last = id;
    }
    return last ?? "";
  }

  /** Writes one node (or subgraph) and returns its id. */
  node(node: GraphNode, indent: string): string {
    const id = mermaidId(node.id);
    const { title, detail } = labelOf(node);
    const lines = detail ? [title, detail] : [title];
    const text = lines.map((line) => escapeLabel(truncate(line, MAX_LABEL))).join("<br/>");
    switch (node.type) {
      case "step_do":
        if (node.nodes.length === 0) return this.#leaf(indent, `${id}["${text}"]`, id);
        return this.#subgraph(id, text, indent, (inner) => this.sequence(node.nodes, inner, undefined));
      case "step_sleep":
      case "step_sleep_until":
        return this.#leaf(indent, `${id}(["${text}"])`, id);
      case "step_wait_for_event":
        return this.#leaf(indent, `${id}{{"${text}"}}`, id);
      case "function_call":
        return this.#leaf(indent, `${id}[["${text}"]]`, id);
      case "break":
        return this.#leaf(indent, `${id}(("${text}"))`, id);
      default:
        break;
    }
    if (node.collapsed) return this.#leaf(indent, `${id}["${text} ⊕"]`, id);
    switch (node.type) {
      case "loop":
      case "block":
        return this.#subgraph(id, text, indent, (inner) => this.sequence(node.nodes, inner, undefined));
      case "parallel":
        return this.#subgraph(id, text, indent, (inner) => {
          for (const child of node.nodes) this.node(child, inner);
        });
      case "if":
      case "switch":
        return this.#subgraph(id, text, indent, (inner) => this.#branches(node.branches, node.type, inner));
      case "try":
        return this.#subgraph(id, text, indent, (inner) => this.#tryBlocks(node, inner));
    }
  }

  #leaf(indent: string, declaration: string, id: string): string {
    this.line(indent + declaration);
    return id;
  }

  #subgraph(id: string, label: string, indent: string, body: (inner: string) => void): string {
    this.line(`${indent}subgraph ${id}["${label}"]`);
    this.line(`${indent}  direction TB`);
    body(`${indent}  `);
    this.line(`${indent}end`);
    return id;
  }

  #branches(branches: readonly Branch[], type: "if" | "switch", indent: string): void {
    for (const branch of branches) {
      const id = mermaidId(branch.id);
      const title = escapeLabel(truncate(branchTitle(branch.condition, type === "switch"), MAX_LABEL));
      this.#subgraph(id, title, indent, (inner) => {
        if (branch.nodes.length === 0) this.line(`${inner}${id}_empty((" "))`);
        this.sequence(branch.nodes, inner, undefined);
      });
    }
  }

  #tryBlocks(node: Extract<GraphNode, { type: "try" }>, indent: string): void {
    const parts = [
      ["try", node.try_block],
      ["catch", node.catch_block],
      ["finally", node.finally_block],
    ] as const;
    const ids: Partial<Record<string, string>> = {};
    for (const [title, block] of parts) {
      if (!block) continue;
      ids[title] = this.#subgraph(mermaidId(block.id), title, indent, (inner) => {
        if (block.nodes.length === 0) this.line(`${inner}${mermaidId(block.id)}_empty((" "))`);
        this.sequence(block.nodes, inner, undefined);
      });
    }
    if (ids.catch) this.line(`${indent}${ids.try} -. error .-> ${ids.catch}`);
    if (ids.finally) this.line(`${indent}${ids.try} --> ${ids.finally}`);
    if (ids.catch && ids.finally) this.line(`${indent}${ids.catch} --> ${ids.finally}`);
  }
}

/** A Mermaid-safe id for a graph id. */
export function mermaidId(id: string): string {
  return id.replace(/[^A-Za-z0-9_]/g, "_");
}

/** Escapes one line for a double-quoted Mermaid label (entity codes for `"`, `<`, `>`, `#`). */
export function escapeLabel(text: string): string {
  return text.replace(/#/g, "#35;").replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(/>/g, "#gt;");
}
