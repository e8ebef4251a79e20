/**
 * Errors that cross Cairn's API carry a stable `code` (the set is closed: the HTTP layer maps each one
 * to a status). Their `message` is Cloudflare's for the same situation: `"instance.not_found"` for an
 * instance that does not exist (Cloudflare's binding throws exactly that), otherwise
 * `"(<code>) <text>"`, the form of Cloudflare's own `WorkflowError`s.
 * The set of codes is closed (a new code does not compile until the HTTP layer has a status for it).
 * `instance.changed`: the instance changed while a control command ran (another process won the
 * race); trying again is safe. `body`: malformed input.
 */
export type ErrorCode =
  | "instance.not_found"
  | "instance.already_exists"
  | "instance.invalid_id"
  | "instance.cannot_terminate"
  | "instance.cannot_restart"
  | "instance.cannot_pause"
  | "instance.cannot_send_event"
  | "instance.changed"
  | "instance.rate_limited"
  | "workflow.not_found"
  | "workflow.invalid_name"
  | "workflow.invalid_event_type"
  | "workflow.invalid_schedule"
  | "step.invalid_name"
  | "step.invalid_config"
  | "step.output_too_large"
  | "step.limit_reached"
  | "payload.too_large"
  | "do.missing_migration"
  | "do.class_not_found"
  | "do.owned_elsewhere"
  | "lease.lost"
  | "worker.not_found"
  | "step.nondeterministic"
  | "python.not_found"
  | "python.too_old"
  | "protocol.unsupported"
  | "body";

export const ERROR_CODES: readonly ErrorCode[] = [
  "instance.not_found",
  "instance.already_exists",
  "instance.invalid_id",
  "instance.cannot_terminate",
  "instance.cannot_restart",
  "instance.cannot_pause",
  "instance.cannot_send_event",
  "instance.changed",
  "instance.rate_limited",
  "workflow.not_found",
  "workflow.invalid_name",
  "workflow.invalid_event_type",
  "workflow.invalid_schedule",
  "step.invalid_name",
  "step.invalid_config",
  "step.output_too_large",
  "step.limit_reached",
  "payload.too_large",
  "do.missing_migration",
  "do.class_not_found",
  "do.owned_elsewhere",
  "lease.lost",
  "worker.not_found",
  "step.nondeterministic",
  "python.not_found",
  "python.too_old",
  "protocol.unsupported",
  "body",
];

/** Codes whose message is the bare code, as Cloudflare's binding throws them (`e.message === "instance.not_found"`). */
const BARE_MESSAGE_CODES: ReadonlySet<ErrorCode> = new Set(["instance.not_found"]);

/**
 * The one error class Cairn throws for bad input and impossible operations.
 *
 * `code` is stable; `text` is Cairn's description (what the HTTP API and CLI show, as `"(<code>)
 * <text>"`); `message` is what Cloudflare's message is in the same situation (see `errorMessage`).
 */
export class WorkflowError extends Error {
  override name = "WorkflowError";
  readonly code: ErrorCode;
  readonly text: string;

  constructor(code: ErrorCode, text: string) {
    super(errorMessage(code, text));
    this.code = code;
    this.text = text;
  }

  /** True for a WorkflowError, also one that crossed a process boundary as `{ name, code, message }`. */
  static is(e: unknown, code?: ErrorCode): e is WorkflowError {
    if (e instanceof WorkflowError) return code === undefined || e.code === code;
    if (typeof e !== "object" || e === null) return false;
    const { name, code: c } = e as { name?: unknown; code?: unknown };
    return name === "WorkflowError" && typeof c === "string" && (code === undefined || c === code);
  }

  toJSON(): { name: string; code: ErrorCode; message: string } {
    return { name: this.name, code: this.code, message: this.message };
  }
}

/** The `message` of a `WorkflowError`: the bare code for `instance.not_found`, else `"(<code>) <text>"`. */
export function errorMessage(code: ErrorCode, text: string): string {
  return BARE_MESSAGE_CODES.has(code) ? code : `(${code}) ${text}`;
}

