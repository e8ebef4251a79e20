/**
 * A live instance on top of a diagram: which of an instance's steps a step node stands for, and
 * what state to colour it with. Steps are matched by their identity `(kind, name, count)` (see
 * `@cairn/core`'s step-key module): a node matches steps of its kind whose name equals its name (or
 * fits its `${…}` pattern); a node inside a loop or helper matches every count of its name, any
 * other node the count it runs as (its `ordinal`). Pure and browser-safe.
 */
import type { BoxStep } from "./layout.ts";
import type { StepKind } from "./types.ts";

/** What one step of an instance is doing. */
export type StepRunState = "running" | "retrying" | "waiting" | "succeeded" | "failed";

/** A node's state: a step's, or `pending` (not reached yet) / `skipped` (not reached, instance over). */
export type NodeState = StepRunState | "pending" | "skipped";

/** One step of an instance, as far as the overlay needs it. */
export interface StepRun {
  kind: StepKind;
  name: string;
  count: number;
  state: StepRunState;
  /** Attempts made so far (`step.do`); 0 for sleeps and waits. */
  attempts: number;
}

/** A node's overlay: its state, the runs it stands for, and the attempts of the latest run. */
export interface NodeOverlay {
  state: NodeState;
  runs: StepRun[];
  attempts: number;
}

/** Whether the step `run` is one of the node `step`'s. */
export function matchesStep(step: BoxStep, run: Pick<StepRun, "kind" | "name" | "count">): boolean {
  if (step.kind !== run.kind) return false;
  if (step.dynamic ? !namePattern(step.name).test(run.name) : step.name !== run.name) return false;
  return step.repeated || step.ordinal === run.count || step.ordinal === 0;
}

const patterns = new Map<string, RegExp>();

/** A name with `${…}` placeholders as a regular expression (a placeholder matches any text). */
export function namePattern(name: string): RegExp {
  let re = patterns.get(name);
  if (re) return re;
  let source = "";
  let i = 0;
  while (i < name.length) {
    const open = name.indexOf("${", i);
    if (open < 0) {
      source += escapeRegExp(name.slice(i));
      break;
    }
    source += escapeRegExp(name.slice(i, open));
    let depth = 0;
    let j = open + 1;
    for (; j < name.length; j++) {
      if (name[j] === "{") depth++;
      else if (name[j] === "}" && --depth === 0) break;
    }
    source += "[\\s\\S]*";
    i = j + 1;
  }
  re = new RegExp(`^${source}$`);
  patterns.set(name, re);
  return re;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const PRIORITY: StepRunState[] = ["retrying", "running", "waiting", "failed", "succeeded"];

/**
 * The overlay of a node standing for `steps` (one for a plain step; several for a collapsed
 * container) given all of an instance's steps. `finished`: the instance is over, so a node no step
 * reached is `skipped` rather than `pending`. Several runs show the most telling state: a running
 * or retrying one first, then a wait, then a failure, then success.
 */
export function overlayOf(
  steps: readonly BoxStep[],
  runs: readonly StepRun[],
  finished: boolean,
): NodeOverlay {
  const matched = runs.filter((run) => steps.some((step) => matchesStep(step, run)));
  if (matched.length === 0) return { state: finished ? "skipped" : "pending", runs: [], attempts: 0 };
  const state = PRIORITY.find((s) => matched.some((r) => r.state === s)) ?? "succeeded";
  const current = [...matched].reverse().find((r) => r.state === state) ?? matched[matched.length - 1]!;
  return { state, runs: matched, attempts: current.attempts };
}
