/**
 * Text formatting for people: status emoji, dates, durations, display widths, wrapped fields and
 * aligned tables. Everything here is pure; times are rendered in local time unless `utc` is set.
 */
import type { ApiInstanceStatus } from "@cairn/core";

/** The status table of `wrangler workflows instances list`. */
export const STATUS_LABELS: Record<ApiInstanceStatus, string> = {
  complete: "✅ Completed",
  errored: "❌ Errored",
  paused: "⏸️ Paused",
  queued: "⌛ Queued",
  running: "▶ Running",
  terminated: "🚫 Terminated",
  waiting: "⏰ Waiting",
  waitingForPause: "⏱️ Waiting for Pause",
  rollingBack: "↩️ Rolling Back",
  unknown: "❓ Unknown",
};

export function statusLabel(status: string): string {
  return STATUS_LABELS[status as ApiInstanceStatus] ?? `❓ ${status}`;
}

export interface TimeOptions {
  /** Render in UTC instead of the local time zone (tests, logs). */
  utc?: boolean;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** `2026-01-01 10:00:00` (local time), or `-` for null. */
export function formatDate(value: string | number | null | undefined, options: TimeOptions = {}): string {
  const d = toDate(value);
  if (!d) return "-";
  const [y, mo, day, h, mi, s] = options.utc
    ? [
        d.getUTCFullYear(),
        d.getUTCMonth(),
        d.getUTCDate(),
        d.getUTCHours(),
        d.getUTCMinutes(),
        d.getUTCSeconds(),
      ]
    : [d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  return `${y}-${pad(mo + 1)}-${pad(day)} ${pad(h)}:${pad(mi)}:${pad(s)}`;
}

/** `10:00:00.250` (local time), or `-` for null: for tables whose date is shown nearby. */
export function formatTime(value: string | number | null | undefined, options: TimeOptions = {}): string {
  const d = toDate(value);
  if (!d) return "-";
  const [h, mi, s, ms] = options.utc
    ? [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  return `${pad(h)}:${pad(mi)}:${pad(s)}.${pad(ms, 3)}`;
}

function toDate(value: string | number | null | undefined): Date | undefined {
  if (value === null || value === undefined || value === "") return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** `850ms`, `1.25s`, `2m 5s`, `1h 2m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  const sign = ms < 0 ? "-" : "";
  ms = Math.abs(Math.round(ms));
  if (ms < 1000) return `${sign}${ms}ms`;
  if (ms < 60_000) return `${sign}${Number((ms / 1000).toFixed(2))}s`;
  const s = Math.floor(ms / 1000);
  const parts: [number, string][] = [
    [Math.floor(s / 86_400), "d"],
    [Math.floor((s % 86_400) / 3600), "h"],
    [Math.floor((s % 3600) / 60), "m"],
    [s % 60, "s"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  return (
    sign +
    parts
      .slice(first, first + 2)
      .filter(([n]) => n > 0)
      .map(([n, u]) => `${n}${u}`)
      .join(" ")
  );
}

/** The time between two instants; to `now` when `end` is null. `-` without a start. */
export function durationBetween(
  start: string | null | undefined,
  end: string | null | undefined,
  now: number,
): string {
  const a = toDate(start);
  if (!a) return "-";
  const b = toDate(end)?.getTime() ?? now;
  return formatDuration(b - a.getTime());
}

// ---- display width -------------------------------------------------------------------------

/** Emoji below U+1F000 that terminals draw two columns wide without a variation selector. */
const WIDE_BMP = new Set([
  0x231a, 0x231b, 0x23e9, 0x23ea, 0x23eb, 0x23ec, 0x23f0, 0x23f3, 0x2705, 0x2728, 0x274c, 0x274e,
]);
for (const c of [
  0x2753, 0x2754, 0x2755, 0x2757, 0x2795, 0x2796, 0x2797, 0x27b0, 0x27bf, 0x2b1b, 0x2b1c, 0x2b50, 0x2b55,
])
  WIDE_BMP.add(c);

/** How many terminal columns `text` takes (emoji count two; variation selectors and ZWJ none). */
export function displayWidth(text: string): number {
  let width = 0;
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!.codePointAt(0)!;
    if (c === 0xfe0f || c === 0x200d || (c >= 0x300 && c <= 0x36f) || c === 0xfe0e) continue;
    const next = chars[i + 1]?.codePointAt(0);
    if (c >= 0x1f000 || WIDE_BMP.has(c) || next === 0xfe0f || isEastAsianWide(c)) width += 2;
    else width += 1;
  }
  return width;
}

function isEastAsianWide(c: number): boolean {
  return (
    (c >= 0x1100 && c <= 0x115f) ||
    (c >= 0x2e80 && c <= 0xa4cf) ||
    (c >= 0xac00 && c <= 0xd7a3) ||
    (c >= 0xf900 && c <= 0xfaff) ||
    (c >= 0xff00 && c <= 0xff60) ||
    (c >= 0xffe0 && c <= 0xffe6)
  );
}

export function padEnd(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - displayWidth(text)));
}

/** Splits `text` into lines of at most `width` columns, breaking at spaces when it can. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const paragraph of text.split("\n")) {
    let rest = paragraph;
    while (displayWidth(rest) > width) {
      const chars = [...rest];
      let cut = 0;
      let w = 0;
      while (cut < chars.length && w + displayWidth(chars[cut]!) <= width) w += displayWidth(chars[cut++]!);
      // do not split an emoji from its variation selector
      while (cut < chars.length && (chars[cut] === "\uFE0F" || chars[cut] === "\u200D")) cut++;
      const head = chars.slice(0, cut).join("");
      const space = head.lastIndexOf(" ");
      const at = space > width / 3 ? space : head.length;
      out.push(rest.slice(0, at).trimEnd());
      rest = rest.slice(at).replace(/^ /, "");
      if (cut === 0) break; // a single character wider than the column
    }
    out.push(rest);
  }
  return out;
}

/** `Label:   value`, the value wrapped to `width` and continued under itself. */
export function field(
  label: string,
  value: string,
  options: { labelWidth: number; width: number; indent?: string },
): string {
  const indent = options.indent ?? "";
  const head = padEnd(`${label}:`, options.labelWidth - 1) + " ";
  const room = Math.max(10, options.width - displayWidth(indent) - options.labelWidth);
  const lines = wrap(value, room);
  const cont = indent + " ".repeat(options.labelWidth);
  return lines.map((line, i) => (i === 0 ? indent + head + line : cont + line)).join("\n");
}

// ---- tables --------------------------------------------------------------------------------

export interface TableOptions {
  /** Prefix of every line. */
  indent?: string;
  /** Total width; the last column wraps to fit. Default: unlimited. */
  width?: number;
  /** Spaces between columns (default 2). */
  gap?: number;
}

/**
 * An aligned table with a header and a rule under it:
 *
 * ```
 * Instance ID  Created              Status
 * -----------  -------------------  ------------
 * order-42     2026-01-01 10:00:00  ✅ Completed
 * ```
 */
export function table(headers: string[], rows: string[][], options: TableOptions = {}): string {
  const indent = options.indent ?? "";
  const gap = " ".repeat(options.gap ?? 2);
  const widths = headers.map((h, i) =>
    Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ""))),
  );
  const last = headers.length - 1;
  if (options.width !== undefined) {
    const fixed = widths.slice(0, last).reduce((a, b) => a + b + gap.length, displayWidth(indent));
    widths[last] = Math.max(
      Math.min(widths[last]!, options.width - fixed),
      Math.max(8, displayWidth(headers[last]!)),
    );
  }
  const line = (cells: string[]) => {
    const wrapped = cells.map((c, i) => (i === last ? wrap(c, widths[i]!) : [c]));
    const height = Math.max(...wrapped.map((w) => w.length));
    const out: string[] = [];
    for (let row = 0; row < height; row++) {
      const parts = wrapped.map((w, i) => (i === last ? (w[row] ?? "") : padEnd(w[row] ?? "", widths[i]!)));
      out.push((indent + parts.join(gap)).trimEnd());
    }
    return out.join("\n");
  };
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** JSON on one line, cut to `limit` characters (0: no limit) and followed by wrangler's marker. */
export function truncateJson(value: unknown, limit: number, separator = ""): string {
  const text = value === undefined ? "undefined" : (JSON.stringify(value) ?? String(value));
  if (limit > 0 && text.length > limit) return `${text.slice(0, limit)}${separator}[...output truncated]`;
  return text;
}
