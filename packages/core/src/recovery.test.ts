import { describe, expect, it } from "vitest";
import type { ResolvedStepConfig } from "./config.ts";
import { reconnectDelayMs } from "./config.ts";
import { ATTEMPT_LOST_ERROR, decideLostAttempt, lostInARow, suspectLane } from "./recovery.ts";

const config = (limit: number): ResolvedStepConfig => ({
  retries: { limit, delay: 1000, backoff: "exponential" },
  timeout: "10 minutes",
});
const lost = { name: ATTEMPT_LOST_ERROR, message: "Attempt 1 … did not finish" };

describe("decideLostAttempt", () => {
  it("counts the attempt in flight as failed and retries it after the configured backoff", () => {
    expect(decideLostAttempt({ name: "eat", attempts: 3, config: config(5), previousError: null })).toEqual({
      retry: true,
      attempt: 3,
      delayMs: 4000,
      error: {
        name: ATTEMPT_LOST_ERROR,
        message:
          'Attempt 3 of step "eat" did not finish: the process running it stopped (out of memory, a crash, or a kill).',
      },
    });
  });

  it("fails the step when the lost attempt was its last allowed one", () => {
    const d = decideLostAttempt({ name: "eat", attempts: 1, config: config(0), previousError: null });
    expect(d).toMatchObject({ retry: false, attempt: 1, error: { name: ATTEMPT_LOST_ERROR } });
  });

  it("fails the step at the third lost attempt in a row, whatever retries are left", () => {
    const other = { name: "Error", message: "boom" };
    const after = (previousError: { name: string; message: string } | null, attempts: number) =>
      decideLostAttempt({ name: "eat", attempts, config: config(5), previousError });
    expect(after(other, 2).retry).toBe(true);
    const second = after(lost, 2);
    expect(second).toMatchObject({ retry: true, delayMs: 2000 });
    expect(second.error.message).toContain("; 2 attempts in a row were lost.");
    expect(lostInARow(second.error)).toBe(2);
    const third = after(second.error, 3);
    expect(third.retry).toBe(false);
    expect(third.error.message).toContain("; 3 attempts in a row were lost. The step is not tried again");
    expect(third.error.message).toContain("restart the instance to try again");
    // Another failure in between starts the count again.
    expect(lostInARow(other)).toBe(0);
    expect(lostInARow(lost)).toBe(1);
  });
});

describe("suspectLane", () => {
  it("marks first after a takeover or a lost attempt, and runs the last chance alone", () => {
    const twice = { name: ATTEMPT_LOST_ERROR, message: "…; 2 attempts in a row were lost." };
    expect(suspectLane(false, null)).toBeUndefined();
    expect(suspectLane(false, { name: "Error", message: "x" })).toBeUndefined();
    expect(suspectLane(true, null)).toBe("alongside");
    expect(suspectLane(false, lost)).toBe("alongside");
    expect(suspectLane(false, twice)).toBe("alone");
    expect(suspectLane(true, twice)).toBe("alone");
  });
});

describe("reconnectDelayMs", () => {
  it("doubles from 250 ms to at most 5 s", () => {
    expect([2, 3, 4, 5, 6, 7, 20].map(reconnectDelayMs)).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
  });
});
