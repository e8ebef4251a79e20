/**
 * The stored state of a sandbox (SPEC §14.6): its sessions (id, env, cwd), exposed ports and
 * their tokens, and its process records (id, command, status, exit code, times, the last 1 MiB of
 * each stream). The jail keeps the live copy; this module keeps the host's copy on the jail's
 * entry and hands every change to the entry's `persist` (the Sandbox object's SQLite), so a
 * restarted Cairn knows them: sessions are made again (a fresh shell in the stored cwd with the
 * stored env), ports keep their URLs, and processes that were running when the jail stopped are
 * `killed` records with their last logs.
 */
import type { ControlClient } from "./client.ts";

export interface StoredSession {
  id: string;
  /** The env given at creation and by `setEnvVars` (`export` in a command is the shell's own). */
  env: Record<string, string>;
  /** The shell's directory after its last command. */
  cwd?: string;
  commandTimeoutMs?: number;
}

export interface StoredPort {
  port: number;
  token: string;
  name?: string;
}

export interface StoredProcess {
  id: string;
  pid?: number;
  command: string;
  status: "starting" | "running" | "completed" | "failed" | "killed" | "error";
  startTime: string;
  endTime?: string;
  exitCode?: number;
  sessionId?: string;
  stdout: string;
  stderr: string;
}

/** What a Sandbox object stores, and what it hands back to a starting jail. */
export interface SandboxState {
  sessions: StoredSession[];
  ports: StoredPort[];
  processes: StoredProcess[];
}

/** A change to the stored state (one of them per call, written before the call returns). */
export type StateChange =
  | { kind: "session"; session: StoredSession }
  | { kind: "session-deleted"; id: string }
  | { kind: "port"; port: StoredPort }
  | { kind: "port-deleted"; port: number }
  | { kind: "process"; process: StoredProcess }
  | { kind: "process-deleted"; id: string };

/** How a jail's entry writes its state: `persist` (set by whoever started it) and the host copy. */
export interface StateHolder {
  sessions: Map<string, StoredSession>;
  processes: Map<string, StoredProcess>;
  persist?: (change: StateChange) => Promise<void>;
  /** Reports a failed write (the call itself went through). */
  warn: (message: string) => void;
}

/** Applies `change` to a stored state (the object's side). */
export function applyChange(state: SandboxState, change: StateChange): SandboxState {
  const without = <T>(list: T[], keep: (x: T) => boolean) => list.filter(keep);
  switch (change.kind) {
    case "session":
      return {
        ...state,
        sessions: [...without(state.sessions, (s) => s.id !== change.session.id), change.session],
      };
    case "session-deleted":
      return { ...state, sessions: without(state.sessions, (s) => s.id !== change.id) };
    case "port":
      return { ...state, ports: [...without(state.ports, (p) => p.port !== change.port.port), change.port] };
    case "port-deleted":
      return { ...state, ports: without(state.ports, (p) => p.port !== change.port) };
    case "process":
      return {
        ...state,
        processes: [...without(state.processes, (p) => p.id !== change.process.id), change.process],
      };
    case "process-deleted":
      return { ...state, processes: without(state.processes, (p) => p.id !== change.id) };
  }
}

export const emptyState = (): SandboxState => ({ sessions: [], ports: [], processes: [] });

/** Writes one change; a failed write is reported, never thrown into the call that made it. */
export async function persist(holder: StateHolder, change: StateChange): Promise<void> {
  if (!holder.persist) return;
  try {
    await holder.persist(change);
  } catch (e) {
    holder.warn(`sandbox state not stored (${change.kind}): ${(e as Error)?.message ?? e}`);
  }
}

export async function saveSession(holder: StateHolder, s: StoredSession): Promise<void> {
  holder.sessions.set(s.id, s);
  await persist(holder, { kind: "session", session: s });
}

/** The session's directory after a command (only written when it changed). */
export async function sessionCwd(holder: StateHolder, id: string, cwd: string | undefined): Promise<void> {
  if (!cwd) return;
  const s = holder.sessions.get(id) ?? { id, env: {} };
  if (s.cwd === cwd && holder.sessions.has(id)) return;
  await saveSession(holder, { ...s, cwd });
}

export async function saveProcess(holder: StateHolder, p: StoredProcess): Promise<void> {
  holder.processes.set(p.id, p);
  await persist(holder, { kind: "process", process: p });
}

