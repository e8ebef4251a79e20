import { canRetry, type ResolvedStepConfig, retryDelayMs } from "./config.ts";
import type { SerializedError } from "./errors.ts";
import { MAX_LOST_ATTEMPTS_IN_A_ROW } from "./limits.ts";

/**
 * The name of the error stored for a step attempt that never finished because the process running
 * it stopped (it ran out of memory, crashed, was killed, or lost its lease) while it ran.
 */
export const ATTEMPT_LOST_ERROR = "AttemptLostError";

/**
 * What to do about a step attempt found in flight on recovery: its step row is `running` (the
 * durable "attempt started" marker), so the process that ran it stopped before storing an outcome.
 *
 * The attempt counts as a failed attempt, like any other: it is retried after the step's configured
 * delay and backoff while `retries.limit` allows, and the step fails once it does not. Besides, a
 * step that lost `MAX_LOST_ATTEMPTS_IN_A_ROW` attempts in a row (the process stopped during each:
 * its recovery crashed the process twice) is not tried again whatever its limit says: a step that
 * keeps killing the process must not keep taking every other instance down with it.
 */
export type LostAttemptDecision =
  | { retry: true; attempt: number; error: SerializedError; delayMs: number }
  | { retry: false; attempt: number; error: SerializedError };

export function decideLostAttempt(step: {
  name: string;
  /** The attempt that was in flight (the marker's attempt number). */
  attempts: number;
  config: ResolvedStepConfig;
  /** The error of the attempt before it, if that one failed. */
  previousError: SerializedError | null;
  /** The base delay, instead of `config.retries.delay` (a dynamic delay). */
  delayBaseMs?: number;
}): LostAttemptDecision {
  const attempt = step.attempts;
  const inARow = lostInARow(step.previousError) + 1;
  const what = `Attempt ${attempt} of step "${step.name}" did not finish: the process running it stopped (out of memory, a crash, or a kill)`;
  const message = inARow > 1 ? `${what}; ${inARow} attempts in a row were lost.` : `${what}.`;
  const error = { name: ATTEMPT_LOST_ERROR, message };
  if (inARow >= MAX_LOST_ATTEMPTS_IN_A_ROW)
    return {
      retry: false,
      attempt,
      error: {
        name: ATTEMPT_LOST_ERROR,
        message: `${message} The step is not tried again, so it cannot keep stopping the process; restart the instance to try again.`,
      },
    };
  if (!canRetry(step.config.retries, attempt)) return { retry: false, attempt, error };
  return {
    retry: true,
    attempt,
    error,
    delayMs: retryDelayMs(step.config.retries, attempt, step.delayBaseMs),
  };
}

/** How many attempts in a row ended lost, up to the one whose error is `error` (0 if it was not lost). */
export function lostInARow(error: SerializedError | null): number {
  if (error?.name !== ATTEMPT_LOST_ERROR) return 0;
  const n = /; (\d+) attempts in a row were lost\./.exec(error.message);
  return n ? Number(n[1]) : 1;
}

/**
 * How an attempt about to start is treated as a suspect of having killed the previous process, or
 * `undefined` when it is not one. Suspects are recorded as started (the marker) before their callback
 * runs, not only once it has run for `ATTEMPT_MARKER_AFTER_MS`, so a callback that kills the process
 * without ever yielding to the event loop is counted too. Fast attempts of other instances write no
 * marker at all.
 *
 * - `alongside`: the first attempt after a takeover (the instance was running when the process
 *   stopped), or a retry after one lost attempt. These run at once, side by side: after a crash
 *   that interrupted many instances, recovery is not slowed down.
 * - `alone`: a retry after `MAX_LOST_ATTEMPTS_IN_A_ROW - 1` lost attempts in a row, the last chance
 *   before the step is failed. These run one at a time, once no `alongside` attempt is in flight, so
 *   a crash during one is its own: an instance that was merely in flight at the crashes another one
 *   caused never loses its last chance to them.
 */
export function suspectLane(
  recovering: boolean,
  previousError: SerializedError | null,
): SuspectLane | undefined {
  const lost = lostInARow(previousError);
  if (lost >= MAX_LOST_ATTEMPTS_IN_A_ROW - 1) return "alone";
  return recovering || lost > 0 ? "alongside" : undefined;
}

export type SuspectLane = "alone" | "alongside";
