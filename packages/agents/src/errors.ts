/**
 * Cairn's error codes of the Agents SDK (SPEC §13.9). Errors keep upstream's message texts (which
 * programs written for Cloudflare match on) and carry the code as `error.code`.
 */
export type AgentErrorCode =
  | "agent.not_found"
  | "agent.invalid_name"
  | "agent.readonly"
  | "agent.state_rejected"
  | "agent.rpc_timeout"
  | "schedule.invalid"
  | "workflow.not_tracked"
  | "do.missing_migration"
  | "email.invalid_signature";

/** `error` with `code` set (an error that already has a string code keeps it); returns `error`. */
export function withCode<E>(error: E, code: AgentErrorCode): E {
  if (error !== null && typeof error === "object" && typeof (error as { code?: unknown }).code !== "string")
    Object.defineProperty(error, "code", {
      value: code,
      enumerable: true,
      configurable: true,
      writable: true,
    });
  return error;
}

/** An `Error` (or subclass) with `message` and `code`. */
export function codedError(
  code: AgentErrorCode,
  message: string,
  Kind: new (message: string) => Error = Error,
): Error & { code: AgentErrorCode } {
  return withCode(new Kind(message), code) as Error & { code: AgentErrorCode };
}