/** Reads a process's final record and logs from the supervisor and stores them. */
export async function recordProcess(holder: StateHolder, client: ControlClient, id: string): Promise<void> {
  const info = await client.call<Omit<StoredProcess, "stdout" | "stderr">>("POST", "/process/get", { id });
  const logs = await client.call<{ stdout: string; stderr: string }>("POST", "/process/logs", { id });
  await saveProcess(holder, {
    id: info.id,
    ...(info.pid !== undefined ? { pid: info.pid } : {}),
    command: info.command,
    status: info.status,
    startTime: info.startTime,
    ...(info.endTime ? { endTime: info.endTime } : {}),
    ...(info.exitCode !== undefined && info.exitCode !== null ? { exitCode: info.exitCode } : {}),
    ...(info.sessionId ? { sessionId: info.sessionId } : {}),
    stdout: logs.stdout,
    stderr: logs.stderr,
  });
}

/** How often, at most, the logs of a running process are stored while it writes output. */
export const LOG_SAVE_INTERVAL_MS = 1000;

/**
 * Follows a started process until it exits, then stores its record and logs. While it runs, its
 * record and logs are stored again on its first output and then at most once per
 * `LOG_SAVE_INTERVAL_MS` while it writes more, so a SIGKILL of Cairn loses at most the last second
 * of its output. Ends quietly when the jail goes away first (the stop or the next start settles the
 * record).
 */
export function followProcess(holder: StateHolder, client: ControlClient, id: string): void {
  let saving: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastSave = Number.NEGATIVE_INFINITY;
  let ended = false;
  const save = () => {
    lastSave = Date.now();
    saving = saving.then(() => recordProcess(holder, client, id)).catch(() => {});
  };
  const output = () => {
    if (!holder.persist || timer || ended) return;
    const wait = lastSave + LOG_SAVE_INTERVAL_MS - Date.now();
    if (wait <= 0) return save();
    timer = setTimeout(() => {
      timer = undefined;
      if (!ended) save();
    }, wait);
    timer.unref?.();
  };
  void (async () => {
    let followed = false;
    try {
      for await (const ev of client.events("/process/logs", { id, follow: true })) {
        if (ev.type === "exit") break;
        if (ev.type === "stdout" || ev.type === "stderr") output();
      }
      followed = true;
    } catch {}
    ended = true;
    clearTimeout(timer);
    if (!followed) return;
    await saving;
    await recordProcess(holder, client, id).catch(() => {});
  })();
}

/**
 * A starting jail takes its stored state: sessions are made again, ports come back, and records
 * of processes that were running when the jail stopped become `killed` (ended now).
 */
export async function restoreState(
  holder: StateHolder,
  client: ControlClient,
  state: SandboxState,
  ports: Map<number, { token: string; name?: string }>,
): Promise<void> {
  for (const p of state.ports) ports.set(p.port, { token: p.token, ...(p.name ? { name: p.name } : {}) });
  for (const s of state.sessions) {
    holder.sessions.set(s.id, s);
    try {
      await client.call("POST", "/session/create", {
        id: s.id,
        env: s.env,
        ...(s.cwd ? { cwd: s.cwd } : {}),
        ...(s.commandTimeoutMs ? { commandTimeoutMs: s.commandTimeoutMs } : {}),
      });
    } catch (e) {
      holder.warn(`sandbox session ${s.id} not restored: ${(e as Error)?.message ?? e}`);
    }
  }
  const ended = new Date().toISOString();
  for (const p of state.processes) {
    if (p.status === "running" || p.status === "starting")
      await saveProcess(holder, { ...p, status: "killed", endTime: p.endTime ?? ended });
    else holder.processes.set(p.id, p);
  }
}

/** Before a jail stops on purpose: the last records and logs of its processes. */
export async function settleBeforeStop(holder: StateHolder, client: ControlClient): Promise<void> {
  if (!holder.persist) return;
  let list: { id: string; status: string }[];
  try {
    list = (await client.call<{ processes: { id: string; status: string }[] }>("GET", "/process/list"))
      .processes;
  } catch {
    return;
  }
  const ended = new Date().toISOString();
  for (const p of list) {
    try {
      await recordProcess(holder, client, p.id);
      const rec = holder.processes.get(p.id);
      if (rec && (rec.status === "running" || rec.status === "starting"))
        await saveProcess(holder, { ...rec, status: "killed", endTime: ended });
    } catch {}
  }
}
