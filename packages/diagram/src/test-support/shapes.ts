/** Test helpers: read fixtures, and compare graphs structurally without ids or default fields. */
import { readFileSync } from "node:fs";
import { analyzeWorkflows } from "../analyzer/index.ts";
import { DEFAULT_STEP_CONFIG } from "../analyzer/steps.ts";
import type { WorkflowGraph } from "../types.ts";

export function fixture(name: string): string {
  return readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");
}

export function analyzeFixture(name: string): WorkflowGraph[] {
  return analyzeWorkflows(fixture(name), { filename: name });
}

const DEFAULT_CONFIG = JSON.stringify(DEFAULT_STEP_CONFIG);

/**
 * A graph reduced to what the structural tests assert: no ids, no `kind`/`dynamic_name` on steps,
 * no default step configs, no empty step `nodes`, no null try blocks.
 */
export function shape(value: unknown): any {
  if (Array.isArray(value)) return value.map(shape);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  const isStep = String((value as { type?: string }).type).startsWith("step_");
  for (const [key, field] of Object.entries(value)) {
    if (key === "id") continue;
    if (isStep && (key === "kind" || key === "dynamic_name")) continue;
    if (key === "config" && JSON.stringify(field) === DEFAULT_CONFIG) continue;
    if (isStep && key === "nodes" && Array.isArray(field) && field.length === 0) continue;
    if (field === null && key.endsWith("_block")) continue;
    out[key] = shape(field);
  }
  return out;
}

/** The shaped `run` nodes and helper definitions of every workflow in a fixture. */
export function shapesOf(
  name: string,
): { class_name: string; nodes: any[]; functions: Record<string, any[]> }[] {
  return analyzeFixture(name).map((graph) => ({
    class_name: graph.workflow.class_name,
    nodes: shape(graph.workflow.nodes),
    functions: Object.fromEntries(
      Object.entries(graph.workflow.functions).map(([k, def]) => [k, shape(def.nodes)]),
    ),
  }));
}

// Builders for expected nodes (shaped form).
export const step = (name: string, extra: object = {}) => ({ type: "step_do", name, ...extra });
export const sleep = (name: string, duration: string | number, extra: object = {}) => ({
  type: "step_sleep",
  name,
  duration,
  ...extra,
});
export const sleepUntil = (name: string, timestamp: string | number) => ({
  type: "step_sleep_until",
  name,
  timestamp,
});
export const waitFor = (name: string, event_type: string, timeout = "24 hours") => ({
  type: "step_wait_for_event",
  name,
  options: { event_type, timeout },
});
export const loop = (loop_kind: string, ...nodes: object[]) => ({ type: "loop", loop_kind, nodes });
export const parallel = (kind: string, ...nodes: object[]) => ({ type: "parallel", kind, nodes });
export const block = (...nodes: object[]) => ({ type: "block", nodes });
export const branch = (condition: string | null, ...nodes: object[]) => ({ condition, nodes });
export const ifNode = (...branches: object[]) => ({ type: "if", branches });
export const call = (name: string, extra: object = {}) => ({ type: "function_call", name, ...extra });
export const exit = (kind: "break" | "return") => ({ type: "break", kind });
export const config = (limit: unknown, delay: unknown, backoff: unknown, timeout: unknown) => ({
  config: { retries: { limit, delay, backoff }, timeout },
});
