/**
 * Operating the sandboxes of this process (the HTTP API, `cairn sandbox exec|logs`, the dashboard):
 * the sandbox directories of the configured `dir`, with the jails this process runs, their
 * processes, exposed ports and recent commands. Listing starts nothing; `exec` and `logs` need the
 * jail to run (`sandbox.not_running` otherwise).
 */
import { type ExecResult, type ProcessInfo, SandboxApi } from "./api.ts";
import { SandboxError } from "./errors.ts";
import { listSandboxDirectories } from "./operate.ts";
import { findJail, type JailEntry, jailKey, sandboxConfig } from "./runtime.ts";
import { sandboxInfo } from "./sandbox.ts";
import { validateSandboxId } from "./validate.ts";

export interface SandboxStatus {
  id: string;
  state: "running" | "stopped";
  driver: string;
  startedAt?: string;
  lastActivity?: string;
  limits: {
    mode: string;
    memory: number;
    pids: number;
    cpu: number;
    tmp: number;
    cpuSeconds: number;
    disk: number;
  };
  network: string;
  processes: ProcessInfo[];
  exposedPorts: { port: number; name?: string }[];
  /** Newest last, at most 50. */
  recentCommands: { command: string; exitCode: number | null; at: string; durationMs: number }[];
}

function running(id: string): JailEntry | undefined {
  return findJail(jailKey(sandboxConfig().dir, validateSandboxId(id)));
}

function api(id: string): SandboxApi {
  const entry = running(id);
  if (!entry) {
    const elsewhere = listSandboxDirectories(sandboxConfig().dir).find((d) => d.id === id && d.running);
    throw new SandboxError(
      "sandbox.not_running",
      elsewhere
        ? `sandbox ${id} runs in another process of this machine (its jail is pid ${elsewhere.pid}): exec and logs are served by the process that runs it`
        : `sandbox ${id} is stopped (no jail runs it): a call through getSandbox starts it again`,
    );
  }
  return new SandboxApi(entry.id, async () => entry, undefined);
}

/** One sandbox (running in this process, or a directory of `dir`), or `undefined` when neither. */
export async function describeSandbox(id: string): Promise<SandboxStatus | undefined> {
  validateSandboxId(id);
  const entry = running(id);
  const dir = entry ? undefined : listSandboxDirectories(sandboxConfig().dir).find((d) => d.id === id);
  if (!entry && !dir) return undefined;
  const info = sandboxInfo(id);
  let processes: ProcessInfo[] = [];
  if (entry) {
    try {
      processes = await new SandboxApi(entry.id, async () => entry, undefined).listProcesses();
    } catch (e) {
      if (!SandboxError.is(e, "sandbox.not_running")) throw e;
    }
  }
  return {
    id,
    // A jail of another process (a project's thread or process of its own) is running too.
    state: entry || dir?.running ? "running" : "stopped",
    driver: info.driver,
    ...(info.startedAt ? { startedAt: info.startedAt } : {}),
    ...(info.lastActivity ? { lastActivity: info.lastActivity } : {}),
    limits: info.limits,
    network: info.network,
    processes,
    exposedPorts: entry
      ? [...entry.ports].map(([port, p]) => ({ port, ...(p.name ? { name: p.name } : {}) }))
      : [],
    recentCommands: info.recentCommands,
  };
}

/** Every sandbox of the configured `dir`, running ones first, then most recently changed. */
export async function listSandboxes(): Promise<SandboxStatus[]> {
  const dirs = listSandboxDirectories(sandboxConfig().dir);
  const out: SandboxStatus[] = [];
  for (const d of dirs) {
    const s = await describeSandbox(d.id);
    if (s) out.push(s);
  }
  return out.sort((a, b) => (a.state === b.state ? 0 : a.state === "running" ? -1 : 1));
}

/** Runs a command line in a running sandbox (a fresh shell in `/workspace`, not a session). */
export function execInSandbox(
  id: string,
  command: string,
  options: { timeout?: number } = {},
): Promise<ExecResult> {
  if (typeof command !== "string" || command.trim() === "")
    throw new SandboxError("sandbox.invalid_argument", "command must be a non-empty string");
  return api(id).exec(command, options.timeout !== undefined ? { timeout: options.timeout } : {});
}

/** The logs of one process of a running sandbox (the last 1 MiB of each stream). */
export function sandboxProcessLogs(
  id: string,
  processId: string,
): Promise<{ stdout: string; stderr: string; processId: string }> {
  return api(id).getProcessLogs(processId);
}
