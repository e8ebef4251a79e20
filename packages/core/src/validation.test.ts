import { describe, expect, it } from "vitest";
import {
  checkPayloadSize,
  validateEventType,
  validateInstanceId,
  validateStepName,
  validateWorkflowName,
} from "./validation.ts";

describe("names and ids", () => {
  const validators = [
    ["workflow name", validateWorkflowName, 64, "workflow.invalid_name", "Workflow name"],
    ["instance id", validateInstanceId, 100, "instance.invalid_id", "Instance ID"],
    ["event type", validateEventType, 100, "workflow.invalid_event_type", "Event type"],
  ] as const;

  describe.each(validators)("%s", (_what, validate, max, code, label) => {
    it.each(["a", "A-1", "_x", "order_42", "9", "x".repeat(max)])("accepts %j", (value) => {
      expect(validate(value)).toBe(value);
    });

    it.each(["", "-a", "a b", "a.b", "a/b", "é", "x".repeat(max + 1), 5, null, undefined])(
      "rejects %j",
      (value) => {
        expect(() => validate(value)).toThrow(
          new RegExp(`^\\(${code.replace(".", "\\.")}\\) ${label} .* is invalid: use at most ${max} letters`),
        );
      },
    );

    it("shows a string as JSON and anything else by its type", () => {
      expect(() => validate("a b")).toThrow(`${label} "a b" is invalid`);
      expect(() => validate(5)).toThrow(`${label} a number is invalid`);
    });
  });
});

describe("validateStepName", () => {
  it.each(["load order", "a", "ünïcödé ✓", "with: colons-1", "x".repeat(256)])("accepts %j", (name) => {
    expect(validateStepName(name)).toBe(name);
  });

  const rejections: [unknown, string][] = [
    ["", '(step.invalid_name) Step name must be a non-empty string, got ""'],
    [7, "(step.invalid_name) Step name must be a non-empty string, got a number"],
    [
      "x".repeat(257),
      `(step.invalid_name) Step name "${"x".repeat(40)}…" is 257 characters long; the limit is 256`,
    ],
    ["tab\there", '(step.invalid_name) Step name "tab\\there" contains control characters'],
    ["nul\u0000", '(step.invalid_name) Step name "nul\\u0000" contains control characters'],
    ["del\u007f", '(step.invalid_name) Step name "del\u007f" contains control characters'],
  ];
  it.each(rejections)("rejects %j", (name, message) => {
    expect(() => validateStepName(name)).toThrow(message);
  });
});

describe("checkPayloadSize", () => {
  it("allows exactly the limit and refuses one byte more, naming what", () => {
    expect(checkPayloadSize(1024 * 1024, "Params")).toBeUndefined();
    expect(() => checkPayloadSize(1024 * 1024 + 1, "Params")).toThrow(
      "(payload.too_large) Params is 1048577 bytes encoded; the limit is 1048576 bytes (1 MiB)",
    );
  });

  it("takes a configured limit", () => {
    expect(() => checkPayloadSize(11, "Event payload", 10)).toThrow(
      /^\(payload\.too_large\) Event payload is 11 bytes/,
    );
  });
});
