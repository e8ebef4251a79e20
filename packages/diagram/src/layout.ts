/**
 * Graph → positioned boxes and edges, laid out by ELK's layered algorithm (top to bottom).
 * Containers (loops, parallel groups, if/switch branches, try blocks, helpers) are compound nodes
 * laid out recursively; sequences are chained by arrows inside their container.
 *
 * This module is browser-safe (no parser, no Node APIs): `@cairn/diagram/layout` is what the
 * dashboard loads to draw diagrams itself; `toSvg` draws the same layout as SVG text.
 */
import elkModule, { type ElkExtendedEdge, type ElkNode } from "elkjs/lib/elk.bundled.js";
import { childLists, countSteps } from "./analyzer/tree.ts";
import { branchTitle, labelOf, type NodeLabel, truncate } from "./labels.ts";
import type { BlockNode, Branch, GraphNode, StepKind, StepNode, WorkflowGraph } from "./types.ts";

/** elkjs is CommonJS: under Node's ESM loader the default import is the constructor itself. */
const ELK: typeof elkModule.default = (elkModule as any).default ?? elkModule;

/** Options of {@link layoutGraph}. */
export interface LayoutOptions {
  /**
   * Ids of boxes to draw collapsed (one box saying how many steps it hides). Ids are the graph's
   * node ids (`n4`, `f:helper`); inside an inlined helper call they are prefixed with the call's id
   * (`n3/f:helper.0`). See {@link collapsibleBoxIds}.
   */
  collapsed?: ReadonlySet<string>;
  /** Draw helper definitions beside the main flow. Default true (false when `inlineCalls`). */
  functions?: boolean;
  /**
   * Draw each helper call as a container holding the helper's body (recursion stops at a call
   * already being expanded), instead of a leaf plus separate definitions. Default false.
   */
  inlineCalls?: boolean;
}

/** A step a box stands for, to match it with an instance's steps by `(kind, name, count)`. */
export interface BoxStep {
  kind: StepKind;
  /** The name, or a pattern with `${…}` placeholders when `dynamic`. */
  name: string;
  dynamic: boolean;
  /** Inside a loop or a helper: the node stands for every count of its name. */
  repeated: boolean;
  /**
   * For a step that is not repeated: its occurrence among the not-repeated nodes of the same kind
   * and name (1-based), i.e. the `count` it runs as.
   */
  ordinal: number;
}

/** One box of a laid-out diagram; coordinates are absolute (from the drawing's top-left). */
export interface LayoutBox {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Drawn as a compound node (header + children) rather than a leaf. */
  container: boolean;
  /** CSS classes: the node type ("step step_do", "loop", "branch", "terminal", …). */
  className: string;
  title: string;
  detail?: string;
  /** The full, untruncated label. */
  tooltip: string;
  /** Whether clicking the box can collapse (or, when `collapsed`, expand) it. */
  collapsible: boolean;
  collapsed: boolean;
  /** Nesting depth (0 for the top-level boxes). */
  depth: number;
  /** For step nodes: what to match with instance steps. */
  step?: BoxStep;
  /** For collapsed boxes: the steps they hide (for an aggregated live state). */
  hidden?: BoxStep[];
}

/** One arrow: polylines in absolute coordinates. */
export interface LayoutEdge {
  id: string;
  sections: { x: number; y: number }[][];
}

export interface DiagramLayout {
  width: number;
  height: number;
  /** Pre-order: containers before their children. */
  boxes: LayoutBox[];
  edges: LayoutEdge[];
}

const CHAR_WIDTH = 7;
const MAX_CHARS = 40;
const LEAF_HEIGHT = 44;
const HEADER = 26;
const CONTAINER_OPTIONS = {
  "elk.algorithm": "layered",
  "elk.direction": "DOWN",
  "elk.spacing.nodeNode": "16",
  "elk.layered.spacing.nodeNodeBetweenLayers": "22",
  "elk.padding": `[top=${HEADER + 8},left=12,bottom=12,right=12]`,
};

/**
 * Lays `graph` out with ELK (in this thread) and returns absolute boxes and edge polylines.
 *
 * @example
 * const { boxes, edges, width, height } = await layoutGraph(graph, { collapsed: new Set(["n2"]) });
 */
