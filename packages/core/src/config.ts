import { parseDuration } from "./durations.ts";
import { WorkflowError } from "./errors.ts";
import { MAX_RETRY_LIMIT, RECONNECT_BASE_MS, RECONNECT_MAX_MS } from "./limits.ts";

export type Backoff = "constant" | "linear" | "exponential";

/**
 * A dynamic retry delay (Cloudflare's `WorkflowDelayFunction`, SPEC §9.3): called once per failed
 * attempt that will be retried, with the attempt's context and error; its duration goes through the
 * backoff formula like a fixed `delay`.
 */
export type WorkflowDelayFunction = (c: {
  ctx: import("./workflow.ts").WorkflowStepContext;
  error: Error;
}) => string | number | Promise<string | number>;

/** The config a user passes to `step.do` (compatible with Cloudflare's `WorkflowStepConfig`). */
export interface WorkflowStepConfig {
  retries?: { limit: number; delay: string | number | WorkflowDelayFunction; backoff?: Backoff };
  timeout?: string | number;
  sensitive?: "output";
}

/** Config with every default applied, as stored at the first attempt and shown to callbacks. */
export interface ResolvedStepConfig {
  retries: { limit: number; delay: string | number; backoff: Backoff };
  timeout: string | number;
  sensitive?: "output";
}

export const DEFAULT_RETRY_DELAY = "10 seconds";

/** How a step config with a delay function stores and shows its `retries.delay`. */
export const DYNAMIC_DELAY = "[dynamic]";
/** How long a delay function may take. */
export const DELAY_FUNCTION_TIMEOUT_MS = 5000;

/** What everything outside the workflow sees instead of a `sensitive: "output"` step's value. */
export const REDACTED_STEP_OUTPUT = "[REDACTED]";

export function defaultStepConfig(retryDelay: string | number = DEFAULT_RETRY_DELAY): ResolvedStepConfig {
  return { retries: { limit: 5, delay: retryDelay, backoff: "exponential" }, timeout: "10 minutes" };
}

const CONFIG_KEYS = new Set(["retries", "timeout", "sensitive"]);
const RETRY_KEYS = new Set(["limit", "delay", "backoff"]);
const BACKOFFS = new Set(["constant", "linear", "exponential"]);

function invalid(step: string, why: string): WorkflowError {
  return new WorkflowError("step.invalid_config", `Step config for "${step}" is invalid: ${why}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Validates a user config and merges it over the defaults (Cloudflare's rule: `retries` merges
 * key by key). Unknown keys are rejected, so typos never silently change behaviour.
 */
export function resolveStepConfig(
  step: string,
  config: unknown,
  defaults: ResolvedStepConfig = defaultStepConfig(),
): ResolvedStepConfig {
  // Resolved configs are never mutated (callbacks get copies), so the defaults object can be shared.
  if (config === undefined) return defaults;
  if (!isPlainObject(config)) throw invalid(step, "config must be an object");
  for (const k of Object.keys(config)) if (!CONFIG_KEYS.has(k)) throw invalid(step, `unknown key "${k}"`);
  const resolved = structuredClone(defaults);
  if (config.retries !== undefined) {
    const r = config.retries;
    if (!isPlainObject(r)) throw invalid(step, "retries must be an object");
    for (const k of Object.keys(r)) if (!RETRY_KEYS.has(k)) throw invalid(step, `unknown key "retries.${k}"`);
    if (r.limit !== undefined) {
      if (typeof r.limit !== "number" || !Number.isInteger(r.limit) || r.limit < 0)
        throw invalid(step, `retries.limit must be a whole number ≥ 0, got ${JSON.stringify(r.limit)}`);
      if (r.limit > MAX_RETRY_LIMIT) throw invalid(step, `retries.limit must be at most ${MAX_RETRY_LIMIT}`);
      resolved.retries.limit = r.limit;
    }
    if (typeof r.delay === "function") resolved.retries.delay = DYNAMIC_DELAY;
    else if (r.delay !== undefined) {
      if (typeof r.delay !== "number" && typeof r.delay !== "string")
        throw invalid(step, "retries.delay must be a duration or a function");
      parseDuration(r.delay, `Step config for "${step}": retries.delay`);
      resolved.retries.delay = r.delay;
    }
    if (r.backoff !== undefined) {
      if (typeof r.backoff !== "string" || !BACKOFFS.has(r.backoff))
        throw invalid(
          step,
          `retries.backoff must be constant, linear or exponential, got ${JSON.stringify(r.backoff)}`,
        );
      resolved.retries.backoff = r.backoff as Backoff;
    }
  }
  if (config.timeout !== undefined) {
    if (typeof config.timeout !== "number" && typeof config.timeout !== "string")
      throw invalid(step, "timeout must be a duration");
    if (parseDuration(config.timeout, `Step config for "${step}": timeout`) <= 0)
      throw invalid(step, "timeout must be greater than zero");
    resolved.timeout = config.timeout;
  }
  if (config.sensitive !== undefined) {
    if (config.sensitive !== "output") throw invalid(step, `sensitive may only be "output"`);
    resolved.sensitive = "output";
  }
  return resolved;
}

/**
 * The wait after failed attempt `attempt` (1-based): constant `d`, linear `d·n`, exponential `d·2^(n-1)`.
 */
export function retryDelayMs(
  retries: ResolvedStepConfig["retries"],
  attempt: number,
  baseMs?: number,
): number {
  const base = baseMs ?? parseDuration(retries.delay);
  switch (retries.backoff) {
    case "constant":
      return base;
    case "linear":
      return base * attempt;
    case "exponential":
      return base * 2 ** (attempt - 1);
  }
}

/**
 * What a delay function returned, as ms, or why it cannot be used (the end of
 * `The delay function for step "<name>-<n>" <reason>`).
 */
export function dynamicDelayMs(value: unknown): number | string {
  if (typeof value !== "number" && typeof value !== "string")
    return `returned ${value === null ? "null" : typeof value}, not a duration`;
  if (typeof value === "number" && (!Number.isFinite(value) || value < 0))
    return `returned ${value}, not a duration of 0 ms or more`;
  try {
    return parseDuration(value, "the delay");
  } catch (e) {
    return `returned an invalid duration: ${(e as Error).message}`;
  }
}

/** The error that fails a step whose delay function threw, timed out or returned nonsense. */
export function nonRetryableDelayError(step: { name: string; count: number }, reason: string): Error {
  const error = new Error(`The delay function for step "${step.name}-${step.count}" ${reason}`);
  error.name = "NonRetryableDelayError";
  return error;
}

/**
 * How long to wait before attempt `attempt` (2, 3, …) to reach a database that could not be reached:
 * doubling from `RECONNECT_BASE_MS`, at most `RECONNECT_MAX_MS`.
 */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.max(0, attempt - 2));
}

/** A step makes at most `limit + 1` attempts: `limit` counts retries. */
export function canRetry(retries: ResolvedStepConfig["retries"], failedAttempt: number): boolean {
  return failedAttempt <= retries.limit;
}
