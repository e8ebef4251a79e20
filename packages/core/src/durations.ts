import { WorkflowError } from "./errors.ts";

/** `"<number> <unit>[s]"`, or a number of milliseconds (SPEC §1). */
export type DurationUnit = "second" | "minute" | "hour" | "day" | "week" | "month" | "year";
export type Duration = `${number} ${DurationUnit}${"s" | ""}` | number;

const UNIT_MS: Record<DurationUnit, number> = {
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 7 * 86_400_000,
  month: 30 * 86_400_000,
  year: 365 * 86_400_000,
};

/** Durations repeat (every step has a timeout): remember what each text meant. */
const parsed = new Map<string, number>();

const DURATION = /^(\d+(?:\.\d+)?|\.\d+) ?(second|minute|hour|day|week|month|year)s?$/;

/**
 * Parses a duration into milliseconds. A month is 30 days and a year 365 days, so `"1 year"` is the
 * longest sleep. Throws `step.invalid_config` naming `what` for anything else.
 */
export function parseDuration(value: unknown, what = "duration"): number {
  if (typeof value === "number") {
    if (Number.isFinite(value) && value >= 0) return value;
    throw new WorkflowError(
      "step.invalid_config",
      `${what} must be a non-negative number of milliseconds, got ${value}`,
    );
  }
  if (typeof value === "string") {
    const known = parsed.get(value);
    if (known !== undefined) return known;
    const m = DURATION.exec(value.trim());
    if (m) {
      const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] as DurationUnit]);
      if (parsed.size < 1000) parsed.set(value, ms);
      return ms;
    }
  }
  throw new WorkflowError(
    "step.invalid_config",
    `${what} must be a number of milliseconds or "<number> <unit>" with unit second, minute, hour, day, week, month or year; got ${JSON.stringify(value)}`,
  );
}

/** Shows milliseconds the way people write them: 1500 → "1.5s", 90000 → "1m 30s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(2)}s`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.slice(0, 2).join(" ");
}
