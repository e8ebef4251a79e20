/**
 * A step is identified by `(kind, name, count)`: `count` is the 1-based occurrence of `name` among
 * steps of that kind in one run of `run()`. This module is the single place that computes and
 * formats step identity; the engine, HTTP API, dashboard, diagrams and testing helpers all use it.
 */
/** `rollback`: the compensation of the `do` step of the same name and count (SPEC §9.1). */
export type StepKind = "do" | "sleep" | "waitForEvent" | "rollback";

/** The kinds a workflow calls (and `restart({ from })` names); `rollback` steps are the engine's. */
export const STEP_KINDS: readonly StepKind[] = ["do", "sleep", "waitForEvent"];

export interface StepKey {
  kind: StepKind;
  name: string;
  count: number;
}

/** A compact string form, unique per instance: `"do:1:load order"`. */
export function stepKeyString(key: StepKey): string {
  return `${key.kind}:${key.count}:${key.name}`;
}

export function parseStepKeyString(s: string): StepKey {
  const a = s.indexOf(":");
  const b = s.indexOf(":", a + 1);
  return { kind: s.slice(0, a) as StepKind, count: Number(s.slice(a + 1, b)), name: s.slice(b + 1) };
}

/** How people see a step: `"<name>-<count>"`, as Cloudflare's REST API and wrangler show it. */
export function stepLabel(key: { name: string; count: number }): string {
  return `${key.name}-${key.count}`;
}

/** Reads `"<name>-<count>"` back; a label without a numeric suffix means count 1. */
export function parseStepLabel(label: string): { name: string; count: number } {
  const m = /^(.*)-([1-9]\d*)$/s.exec(label);
  if (m) return { name: m[1]!, count: Number(m[2]) };
  return { name: label, count: 1 };
}

/** Counts occurrences of names per kind during one run: the source of every step's `count`. */
export class StepCounter {
  #counts = new Map<string, number>();

  next(kind: StepKind, name: string): StepKey {
    const k = `${kind}:${name}`;
    const count = (this.#counts.get(k) ?? 0) + 1;
    this.#counts.set(k, count);
    return { kind, name, count };
  }
}
