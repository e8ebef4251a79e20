/** Checks of outside input (SPEC §14.1, §14.6): pure, each failure a `SandboxError` naming the problem. */
import { SandboxError } from "./errors.ts";

export const MAX_ID_LENGTH = 63;
export const MAX_PATH_LENGTH = 4096;
export const RESERVED_IDS: readonly string[] = [
  "www",
  "api",
  "admin",
  "root",
  "system",
  "cloudflare",
  "workers",
];
/** The port of the sandbox's control plane upstream (refused for `exposePort` as there). */
export const CONTROL_PORT = 3000;

/** Validates a sandbox id (DNS-label rules of upstream); with `normalize`, lowercases it first. */
export function validateSandboxId(id: unknown, normalize = false): string {
  if (typeof id !== "string") throw new SandboxError("sandbox.invalid_id", "the sandbox id must be a string");
  const v = normalize ? id.toLowerCase() : id;
  if (v.length === 0 || v.length > MAX_ID_LENGTH)
    throw new SandboxError(
      "sandbox.invalid_id",
      `the sandbox id must be 1 to ${MAX_ID_LENGTH} characters (got ${v.length})`,
    );
  if (v.startsWith("-") || v.endsWith("-"))
    throw new SandboxError(
      "sandbox.invalid_id",
      `the sandbox id must not start or end with "-": ${JSON.stringify(v)}`,
    );
  if (!/^[A-Za-z0-9-]+$/.test(v))
    throw new SandboxError(
      "sandbox.invalid_id",
      `the sandbox id may hold only letters, digits and "-": ${JSON.stringify(v)}`,
    );
  if (RESERVED_IDS.includes(v.toLowerCase()))
    throw new SandboxError(
      "sandbox.invalid_id",
      `the sandbox id ${JSON.stringify(v)} is reserved (${RESERVED_IDS.join(", ")})`,
    );
  return v;
}

/** A path of a file call: non-empty, no NUL, at most 4096 characters (resolved inside the jail). */
export function validatePath(path: unknown, what = "path"): string {
  if (typeof path !== "string") throw new SandboxError("sandbox.invalid_path", `${what} must be a string`);
  if (path.length === 0) throw new SandboxError("sandbox.invalid_path", `${what} must not be empty`);
  if (path.includes("\0"))
    throw new SandboxError("sandbox.invalid_path", `${what} must not contain a NUL character`);
  if (path.length > MAX_PATH_LENGTH)
    throw new SandboxError(
      "sandbox.invalid_path",
      `${what} is ${path.length} characters; at most ${MAX_PATH_LENGTH} are allowed`,
    );
  return path;
}

/** A port a sandbox may expose or wait for: an integer 1024–65535, not the control port. */
export function validatePort(port: unknown, forExpose = true): number {
  if (typeof port !== "number" || !Number.isInteger(port))
    throw new SandboxError(
      "sandbox.port_invalid",
      `the port must be an integer (got ${JSON.stringify(port)})`,
    );
  const min = forExpose ? 1024 : 1;
  if (port < min || port > 65535)
    throw new SandboxError("sandbox.port_invalid", `the port must be between ${min} and 65535 (got ${port})`);
  if (forExpose && port === CONTROL_PORT)
    throw new SandboxError(
      "sandbox.port_invalid",
      `port ${CONTROL_PORT} is reserved for the sandbox's control plane`,
    );
  return port;
}

/** A command: a non-empty string without NUL. */
export function validateCommand(command: unknown): string {
  if (typeof command !== "string" || command.length === 0)
    throw new SandboxError("sandbox.invalid_argument", "the command must be a non-empty string");
  if (command.includes("\0"))
    throw new SandboxError("sandbox.invalid_argument", "the command must not contain a NUL character");
  return command;
}

/** A timeout in milliseconds: a positive finite number, or undefined. */
export function validateTimeout(ms: unknown, what = "timeout"): number | undefined {
  if (ms === undefined || ms === null) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0)
    throw new SandboxError(
      "sandbox.invalid_argument",
      `${what} must be a positive number of milliseconds (got ${JSON.stringify(ms)})`,
    );
  return Math.ceil(ms);
}

/** Environment variables: names of shell identifiers, values strings (undefined unsets). */
export function validateEnv(env: unknown, what = "env"): Record<string, string | undefined> | undefined {
  if (env === undefined || env === null) return undefined;
  if (typeof env !== "object")
    throw new SandboxError("sandbox.invalid_argument", `${what} must be an object`);
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new SandboxError(
        "sandbox.invalid_argument",
        `${what}: ${JSON.stringify(k)} is not a valid variable name`,
      );
    if (v !== undefined && typeof v !== "string")
      throw new SandboxError("sandbox.invalid_argument", `${what}.${k} must be a string`);
    if (typeof v === "string" && v.includes("\0"))
      throw new SandboxError("sandbox.invalid_argument", `${what}.${k} must not contain a NUL character`);
    out[k] = v;
  }
  return out;
}

/** `"10m"`, `"30s"`, `"1h"`, or milliseconds as a number → milliseconds. */
export function parseDuration(v: string | number | undefined, fallbackMs: number): number {
  if (v === undefined) return fallbackMs;
  if (typeof v === "number" && Number.isFinite(v) && v > 0) return v;
  const m = typeof v === "string" ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(v.trim()) : null;
  if (!m)
    throw new SandboxError(
      "sandbox.invalid_argument",
      `sleepAfter must be like "10m", "30s" or milliseconds (got ${JSON.stringify(v)})`,
    );
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  return n * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000);
}

/** Sizes like `"1GiB"`, `"512M"`, `1073741824` → bytes. */
export function parseBytes(v: string | number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (typeof v === "number" && Number.isInteger(v) && v > 0) return v;
  const m = typeof v === "string" ? /^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$/i.exec(v.trim()) : null;
  if (!m)
    throw new SandboxError(
      "sandbox.invalid_argument",
      `${what} must be a size like "1GiB" or bytes (got ${JSON.stringify(v)})`,
    );
  const unit = (m[2] ?? "B").toUpperCase()[0] as string;
  const mult = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[unit] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}
