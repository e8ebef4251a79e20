import { describe, expect, it } from "vitest";
import {
  type Backoff,
  canRetry,
  DEFAULT_RETRY_DELAY,
  DYNAMIC_DELAY,
  defaultStepConfig,
  dynamicDelayMs,
  nonRetryableDelayError,
  type ResolvedStepConfig,
  resolveStepConfig,
  retryDelayMs,
} from "./config.ts";
import { WorkflowError } from "./errors.ts";
import { MAX_RETRY_LIMIT } from "./limits.ts";

describe("defaultStepConfig", () => {
  it("is Cloudflare's default: 5 retries, 10 seconds exponential, 10 minute timeout", () => {
    expect(DEFAULT_RETRY_DELAY).toBe("10 seconds");
    expect(defaultStepConfig()).toEqual({
      retries: { limit: 5, delay: "10 seconds", backoff: "exponential" },
      timeout: "10 minutes",
    });
  });

  it("takes the runtime's retry delay", () => {
    expect(defaultStepConfig(50).retries).toEqual({ limit: 5, delay: 50, backoff: "exponential" });
  });
});

describe("resolveStepConfig", () => {
  const defaults = defaultStepConfig();

  it("without a config is the defaults themselves", () => {
    expect(resolveStepConfig("s", undefined, defaults)).toBe(defaults);
  });

  const merges: [unknown, ResolvedStepConfig][] = [
    [{}, defaults],
    [
      { retries: { limit: 0 } },
      { retries: { limit: 0, delay: "10 seconds", backoff: "exponential" }, timeout: "10 minutes" },
    ],
    [
      { retries: { limit: 3, delay: "1 second", backoff: "linear" } },
      { retries: { limit: 3, delay: "1 second", backoff: "linear" }, timeout: "10 minutes" },
    ],
    [
      { retries: { delay: 250 } },
      { retries: { limit: 5, delay: 250, backoff: "exponential" }, timeout: "10 minutes" },
    ],
    [
      { retries: { backoff: "constant" }, timeout: 5000 },
      { retries: { limit: 5, delay: "10 seconds", backoff: "constant" }, timeout: 5000 },
    ],
    [
      { timeout: "30 seconds", sensitive: "output" },
      {
        retries: { limit: 5, delay: "10 seconds", backoff: "exponential" },
        timeout: "30 seconds",
        sensitive: "output",
      },
    ],
    [
      { retries: { limit: MAX_RETRY_LIMIT } },
      {
        retries: { limit: MAX_RETRY_LIMIT, delay: "10 seconds", backoff: "exponential" },
        timeout: "10 minutes",
      },
    ],
  ];
  it.each(merges)("%j merges over the defaults key by key", (config, expected) => {
    expect(resolveStepConfig("s", config, defaults)).toEqual(expected);
  });

  it("never changes the defaults it merges over", () => {
    const before = structuredClone(defaults);
    resolveStepConfig("s", { retries: { limit: 1, delay: 1, backoff: "constant" }, timeout: 1 }, defaults);
    expect(defaults).toEqual(before);
  });

  const rejections: [unknown, string][] = [
    [null, "config must be an object"],
    [[], "config must be an object"],
    ["5 seconds", "config must be an object"],
    [{ retry: {} }, 'unknown key "retry"'],
    [{ retries: 3 }, "retries must be an object"],
    [{ retries: { limit: 1, delays: 5 } }, 'unknown key "retries.delays"'],
    [{ retries: { limit: -1 } }, "retries.limit must be a whole number ≥ 0, got -1"],
    [{ retries: { limit: 1.5 } }, "retries.limit must be a whole number ≥ 0, got 1.5"],
    [{ retries: { limit: "3" } }, 'retries.limit must be a whole number ≥ 0, got "3"'],
    [{ retries: { limit: MAX_RETRY_LIMIT + 1 } }, `retries.limit must be at most ${MAX_RETRY_LIMIT}`],
    [{ retries: { delay: true } }, "retries.delay must be a duration or a function"],
    [
      { retries: { backoff: "quadratic" } },
      'retries.backoff must be constant, linear or exponential, got "quadratic"',
    ],
    [{ timeout: {} }, "timeout must be a duration"],
    [{ timeout: 0 }, "timeout must be greater than zero"],
    [{ timeout: "0 seconds" }, "timeout must be greater than zero"],
    [{ sensitive: "input" }, 'sensitive may only be "output"'],
  ];
  it("stores a delay function as [dynamic]; its values go through the backoff formula", () => {
    const resolved = resolveStepConfig(
      "charge card",
      { retries: { limit: 2, delay: () => "1 minute" } },
      defaults,
    );
    expect(resolved.retries.delay).toBe(DYNAMIC_DELAY);
    expect(retryDelayMs({ ...resolved.retries, backoff: "exponential" }, 3, 60_000)).toBe(240_000);
    expect(dynamicDelayMs("2 minutes")).toBe(120_000);
    expect(dynamicDelayMs(0)).toBe(0);
    expect(dynamicDelayMs(Number.NaN)).toBe("returned NaN, not a duration of 0 ms or more");
    expect(dynamicDelayMs(undefined)).toBe("returned undefined, not a duration");
    expect(nonRetryableDelayError({ name: "charge card", count: 2 }, "threw: x").message).toBe(
      'The delay function for step "charge card-2" threw: x',
    );
  });

  it.each(rejections)("%j is rejected: %s", (config, why) => {
    let error: unknown;
    try {
      resolveStepConfig("charge card", config, defaults);
    } catch (e) {
      error = e;
    }
    expect(WorkflowError.is(error, "step.invalid_config")).toBe(true);
    expect((error as Error).message).toBe(
      `(step.invalid_config) Step config for "charge card" is invalid: ${why}`,
    );
  });

  it("names the step and the field of a malformed duration", () => {
    expect(() => resolveStepConfig("charge card", { retries: { delay: "soon" } })).toThrow(
      /^\(step\.invalid_config\) Step config for "charge card": retries\.delay must be a number of milliseconds/,
    );
    expect(() => resolveStepConfig("charge card", { timeout: "1 fortnight" })).toThrow(
      /^\(step\.invalid_config\) Step config for "charge card": timeout must be/,
    );
  });
});

