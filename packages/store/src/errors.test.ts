import { describe, expect, it } from "vitest";
import { StoreError } from "./errors.ts";

describe("StoreError", () => {
  it("carries a code, a message and the driver's error as its cause", () => {
    const cause = new Error("connection reset");
    const e = new StoreError("unavailable", "Cannot reach the database: connection reset", { cause });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("StoreError");
    expect(e.code).toBe("unavailable");
    expect(e.message).toBe("Cannot reach the database: connection reset");
    expect(e.cause).toBe(cause);
    expect("cause" in new StoreError("closed", "The Cairn store is closed")).toBe(false);
  });

  it("is tells store errors apart, by code when given", () => {
    const e = new StoreError("conflict", "A row with that key already exists");
    expect(StoreError.is(e)).toBe(true);
    expect(StoreError.is(e, "conflict")).toBe(true);
    expect(StoreError.is(e, "retry")).toBe(false);
    const look = Object.assign(new Error("x"), { code: "conflict" });
    expect(StoreError.is(look)).toBe(false);
    expect(StoreError.is("conflict")).toBe(false);
    expect(StoreError.is(undefined)).toBe(false);
  });

  it("recognises the errors of a store's own subclass", () => {
    class DialectError extends StoreError {
      override name = "DialectError";
    }
    const e = new DialectError("retry", "deadlock");
    expect(StoreError.is(e, "retry")).toBe(true);
    expect(e.name).toBe("DialectError");
  });
});
