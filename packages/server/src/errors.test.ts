import { ERROR_STATUS } from "@cairn/api";
import { ERROR_CODES, WorkflowError } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { describeError, HttpError } from "./errors.ts";

describe("error statuses", () => {
  it("every engine code and every HTTP code has a status, and nothing else does", () => {
    expect(Object.keys(ERROR_STATUS).sort()).toEqual(
      [...ERROR_CODES, "unauthorized", "not_found", "internal"].sort(),
    );
    for (const status of Object.values(ERROR_STATUS))
      expect([400, 401, 404, 409, 413, 429, 500]).toContain(status);
  });

  it("a command that lost a race answers 409 instance.changed", () => {
    const e = new WorkflowError("instance.changed", 'Instance "a" changed while the command ran; try again');
    expect(describeError(e)).toEqual({
      status: 409,
      error: {
        code: "instance.changed",
        message: '(instance.changed) Instance "a" changed while the command ran; try again',
      },
      unexpected: false,
    });
  });

  it("a WorkflowError that crossed a process boundary keeps its code and status", () => {
    const e = { name: "WorkflowError", code: "instance.not_found", message: "(instance.not_found) x" };
    expect(describeError(e)).toMatchObject({ status: 404, error: { code: "instance.not_found" } });
  });

  it("HttpError takes its status from the table unless told", () => {
    expect(new HttpError("unauthorized", "Missing bearer token").status).toBe(401);
    expect(new HttpError("payload.too_large", "too big").status).toBe(413);
    expect(new HttpError("not_found", "No graph", 404).message).toBe("(not_found) No graph");
  });

  it("anything else is a 500 internal without details", () => {
    expect(describeError(new Error("secret stack"))).toEqual({
      status: 500,
      error: { code: "internal", message: "(internal) The server failed to handle the request" },
      unexpected: true,
    });
  });
});
