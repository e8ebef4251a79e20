/**
 * Errors of Sandboxes. Each has a stable `code` (`sandbox.*`, SPEC §14.6) and the message
 * `(<code>) <text>`, so the code survives a Durable Object RPC (which keeps only name and message)
 * and `SandboxError.from` rebuilds it on the other side. A command timeout keeps upstream's message
 * `Command timeout after <n>ms` after the code.
 */
export type SandboxErrorCode =
  | "sandbox.invalid_id"
  | "sandbox.isolation_unavailable"
  | "sandbox.not_running"
  | "sandbox.command_timeout"
  | "sandbox.process_not_found"
  | "sandbox.process_exists"
  | "sandbox.file_not_found"
  | "sandbox.file_exists"
  | "sandbox.is_directory"
  | "sandbox.not_empty"
  | "sandbox.file_error"
  | "sandbox.permission_denied"
  | "sandbox.port_invalid"
  | "sandbox.port_unreachable"
  | "sandbox.memory_limit"
  | "sandbox.disk_full"
  | "sandbox.invalid_path"
  | "sandbox.invalid_argument"
  | "sandbox.output_limit"
  | "sandbox.session_not_found"
  | "sandbox.session_exists"
  | "sandbox.aborted"
  | "sandbox.unauthorized"
  | "sandbox.exec_failed"
  | "sandbox.process_failed"
  | "sandbox.process_exited"
  | "sandbox.ready_timeout"
  | "sandbox.git_failed"
  | "sandbox.error";

export class SandboxError extends Error {
  readonly code: SandboxErrorCode;
  readonly text: string;
  constructor(code: SandboxErrorCode, text: string) {
    super(`(${code}) ${text}`);
    this.name = "SandboxError";
    this.code = code;
    this.text = text;
  }

  /**
   * Whether `e` is a SandboxError (of `code`). By shape, not by class: jails are shared by every
   * copy of this package in a process (a project may load its own), and so are their errors.
   */
  static is(e: unknown, code?: SandboxErrorCode): e is SandboxError {
    if (!(e instanceof Error) || e.name !== "SandboxError") return false;
    const c = (e as { code?: unknown }).code;
    if (typeof (e as { text?: unknown }).text !== "string") return false;
    return typeof c === "string" && c.startsWith("sandbox.") && (code === undefined || c === code);
  }

  /** Rebuilds a SandboxError from one that crossed an RPC (`(<code>) <text>` message), else returns `e`. */
  static from(e: unknown): unknown {
    if (e instanceof SandboxError || !(e instanceof Error)) return e;
    const m = /^\((sandbox\.[a-z_]+)\) ([\s\S]*)$/.exec(e.message);
    return m ? new SandboxError(m[1] as SandboxErrorCode, m[2] as string) : e;
  }
}
