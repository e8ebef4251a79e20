/**
 * The testing helpers' cases under `node:test`, against the built packages (`npm run build` first):
 * `npm run test:node`. The process must exit by itself, which shows nothing is left open.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { defineTestingCases } from "../../packages/testing/src/testing.cases.ts";

defineTestingCases({
  test: (name, fn) => {
    test(name, fn);
  },
  check: {
    equal: (actual, expected) => assert.equal(actual, expected),
    deepEqual: (actual, expected) => assert.deepEqual(actual, expected),
    async rejects(promise, message) {
      await assert.rejects(promise, (e: unknown) => {
        assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
        if (typeof message === "string") assert.equal(e.message, message);
        else assert.match(e.message, message);
        return true;
      });
    },
  },
});
