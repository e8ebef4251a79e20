/** Cairn's limits (SPEC §3). Each one is a named constant; the configurable ones are defaults. */
export const MAX_WORKFLOW_NAME_LENGTH = 64;
export const MAX_INSTANCE_ID_LENGTH = 100;
export const MAX_STEP_NAME_LENGTH = 256;
export const MAX_EVENT_TYPE_LENGTH = 100;
/** Params, event payloads and step results, each measured encoded. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
export const DEFAULT_STEP_LIMIT = 10_000;
/** `ReadableStream` step results (SPEC §9.3): each chunk must be smaller than this. */
export const MAX_STREAM_CHUNK_BYTES = 16 * 1024 * 1024;
/** What one instance may store; a stream result larger than this fails the instance. */
export const MAX_INSTANCE_STORAGE_BYTES = 1024 * 1024 * 1024;
/** The largest `workflows[].limits.steps` (Cloudflare's limit, SPEC §9.3). */
export const MAX_WORKFLOW_STEP_LIMIT = 25_000;
export const MAX_RETRY_LIMIT = 10_000;
export const MAX_BATCH_SIZE = 100;
export const DAY_MS = 24 * 60 * 60 * 1000;
export const MAX_SLEEP_MS = 365 * DAY_MS;
export const MIN_EVENT_TIMEOUT_MS = 1000;
export const MAX_EVENT_TIMEOUT_MS = 365 * DAY_MS;
export const DEFAULT_EVENT_TIMEOUT = "24 hours";
export const DEFAULT_MAX_CONCURRENT = 10_000;
/**
 * CPU time an attempt may use (Cloudflare's default per step; a Worker's `limits.cpu_ms` changes
 * it). Reported, not enforced: an attempt over it is marked `cpuLimitExceeded` (SPEC §12.2).
 */
export const DEFAULT_CPU_LIMIT_MS = 30_000;
/** The widest range `GET /workflows/:name/metrics` aggregates (Cloudflare keeps 31 days). */
export const MAX_METRICS_RANGE_MS = 31 * DAY_MS;
/**
 * A step attempt still running after this long is recorded as started (its step row `running`), so a
 * process that dies during it counts the attempt. Faster attempts write nothing before their outcome.
 */
export const ATTEMPT_MARKER_AFTER_MS = 10;
/**
 * Retries of lost attempts run one at a time in a process; one that runs longer than this lets the
 * next one start anyway.
 */
export const LOST_RETRY_ALONE_MS = 10_000;
/** A step that lost this many attempts in a row to a stopped process is not tried again. */
export const MAX_LOST_ATTEMPTS_IN_A_ROW = 3;
/** A worker that cannot reach its database at start retries after this, doubling up to the max. */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_MAX_MS = 5000;
export const NAME_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9\-_]*$/;

/**
 * A token bucket for `createRatePerSecond` (SPEC §9.3): `tokens` left at `at`. It refills at `rate`
 * per second up to `rate` (bursts of one second's worth).
 */
export interface RateBucket {
  tokens: number;
  at: number;
}

/** Takes `n` tokens at `now` when the bucket has them: the bucket after, and whether it did. */
export function takeTokens(
  bucket: RateBucket | undefined,
  rate: number,
  n: number,
  now: number,
): { bucket: RateBucket; ok: boolean } {
  const before = bucket ?? { tokens: rate, at: now };
  const tokens = Math.min(rate, before.tokens + (Math.max(0, now - before.at) * rate) / 1000);
  if (tokens < n) return { bucket: { tokens, at: now }, ok: false };
  return { bucket: { tokens: tokens - n, at: now }, ok: true };
}
