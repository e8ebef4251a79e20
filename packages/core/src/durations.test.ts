import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "./durations.ts";
import { WorkflowError } from "./errors.ts";

describe("parseDuration", () => {
  const rows: [string | number, number][] = [
    [0, 0],
    [1500, 1500],
    [0.5, 0.5],
    ["1 second", 1000],
    ["30 seconds", 30_000],
    ["10seconds", 10_000],
    ["2 minutes", 120_000],
    ["1.5 hours", 5_400_000],
    [".5 day", 43_200_000],
    ["1 day", 86_400_000],
    ["2 weeks", 14 * 86_400_000],
    // A month is 30 days and a year 365, whatever the calendar says.
    ["1 month", 30 * 86_400_000],
    ["1 year", 365 * 86_400_000],
    [" 5 minutes ", 300_000],
    ["0 seconds", 0],
  ];
  it.each(rows)("%j → %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    // Parsed texts are remembered; asking again gives the same answer.
    expect(parseDuration(text)).toBe(ms);
  });

  const invalid: unknown[] = [
    "",
    "5",
    "five seconds",
    "5 fortnights",
    "5 Seconds",
    "-1 second",
    "1 second ago",
    "1e3 seconds",
    null,
    undefined,
    {},
    true,
  ];
  it.each(invalid)("%j is rejected naming what it is and what is allowed", (value) => {
    const e = catchError(() => parseDuration(value, "sleep duration"));
    expect(WorkflowError.is(e, "step.invalid_config")).toBe(true);
    expect(e.message).toBe(
      `(step.invalid_config) sleep duration must be a number of milliseconds or "<number> <unit>" with unit second, minute, hour, day, week, month or year; got ${JSON.stringify(value)}`,
    );
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])("the number %d is rejected", (value) => {
    expect(() => parseDuration(value, "timeout")).toThrow(
      `(step.invalid_config) timeout must be a non-negative number of milliseconds, got ${value}`,
    );
  });

  it('says "duration" when not told what', () => {
    expect(() => parseDuration("soon")).toThrow(/^\(step\.invalid_config\) duration must be/);
  });
});

describe("formatDuration", () => {
  const rows: [number, string][] = [
    [0, "0ms"],
    [850, "850ms"],
    [999.6, "1000ms"],
    [1000, "1s"],
    [1500, "1.5s"],
    [1234, "1.23s"],
    [59_999, "60s"],
    [60_000, "1m"],
    [90_000, "1m 30s"],
    [3_600_000, "1h"],
    [3_723_000, "1h 2m"],
    [86_400_000 + 3_600_000 + 60_000, "1d 1h"],
    [365 * 86_400_000, "365d"],
  ];
  it.each(rows)("%d ms → %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}
