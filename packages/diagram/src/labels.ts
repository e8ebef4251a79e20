/** Human-readable labels shared by the Mermaid and SVG renderers. */
import type { GraphNode, StepConfigDescriptor } from "./types.ts";

export interface NodeLabel {
  /** The main line (a step's name, "loop", "if", …). */
  title: string;
  /** A second, smaller line (duration, event type, retry policy), if any. */
  detail?: string;
}

const LOOP_TITLES: Record<string, string> = {
  for: "for loop",
  for_of: "for…of loop",
  for_in: "for…in loop",
  while: "while loop",
  do_while: "do…while loop",
  for_each: "forEach",
  map: "map",
};

const PARALLEL_TITLES: Record<string, string> = {
  all: "Promise.all",
  any: "Promise.any",
  all_settled: "Promise.allSettled",
  race: "Promise.race",
};

/** The label of any node; containers get their header text. */
export function labelOf(node: GraphNode): NodeLabel {
  const folded = node.collapsed ? ` (${node.hidden_steps ?? 0} steps hidden)` : "";
  switch (node.type) {
    case "step_do":
      return { title: node.name, detail: `do · ${configSummary(node.config)}` };
    case "step_sleep":
      return { title: node.name, detail: `sleep · ${node.duration}` };
    case "step_sleep_until":
      return { title: node.name, detail: `sleep until · ${node.timestamp}` };
    case "step_wait_for_event":
      return {
        title: node.name,
        detail: `wait for event · ${node.options ? `${node.options.event_type}, ${node.options.timeout}` : "any"}`,
      };
    case "loop":
      return { title: (LOOP_TITLES[node.loop_kind ?? ""] ?? "loop") + folded };
    case "parallel":
      return { title: (PARALLEL_TITLES[node.kind] ?? "parallel") + folded };
    case "if":
      return { title: `if${folded}` };
    case "switch":
      return { title: `switch (${node.discriminant})${folded}` };
    case "try":
      return { title: `try${folded}` };
    case "block":
      return { title: `block${folded}` };
    case "function_call":
      return { title: `${node.name}()`, detail: node.unresolved ? "call · not in this file" : "call" };
    case "break":
      return { title: node.kind };
  }
}

function configSummary(config: StepConfigDescriptor): string {
  return `retries ${config.retries.limit} · timeout ${config.timeout}`;
}

/** A branch header: the condition, `else` for an if's last branch, `default` for a switch's. */
export function branchTitle(condition: string | null, inSwitch: boolean): string {
  if (condition === null) return inSwitch ? "default" : "else";
  return inSwitch ? `case ${condition}` : condition;
}

/** Shortens text to `max` characters with an ellipsis. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ");
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}
