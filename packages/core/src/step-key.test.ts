import { describe, expect, it } from "vitest";
import {
  parseStepKeyString,
  parseStepLabel,
  StepCounter,
  type StepKey,
  stepKeyString,
  stepLabel,
} from "./step-key.ts";

describe("step key strings", () => {
  const rows: [StepKey, string][] = [
    [{ kind: "do", name: "load order", count: 1 }, "do:1:load order"],
    [{ kind: "sleep", name: "cool off", count: 12 }, "sleep:12:cool off"],
    [{ kind: "waitForEvent", name: "approval", count: 2 }, "waitForEvent:2:approval"],
    // Names may hold the separator: only the first two colons split.
    [{ kind: "do", name: "a:b:c", count: 3 }, "do:3:a:b:c"],
    [{ kind: "do", name: "", count: 1 }, "do:1:"],
  ];
  it.each(rows)("%j ⇄ %s", (key, text) => {
    expect(stepKeyString(key)).toBe(text);
    expect(parseStepKeyString(text)).toEqual(key);
  });
});

describe("step labels", () => {
  it.each([
    [{ name: "load order", count: 1 }, "load order-1"],
    [{ name: "retry-me", count: 10 }, "retry-me-10"],
  ])("%j → %s", (key, label) => {
    expect(stepLabel(key)).toBe(label);
    expect(parseStepLabel(label)).toEqual(key);
  });

  const reads: [string, { name: string; count: number }][] = [
    ["charge-2", { name: "charge", count: 2 }],
    ["a-b-3", { name: "a-b", count: 3 }],
    ["charge", { name: "charge", count: 1 }],
    // Not a count: zero, leading zeros, a trailing dash, no name.
    ["charge-0", { name: "charge-0", count: 1 }],
    ["charge-01", { name: "charge-01", count: 1 }],
    ["charge-", { name: "charge-", count: 1 }],
    ["-4", { name: "", count: 4 }],
    ["line\nbreak-5", { name: "line\nbreak", count: 5 }],
  ];
  it.each(reads)("reads %j", (label, key) => {
    expect(parseStepLabel(label)).toEqual(key);
  });
});

describe("StepCounter", () => {
  it("counts each name per kind, from 1, in call order", () => {
    const counter = new StepCounter();
    const calls: [StepKey["kind"], string][] = [
      ["do", "fetch"],
      ["do", "fetch"],
      ["sleep", "fetch"],
      ["do", "save"],
      ["waitForEvent", "fetch"],
      ["do", "fetch"],
      ["sleep", "fetch"],
    ];
    expect(calls.map(([kind, name]) => stepKeyString(counter.next(kind, name)))).toEqual([
      "do:1:fetch",
      "do:2:fetch",
      "sleep:1:fetch",
      "do:1:save",
      "waitForEvent:1:fetch",
      "do:3:fetch",
      "sleep:2:fetch",
    ]);
  });

  it("a new counter (a replay of run()) starts again at 1", () => {
    const first = new StepCounter();
    first.next("do", "a");
    first.next("do", "a");
    expect(new StepCounter().next("do", "a")).toEqual({ kind: "do", name: "a", count: 1 });
  });
});