export async function layoutGraph(graph: WorkflowGraph, options: LayoutOptions = {}): Promise<DiagramLayout> {
  const builder = new ElkBuilder(graph, options);
  const root = builder.root();
  const laidOut = await new ELK().layout(root);
  return collect(laidOut, builder.shapes);
}

/**
 * Every id that can be collapsed in a drawing with these options, including those only visible
 * once their parents are expanded (for "collapse all").
 */
export function collapsibleBoxIds(
  graph: WorkflowGraph,
  options: Omit<LayoutOptions, "collapsed"> = {},
): string[] {
  const builder = new ElkBuilder(graph, { ...options, collapsed: new Set() });
  builder.root();
  return [...builder.shapes.values()].filter((s) => s.collapsible).map((s) => s.id);
}

/** What the drawing needs to know about an ELK node besides its geometry. */
interface Shape extends Omit<LayoutBox, "x" | "y" | "width" | "height" | "depth"> {}

interface Scope {
  /** Prefix of box ids (inside inlined calls). */
  prefix: string;
  repeated: boolean;
  /** Helpers being expanded (recursion guard). */
  calls: readonly string[];
}

class ElkBuilder {
  readonly shapes = new Map<string, Shape>();
  #edge = 0;
  readonly #graph: WorkflowGraph;
  readonly #collapsed: ReadonlySet<string>;
  readonly #inline: boolean;
  readonly #functions: boolean;
  readonly #ordinals = new Map<string, number>();

  constructor(graph: WorkflowGraph, options: LayoutOptions) {
    this.#graph = graph;
    this.#collapsed = options.collapsed ?? new Set();
    this.#inline = options.inlineCalls ?? false;
    this.#functions = options.functions ?? !this.#inline;
  }

  root(): ElkNode {
    const { class_name, nodes, functions } = this.#graph.workflow;
    const start = this.#terminal("start", class_name);
    const end = this.#terminal("end", "end");
    const scope: Scope = { prefix: "", repeated: false, calls: [] };
    const main = this.#container(
      "main",
      "workflow",
      { title: `${class_name}.run` },
      [start, ...this.#list(nodes, scope), end],
      true,
      false,
    );
    const helpers = this.#functions
      ? Object.values(functions).map((def) => {
          const inner: Scope = { prefix: "", repeated: true, calls: [def.name] };
          if ((this.#collapsed.has(def.id) && def.nodes.length > 0) || def.collapsed)
            return this.#collapsedLeaf(
              def.id,
              "function",
              { title: `${def.name}()` },
              def.nodes,
              inner,
              undefined,
              def.hidden_steps,
            );
          return this.#container(
            def.id,
            "function",
            { title: `${def.name}()` },
            this.#list(def.nodes, inner),
            true,
            true,
          );
        })
      : [];
    return {
      id: "root",
      layoutOptions: {
        ...CONTAINER_OPTIONS,
        "elk.direction": "RIGHT",
        "elk.padding": "[top=12,left=12,bottom=12,right=12]",
      },
      children: [main, ...helpers],
    };
  }

  #list(nodes: readonly GraphNode[], scope: Scope): ElkNode[] {
    return nodes.map((node) => this.#node(node, scope));
  }

