export type Synchronous = "FULL" | "NORMAL";
export const MODES: readonly Synchronous[] = ["FULL", "NORMAL"];

export type Unit = "/s" | "ms" | "B" | "MiB" | "s" | "x";

/** A target a figure is reported against, per synchronous mode. */
export interface Target {
  op: ">=" | "<=";
  value: Partial<Record<Synchronous, number>>;
}

/** One figure of the table. `throughput` figures are also shown as a ratio of the raw commit rate. */
export interface Metric {
  key: string;
  label: string;
  value: number;
  unit: Unit;
  throughput?: boolean;
  target?: Target;
}

/** What a workload returns: its figures for the table, and whatever else is worth keeping in JSON. */
export interface SectionResult {
  metrics: Metric[];
  detail: Record<string, unknown>;
}

/** What every workload receives. */
export interface SectionContext {
  /** A fresh directory for this mode; workloads create their own database files in it. */
  dir: string;
  synchronous: Synchronous;
  quick: boolean;
  /** Prints progress on stderr. */
  log(message: string): void;
}

export type Section = (ctx: SectionContext) => Promise<SectionResult>;

export function meets(target: Target, mode: Synchronous, value: number): boolean | undefined {
  const t = target.value[mode];
  if (t === undefined || Number.isNaN(value)) return undefined;
  return target.op === ">=" ? value >= t : value <= t;
}
