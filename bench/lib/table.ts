import { type Metric, meets, type Synchronous, type Target, type Unit } from "./metrics.ts";
import type { BenchResult } from "./report.ts";

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function formatValue(value: number, unit: Unit): string {
  if (Number.isNaN(value)) return "n/a";
  switch (unit) {
    case "/s":
      return `${int.format(value)}/s`;
    case "ms":
      return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : int.format(value)} ms`;
    case "s":
      return `${value.toFixed(2)} s`;
    case "B":
      return `${int.format(value)} B`;
    case "MiB":
      return `${value.toFixed(1)} MiB`;
    case "x":
      return `${value.toFixed(2)}×`;
  }
}

function formatTarget(t: Target | undefined, unit: Unit): string {
  if (!t) return "";
  const full = t.value.FULL;
  const normal = t.value.NORMAL;
  const op = t.op === ">=" ? "≥" : "≤";
  if (full !== undefined && full === normal) return `${op} ${formatValue(full, unit)}`;
  const parts: string[] = [];
  if (full !== undefined) parts.push(`FULL ${op} ${formatValue(full, unit)}`);
  if (normal !== undefined) parts.push(`NORMAL ${op} ${formatValue(normal, unit)}`);
  return parts.join(", ");
}

function cell(m: Metric | undefined, mode: Synchronous, raw: number): string {
  if (!m) return "";
  let s = formatValue(m.value, m.unit);
  if (m.throughput && raw > 0) s += ` (${(m.value / raw).toFixed(2)}× raw)`;
  const ok = m.target && meets(m.target, mode, m.value);
  if (ok !== undefined) s += ok ? " ✓" : " ✗";
  return s;
}

/** The results as rows: a header, the raw commit limit, then every figure in the order measured. */
export function tableRows(result: BenchResult): string[][] {
  const modes = result.modes.map((m) => m.synchronous);
  const rows: string[][] = [["figure", ...modes.map((m) => `synchronous=${m}`), "target"]];
  rows.push([
    "raw single-row commits (BEGIN; INSERT; COMMIT): the limit",
    ...result.modes.map((m) => formatValue(m.rawCommitsPerSecond, "/s")),
    "",
  ]);
  const seen = new Map<string, Metric>();
  for (const mode of result.modes)
    for (const s of Object.values(mode.sections))
      for (const m of s.metrics) if (!seen.has(m.key)) seen.set(m.key, m);
  for (const [key, first] of seen) {
    const cells = result.modes.map((mode) => {
      const m = Object.values(mode.sections)
        .flatMap((s) => s.metrics)
        .find((x) => x.key === key);
      return cell(m, mode.synchronous, mode.rawCommitsPerSecond);
    });
    rows.push([first.label, ...cells, formatTarget(first.target, first.unit)]);
  }
  return rows;
}

export function renderText(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...(r[c] ?? "")].length)));
  const line = (r: string[]) =>
    r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join("  ");
  const sep = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join("\n");
}

export function renderMarkdown(rows: string[][]): string {
  const esc = (v: string) => v.replaceAll("|", "\\|");
  const line = (r: string[]) => `| ${r.map(esc).join(" | ")} |`;
  const sep = `| --- | ${rows[0]!
    .slice(1)
    .map(() => "---:")
    .join(" | ")} |`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join("\n");
}