  #node(node: GraphNode, scope: Scope): ElkNode {
    const id = scope.prefix + node.id;
    const label = labelOf({ ...node, collapsed: false } as GraphNode);
    const inner: Scope = node.type === "loop" ? { ...scope, repeated: true } : scope;
    const collapse = this.#collapsed.has(id) || node.collapsed === true;
    switch (node.type) {
      case "step_do": {
        const step = this.#step(node, scope);
        if (node.nodes.length === 0) return this.#leaf(id, "step step_do", label, { step });
        if (collapse) return this.#collapsedLeaf(id, "step step_do", label, node.nodes, inner, step);
        return this.#container(id, "step step_do", label, this.#list(node.nodes, inner), true, true, step);
      }
      case "step_sleep":
      case "step_sleep_until":
      case "step_wait_for_event":
        return this.#leaf(id, `step ${node.type}`, label, { step: this.#step(node, scope) });
      case "function_call": {
        const def = this.#graph.workflow.functions[node.name];
        if (!this.#inline || !def || def.nodes.length === 0 || scope.calls.includes(node.name))
          return this.#leaf(id, node.type, label, {});
        const called: Scope = { prefix: `${id}/`, repeated: true, calls: [...scope.calls, node.name] };
        const title = { title: `${node.name}()`, detail: "call" };
        if (collapse) return this.#collapsedLeaf(id, "function_call call", title, def.nodes, called);
        return this.#container(id, "function_call call", title, this.#list(def.nodes, called), true, true);
      }
      case "break":
        return this.#leaf(id, node.type, label, {});
      default:
        break;
    }
    const children = childLists(node).flatMap((l) => l.nodes);
    if (collapse)
      return this.#collapsedLeaf(id, node.type, label, children, inner, undefined, node.hidden_steps);
    switch (node.type) {
      case "loop":
      case "block":
        return this.#container(id, node.type, label, this.#list(node.nodes, inner), true, true);
      case "parallel":
        return this.#container(id, node.type, label, this.#list(node.nodes, inner), false, true);
      case "if":
      case "switch": {
        const branches = node.branches.map((b) => this.#branch(b, node.type === "switch", inner));
        return this.#container(id, node.type, label, branches, false, true);
      }
      case "try":
        return this.#tryNode(node, id, label, inner);
    }
  }

  #step(node: StepNode, scope: Scope): BoxStep {
    const dynamic = node.dynamic_name === true;
    const repeated = scope.repeated || dynamic;
    let ordinal = 0;
    if (!repeated) {
      const key = `${node.kind}:${node.name}`;
      ordinal = (this.#ordinals.get(key) ?? 0) + 1;
      this.#ordinals.set(key, ordinal);
    }
    return { kind: node.kind, name: node.name, dynamic, repeated, ordinal };
  }

  /** Step descriptors under `nodes` (helpers called from them included, once). */
  #hiddenSteps(nodes: readonly GraphNode[], scope: Scope): BoxStep[] {
    const out: BoxStep[] = [];
    const walk = (list: readonly GraphNode[], s: Scope) => {
      for (const node of list) {
        if (isStep(node))
          out.push({
            kind: node.kind,
            name: node.name,
            dynamic: node.dynamic_name === true,
            repeated: true,
            ordinal: 0,
          });
        if (node.type === "function_call") {
          const def = this.#graph.workflow.functions[node.name];
          if (def && !s.calls.includes(node.name)) walk(def.nodes, { ...s, calls: [...s.calls, node.name] });
        }
        for (const l of childLists(node)) walk(l.nodes, s);
      }
    };
    walk(nodes, scope);
    return out;
  }

