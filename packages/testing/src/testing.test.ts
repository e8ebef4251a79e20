import { expect, test } from "vitest";
import { defineTestingCases } from "./testing.cases.ts";

defineTestingCases({
  test: (name, fn) => test(name, fn),
  check: {
    equal: (actual, expected) => expect(actual).toBe(expected),
    deepEqual: (actual, expected) => expect(actual).toEqual(expected),
    async rejects(promise, message) {
      const error = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, `expected a rejection with ${String(message)}`).toBeInstanceOf(Error);
      if (typeof message === "string") expect((error as Error).message).toBe(message);
      else expect((error as Error).message).toMatch(message);
    },
  },
});
