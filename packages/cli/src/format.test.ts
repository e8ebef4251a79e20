import { describe, expect, it } from "vitest";
import {
  displayWidth,
  formatDate,
  formatDuration,
  statusLabel,
  table,
  truncateJson,
  wrap,
} from "./format.ts";

describe("format", () => {
  it("formats durations like people say them", () => {
    expect([0, 850, 1250, 59_999, 65_000, 3_600_000 + 120_000, 90_061_000].map(formatDuration)).toEqual([
      "0ms",
      "850ms",
      "1.25s",
      "60s",
      "1m 5s",
      "1h 2m",
      "1d 1h",
    ]);
  });

  it("formats dates and leaves missing ones as -", () => {
    expect(formatDate("2026-03-01T10:00:05.123Z", { utc: true })).toBe("2026-03-01 10:00:05");
    expect(formatDate(null)).toBe("-");
    expect(formatDate("garbage")).toBe("-");
  });

  it("counts emoji as two columns", () => {
    expect(displayWidth("✅ Completed")).toBe(12);
    expect(displayWidth("⏸️ Paused")).toBe(9);
    expect(displayWidth("▶ Running")).toBe(9);
    expect(displayWidth("🚫 Terminated")).toBe(13);
    expect(statusLabel("waitingForPause")).toBe("⏱️ Waiting for Pause");
    expect(statusLabel("weird")).toBe("❓ weird");
  });

  it("wraps at spaces, or hard when a word is too long", () => {
    expect(wrap("the quick brown fox jumps", 10)).toEqual(["the quick", "brown fox", "jumps"]);
    expect(wrap("abcdefghijkl", 5)).toEqual(["abcde", "fghij", "kl"]);
  });

  it("aligns tables by display width and wraps the last column", () => {
    expect(
      table(
        ["A", "Status"],
        [
          ["x", "✅ Completed"],
          ["long id", "⏸️ Paused"],
        ],
      ),
    ).toBe(
      ["A        Status", "-------  ------------", "x        ✅ Completed", "long id  ⏸️ Paused"].join("\n"),
    );
    expect(table(["#", "Error"], [["1", "one two three four"]], { width: 14 })).toBe(
      ["#  Error", "-  -----------", "1  one two", "   three four"].join("\n"),
    );
  });

  it("truncates JSON with wrangler's marker", () => {
    expect(truncateJson({ a: "xxxxxxxx" }, 5)).toBe('{"a":[...output truncated]');
    expect(truncateJson({ a: 1 }, 0)).toBe('{"a":1}');
    expect(truncateJson(undefined, 10)).toBe("undefined");
  });
});