describe("retry timing", () => {
  /** The wait after each failed attempt 1…4 for a delay of 10 seconds. */
  const rows: [Backoff, number[]][] = [
    ["constant", [10_000, 10_000, 10_000, 10_000]],
    ["linear", [10_000, 20_000, 30_000, 40_000]],
    ["exponential", [10_000, 20_000, 40_000, 80_000]],
  ];
  it.each(rows)("%s", (backoff, waits) => {
    const retries = { limit: 5, delay: "10 seconds", backoff };
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(retries, attempt))).toEqual(waits);
  });

  it("a delay in milliseconds works the same", () => {
    expect(retryDelayMs({ limit: 5, delay: 250, backoff: "exponential" }, 3)).toBe(1000);
  });

  it("schedules each retry from the moment the attempt failed", () => {
    // Attempts fail at these times; the next one is due `retryDelayMs` later.
    const retries = { limit: 3, delay: "1 minute", backoff: "exponential" as const };
    const failedAt = [1_000_000, 1_061_000, 1_182_000];
    const dueAt = failedAt.map((now, i) => now + retryDelayMs(retries, i + 1));
    expect(dueAt).toEqual([1_060_000, 1_181_000, 1_422_000]);
  });
});

describe("canRetry: limit counts retries, so a step makes at most limit + 1 attempts", () => {
  const rows: [number, boolean[]][] = [
    // limit → may attempt n (the failed one) be followed by another, for n = 1…4
    [0, [false, false, false, false]],
    [1, [true, false, false, false]],
    [3, [true, true, true, false]],
  ];
  it.each(rows)("limit %d", (limit, verdicts) => {
    const retries = { limit, delay: 1000, backoff: "constant" as const };
    expect([1, 2, 3, 4].map((n) => canRetry(retries, n))).toEqual(verdicts);
  });

  it("with the defaults, the 6th failed attempt fails the step for good", () => {
    const { retries } = defaultStepConfig();
    const attempts: number[] = [];
    for (let n = 1; ; n++) {
      attempts.push(n);
      if (!canRetry(retries, n)) break;
    }
    expect(attempts).toEqual([1, 2, 3, 4, 5, 6]);
    // The waits between them, in seconds: 10, 20, 40, 80, 160.
    expect(attempts.slice(0, -1).map((n) => retryDelayMs(retries, n) / 1000)).toEqual([10, 20, 40, 80, 160]);
  });
});
