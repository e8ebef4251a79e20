import { describe, expect, it } from "vitest";
import {
  deserializeError,
  ERROR_CODES,
  isNonRetryable,
  NonRetryableError,
  serializeError,
  WorkflowError,
  WorkflowTimeoutError,
} from "./errors.ts";

describe("WorkflowError", () => {
  it('reads "(<code>) <text>" and keeps both', () => {
    const e = new WorkflowError("instance.cannot_pause", "Instance is complete");
    expect(e.message).toBe("(instance.cannot_pause) Instance is complete");
    expect(e).toMatchObject({
      name: "WorkflowError",
      code: "instance.cannot_pause",
      text: "Instance is complete",
    });
    expect(JSON.parse(JSON.stringify(e))).toEqual({
      name: "WorkflowError",
      code: "instance.cannot_pause",
      message: "(instance.cannot_pause) Instance is complete",
    });
  });
  it('reads "instance.not_found" for a missing instance, as Cloudflare\'s binding throws', () => {
    const e = new WorkflowError("instance.not_found", "Instance not found");
    expect(e.message).toBe("instance.not_found");
    expect(e).toMatchObject({ code: "instance.not_found", text: "Instance not found" });
  });

  it("is recognised, also after crossing a process boundary as plain data", () => {
    const e = new WorkflowError("body", "bad");
    expect(WorkflowError.is(e)).toBe(true);
    expect(WorkflowError.is(e, "body")).toBe(true);
    expect(WorkflowError.is(e, "instance.not_found")).toBe(false);
    const wire = { name: "WorkflowError", code: "body", message: "(body) bad" };
    expect(WorkflowError.is(wire, "body")).toBe(true);
    expect(WorkflowError.is({ name: "Error", code: "body" })).toBe(false);
    expect(WorkflowError.is({ name: "WorkflowError", code: 5 })).toBe(false);
    expect(WorkflowError.is(null)).toBe(false);
    expect(WorkflowError.is("WorkflowError")).toBe(false);
  });

  it("has a closed set of distinct codes", () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    expect(ERROR_CODES).toContain("instance.changed");
  });
});

describe("isNonRetryable: by name, or by a message that starts with it", () => {
  const rows: [unknown, boolean][] = [
    [new NonRetryableError("card declined"), true],
    [new NonRetryableError("card declined", "CardDeclined"), false],
    [Object.assign(new Error("x"), { name: "NonRetryableError" }), true],
    [new Error("NonRetryableError: flattened by RPC"), true],
    [new Error("a NonRetryableError inside"), false],
    [new Error("boom"), false],
    [{ name: "NonRetryableError" }, true],
    ["NonRetryableError", false],
    [null, false],
  ];
  it.each(rows)("%s → %s", (error, expected) => {
    expect(isNonRetryable(error)).toBe(expected);
  });
});

describe("stored errors", () => {
  const rows: [unknown, { name: string; message: string }][] = [
    [new Error("boom"), { name: "Error", message: "boom" }],
    [new TypeError("bad type"), { name: "TypeError", message: "bad type" }],
    [new NonRetryableError("stop"), { name: "NonRetryableError", message: "stop" }],
    [new WorkflowTimeoutError("slow"), { name: "WorkflowTimeoutError", message: "slow" }],
    [
      { name: "Custom", message: "plain object" },
      { name: "Custom", message: "plain object" },
    ],
    [{ message: "no name" }, { name: "Error", message: "no name" }],
    ["a string", { name: "Error", message: "a string" }],
    [42, { name: "Error", message: "42" }],
    [undefined, { name: "Error", message: "undefined" }],
  ];
  it.each(rows)("%s is stored as { name, message }", (thrown, stored) => {
    expect(serializeError(thrown)).toEqual(stored);
  });

  it("come back with their name and message; Cairn's own classes keep their class", () => {
    const plain = deserializeError({ name: "TypeError", message: "bad type" });
    expect(plain).toBeInstanceOf(Error);
    expect([plain.name, plain.message]).toEqual(["TypeError", "bad type"]);
    const stop = deserializeError({ name: "NonRetryableError", message: "stop" });
    expect(stop).toBeInstanceOf(NonRetryableError);
    expect(isNonRetryable(stop)).toBe(true);
    const slow = deserializeError({ name: "WorkflowTimeoutError", message: "slow" });
    expect(slow).toBeInstanceOf(WorkflowTimeoutError);
    expect(slow.name).toBe("WorkflowTimeoutError");
  });
});