/**
 * Thrown inside a step callback to stop retrying: the step fails at once and the error reaches `run()`.
 * Compatible with `import { NonRetryableError } from "cloudflare:workflows"`.
 */
export class NonRetryableError extends Error {
  constructor(message: string, name = "NonRetryableError") {
    super(message);
    this.name = name;
  }
}

/** Cloudflare's rule: recognised by name, or by a message that starts with the name (flattened errors). */
export function isNonRetryable(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const { name, message } = e as { name?: unknown; message?: unknown };
  return (
    name === "NonRetryableError" ||
    // A step whose delay function failed (SPEC §9.3) is not retried either.
    name === "NonRetryableDelayError" ||
    (typeof message === "string" && message.startsWith("NonRetryableError"))
  );
}

/** A step attempt or an event wait that ran out of time. Retryable like any other failure. */
export class WorkflowTimeoutError extends Error {
  override name = "WorkflowTimeoutError";
}

/**
 * What `step.waitForEvent` throws into `run()` when its timeout passes (or is forced): Cloudflare's
 * message, `"Execution timed out after <timeout>ms"` (the configured timeout), and the name `"Error"`,
 * which is what a Cloudflare workflow sees (the error reaches it over RPC, which keeps only the
 * standard error names) and what its examples assert. It is still a `WorkflowTimeoutError` for
 * `instanceof`. The wait's stored step error keeps the name `WorkflowTimeoutError`.
 */
export function eventTimeoutError(message: string): WorkflowTimeoutError {
  const error = new WorkflowTimeoutError(message);
  error.name = "Error";
  return error;
}

/** The message of a `waitForEvent` timeout, as Cloudflare words it. */
export function eventTimeoutMessage(timeoutMs: number): string {
  return `Execution timed out after ${timeoutMs}ms`;
}

/** Failures of the engine itself that end an instance (unserialisable results, step limit). */
export class WorkflowFatalError extends Error {
  override name = "WorkflowFatalError";
}

/**
 * How errors are stored and shown: `{ name, message }`, as they cross Cloudflare's RPC. The error
 * that ends an instance also keeps its stack (trimmed to the workflow's own frames) and where it
 * happened: in a step (`where: "step"`, with `step`) or in `run()` outside any step (`"run"`).
 */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  where?: "step" | "run";
  /** The step whose failure ended the instance: its type as the API names it, name and count. */
  step?: { type: "step" | "sleep" | "waitForEvent" | "rollback"; name: string; count: number };
}

/**
 * The stack of an error without the frames of the engine and of Node: lines naming one of
 * `internal` (paths or prefixes such as "node:", "/node_modules/") are dropped. Returns undefined
 * when no frame is left (an error made by the engine itself), so nothing misleading is stored.
 *
 * ```ts
 * trimStack("Error: x\n    at run (/app/src/flow.ts:3:9)\n    at step (/app/node_modules/cairnjs/run.js:1:1)", ["/node_modules/"]);
 * // "Error: x\n    at run (/app/src/flow.ts:3:9)"
 * ```
 */
export function trimStack(stack: string | undefined, internal: readonly string[]): string | undefined {
  if (typeof stack !== "string") return undefined;
  const lines = stack.split("\n");
  const frame = /^\s+at /;
  const head = lines.filter((l) => !frame.test(l));
  const frames = lines.filter((l) => frame.test(l) && !internal.some((i) => l.includes(i)));
  if (frames.length === 0) return undefined;
  return [...head, ...frames].join("\n");
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof Error) return { name: e.name || "Error", message: e.message };
  if (typeof e === "object" && e !== null) {
    const { name, message } = e as { name?: unknown; message?: unknown };
    if (typeof message === "string") return { name: typeof name === "string" ? name : "Error", message };
  }
  return { name: "Error", message: String(e) };
}

/** Rebuilds a stored error so user code can catch it and read `name` and `message`. */
export function deserializeError(e: SerializedError): Error {
  if (e.name === "NonRetryableError") return new NonRetryableError(e.message);
  const error =
    e.name === "WorkflowTimeoutError" ? new WorkflowTimeoutError(e.message) : new Error(e.message);
  error.name = e.name;
  return error;
}
