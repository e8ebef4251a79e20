/** Retry options of schedules and queued callbacks (upstream's `RetryOptions`). */
export interface RetryOptions {
  /** Total attempts, the first included. */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** Checks retry options; the messages are upstream's. */
export function validateRetryOptions(options: RetryOptions, defaults?: Required<RetryOptions>): void {
  if (typeof options !== "object" || options === null) throw new Error("retry must be an object");
  if (options.maxAttempts !== undefined) {
    if (!Number.isFinite(options.maxAttempts) || options.maxAttempts < 1)
      throw new Error("retry.maxAttempts must be >= 1");
    if (!Number.isInteger(options.maxAttempts)) throw new Error("retry.maxAttempts must be an integer");
  }
  if (
    options.baseDelayMs !== undefined &&
    (!Number.isFinite(options.baseDelayMs) || options.baseDelayMs <= 0)
  )
    throw new Error("retry.baseDelayMs must be > 0");
  if (options.maxDelayMs !== undefined && (!Number.isFinite(options.maxDelayMs) || options.maxDelayMs <= 0))
    throw new Error("retry.maxDelayMs must be > 0");
  const base = options.baseDelayMs ?? defaults?.baseDelayMs;
  const max = options.maxDelayMs ?? defaults?.maxDelayMs;
  if (base !== undefined && max !== undefined && base > max)
    throw new Error("retry.baseDelayMs must be <= retry.maxDelayMs");
}

/** The options in force: the row's (or call's), else the class defaults. */
export function resolveRetry(
  options: RetryOptions | undefined,
  defaults: Required<RetryOptions>,
): Required<RetryOptions> {
  return {
    maxAttempts: options?.maxAttempts ?? defaults.maxAttempts,
    baseDelayMs: options?.baseDelayMs ?? defaults.baseDelayMs,
    maxDelayMs: options?.maxDelayMs ?? defaults.maxDelayMs,
  };
}

/** Full-jitter exponential backoff before attempt `attempt + 1`. */
export function jitterBackoff(attempt: number, baseDelayMs: number, maxDelayMs: number): number {
  return Math.floor(Math.random() * Math.min(2 ** attempt * baseDelayMs, maxDelayMs));
}

/** Runs `fn` up to `options.maxAttempts` times, waiting a jittered backoff between attempts. */
export async function tryN<T>(
  options: Required<RetryOptions>,
  fn: (attempt: number) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= options.maxAttempts) throw e;
      await new Promise((r) =>
        setTimeout(r, jitterBackoff(attempt, options.baseDelayMs, options.maxDelayMs)),
      );
    }
  }
}