  #branch(branch: Branch, inSwitch: boolean, scope: Scope): ElkNode {
    const title = branchTitle(branch.condition, inSwitch);
    const id = scope.prefix + branch.id;
    if (this.#collapsed.has(id) && branch.nodes.length > 0)
      return this.#collapsedLeaf(id, "branch", { title }, branch.nodes, scope);
    return this.#container(
      id,
      "branch",
      { title },
      this.#list(branch.nodes, scope),
      true,
      branch.nodes.length > 0,
    );
  }

  #tryNode(node: Extract<GraphNode, { type: "try" }>, id: string, label: NodeLabel, scope: Scope): ElkNode {
    const parts: [string, BlockNode | null][] = [
      ["try", node.try_block],
      ["catch", node.catch_block],
      ["finally", node.finally_block],
    ];
    const blocks = parts.flatMap(([title, block]) => {
      if (!block) return [];
      const blockId = scope.prefix + block.id;
      if (this.#collapsed.has(blockId) && block.nodes.length > 0)
        return [this.#collapsedLeaf(blockId, `block ${title}`, { title }, block.nodes, scope)];
      return [
        this.#container(
          blockId,
          `block ${title}`,
          { title },
          this.#list(block.nodes, scope),
          true,
          block.nodes.length > 0,
        ),
      ];
    });
    return this.#container(id, "try", label, blocks, true, true);
  }

  #collapsedLeaf(
    id: string,
    className: string,
    label: NodeLabel,
    children: readonly GraphNode[],
    scope: Scope,
    step?: BoxStep,
    hiddenSteps?: number,
  ): ElkNode {
    const hidden = this.#hiddenSteps(children, scope);
    // A node already folded by `collapseGraph` has no children left but knows how many it hid.
    const own = children.length > 0 ? countSteps(children) : (hiddenSteps ?? 0);
    const title = `${label.title} (${own} step${own === 1 ? "" : "s"} hidden)`;
    const shown = label.detail ? { title, detail: label.detail } : { title };
    return this.#leaf(id, `${className} collapsed`, shown, {
      collapsible: true,
      collapsed: true,
      hidden,
      ...(step ? { step } : {}),
    });
  }

  #leaf(
    id: string,
    className: string,
    label: NodeLabel,
    extra: Partial<Pick<Shape, "collapsible" | "collapsed" | "step" | "hidden">>,
  ): ElkNode {
    const title = truncate(label.title, MAX_CHARS);
    const detail = label.detail ? truncate(label.detail, MAX_CHARS + 12) : undefined;
    const chars = Math.max(title.length, (detail?.length ?? 0) * 0.85);
    const tooltip = label.detail ? `${label.title}\n${label.detail}` : label.title;
    this.shapes.set(id, {
      id,
      className,
      title,
      ...(detail ? { detail } : {}),
      tooltip,
      container: false,
      collapsible: extra.collapsible ?? false,
      collapsed: extra.collapsed ?? false,
      ...(extra.step ? { step: extra.step } : {}),
      ...(extra.hidden ? { hidden: extra.hidden } : {}),
    });
    return {
      id,
      width: Math.max(96, Math.round(chars * CHAR_WIDTH + 28)),
      height: detail ? LEAF_HEIGHT : 32,
    };
  }

  #terminal(id: string, text: string): ElkNode {
    return this.#leaf(id, "terminal", { title: text }, {});
  }

  #container(
    id: string,
    className: string,
    label: NodeLabel,
    children: ElkNode[],
    chained: boolean,
    collapsible: boolean,
    step?: BoxStep,
  ): ElkNode {
    const title = truncate(label.detail ? `${label.title} · ${label.detail}` : label.title, MAX_CHARS + 20);
    this.shapes.set(id, {
      id,
      className,
      title,
      tooltip: label.title,
      container: true,
      collapsible,
      collapsed: false,
      ...(step ? { step } : {}),
    });
    const inner =
      children.length > 0 ? children : [this.#leaf(`${id}~empty`, "empty", { title: "(nothing)" }, {})];
    const edges: ElkExtendedEdge[] = chained
      ? inner
          .slice(1)
          .map((child, i) => ({ id: `e${this.#edge++}`, sources: [inner[i]!.id], targets: [child.id] }))
      : [];
    const minWidth = Math.round(title.length * CHAR_WIDTH + 28);
    return {
      id,
      layoutOptions: {
        ...CONTAINER_OPTIONS,
        "elk.nodeSize.constraints": "MINIMUM_SIZE",
        "elk.nodeSize.minimum": `(${minWidth},40)`,
      },
      children: inner,
      edges,
    };
  }
}

/** Flattens ELK's relative coordinates into absolute boxes and edges. */
function collect(root: ElkNode, shapes: ReadonlyMap<string, Shape>): DiagramLayout {
  const boxes: LayoutBox[] = [];
  const edges: LayoutEdge[] = [];
  const absolute = new Map<string, [number, number]>();
  const visit = (node: ElkNode, offsetX: number, offsetY: number, depth: number) => {
    const x = offsetX + (node.x ?? 0);
    const y = offsetY + (node.y ?? 0);
    absolute.set(node.id, [x, y]);
    const shape = shapes.get(node.id);
    if (shape) boxes.push({ ...shape, x, y, width: node.width ?? 0, height: node.height ?? 0, depth });
    for (const child of node.children ?? []) visit(child, x, y, shape ? depth + 1 : depth);
    for (const edge of node.edges ?? []) {
      const container = (edge as ElkExtendedEdge & { container?: string }).container;
      const [ox, oy] = (container && absolute.get(container)) || [0, 0];
      edges.push({
        id: edge.id,
        sections: (edge.sections ?? []).map((section) =>
          [section.startPoint, ...(section.bendPoints ?? []), section.endPoint].map((p) => ({
            x: round(p.x + ox),
            y: round(p.y + oy),
          })),
        ),
      });
    }
  };
  visit(root, 0, 0, 0);
  return { width: Math.ceil(root.width ?? 0), height: Math.ceil(root.height ?? 0), boxes, edges };
}

function isStep(node: GraphNode): node is StepNode {
  return node.type.startsWith("step_");
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
