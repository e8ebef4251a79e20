/**
 * The `@cloudflare/sandbox` 0.12 surface (SPEC §14.1) on a jail, and the seed's 0.0.x forms.
 * `SandboxApi` is used by `getSandbox`'s handle and by the `Sandbox` Durable Object itself.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import type { ControlClient, ControlEvent } from "./client.ts";
import { checkAfter, checkBeforeWrite } from "./disk.ts";
import { SandboxError } from "./errors.ts";
import { type JailEntry, stopJail, touch } from "./runtime.ts";
import { asyncIterableToSSEStream, parseSSEStream } from "./sse.ts";
import {
  followProcess,
  persist,
  recordProcess,
  type StoredProcess,
  saveProcess,
  saveSession,
  sessionCwd,
} from "./state.ts";
import { validateCommand, validateEnv, validatePath, validatePort, validateTimeout } from "./validate.ts";

/** Bytes of output an `exec` may write before it is stopped (`sandbox.output_limit`). */
export const MAX_EXEC_OUTPUT = 16 * 1024 * 1024;

export interface BaseExecOptions {
  timeout?: number;
  env?: Record<string, string | undefined>;
  cwd?: string;
  encoding?: string;
}

export interface ExecResult {
  success: boolean;
  exitCode: number;
  stdout: string;
  stderr: string;
  command: string;
  duration: number;
  timestamp: string;
  sessionId?: string;
}

export interface ExecOptions extends BaseExecOptions {
  stream?: boolean;
  onOutput?: (stream: "stdout" | "stderr", data: string) => void;
  onComplete?: (result: ExecResult) => void;
  onError?: (error: Error) => void;
  signal?: AbortSignal;
  /** CPU seconds for this command (RLIMIT_CPU). */
  cpuSeconds?: number;
}

export interface ExecEvent {
  type: "start" | "stdout" | "stderr" | "complete" | "error";
  timestamp: string;
  data?: string;
  command?: string;
  exitCode?: number;
  result?: ExecResult;
  error?: string;
  sessionId?: string;
  pid?: number;
}

export interface LogEvent {
  type: "stdout" | "stderr" | "exit" | "error";
  timestamp: string;
  data: string;
  processId: string;
  sessionId?: string;
  exitCode?: number;
}

export type ProcessStatus = "starting" | "running" | "completed" | "failed" | "killed" | "error";

export interface ProcessInfo {
  id: string;
  pid?: number;
  command: string;
  status: ProcessStatus;
  startTime: string;
  endTime?: string;
  exitCode?: number;
  sessionId?: string;
}

export interface ProcessOptions extends BaseExecOptions {
  processId?: string;
  autoCleanup?: boolean;
  onExit?: (code: number | null) => void;
  onOutput?: (stream: "stdout" | "stderr", data: string) => void;
  onStart?: (process: Process) => void;
  onError?: (error: Error) => void;
  cpuSeconds?: number;
}

export interface WaitForPortOptions {
  mode?: "http" | "tcp";
  path?: string;
  status?: number | { min: number; max: number };
  timeout?: number;
  interval?: number;
}

/** A background process (`startProcess`). */
export interface Process extends ProcessInfo {
  kill(signal?: string): Promise<void>;
  getStatus(): Promise<ProcessStatus>;
  getLogs(): Promise<{ stdout: string; stderr: string }>;
  waitForLog(pattern: string | RegExp, timeout?: number): Promise<{ line: string; match?: RegExpMatchArray }>;
  waitForPort(port: number, options?: WaitForPortOptions): Promise<void>;
  waitForExit(timeout?: number): Promise<{ exitCode: number }>;
}

export interface SessionOptions {
  id?: string;
  name?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  isolation?: boolean;
  commandTimeoutMs?: number;
}

export interface FileInfo {
  name: string;
  absolutePath: string;
  relativePath: string;
  type: "file" | "directory" | "symlink" | "other";
  size: number;
  modifiedAt: string;
  mode: string;
  permissions: { readable: boolean; writable: boolean; executable: boolean };
}

/** The seed's streamed events (`exec(cmd, args, { stream: true })`). */
export interface LegacyExecEvent {
  type: "command_start" | "output" | "command_complete" | "error";
  command: string;
  args: string[];
  stream?: "stdout" | "stderr";
  data?: string;
  exitCode?: number;
  success?: boolean;
  stdout?: string;
  stderr?: string;
  error?: string;
  timestamp: string;
}

const now = () => new Date().toISOString();

function checkProcessId(id: unknown): string {
  if (typeof id !== "string" || id.length === 0 || id.length > 256 || !/^[\w.:-]+$/.test(id))
    throw new SandboxError(
      "sandbox.invalid_argument",
      `a process id must be 1–256 characters of letters, digits, "_", ".", ":", "-" (got ${JSON.stringify(id)})`,
    );
  return id;
}

/**
 * The sandbox API on a jail. `entry()` gives the running jail (starting it if needed);
 * `sessionId` is the session implicit calls run in (undefined: each call a fresh shell).
 */
export class SandboxApi {
  readonly id: string;
  readonly #entry: () => Promise<JailEntry>;
  readonly #session: string | undefined;
  readonly #onDestroy: () => Promise<void>;
  readonly #onPorts: (() => void) | undefined;

  constructor(
    id: string,
    entry: () => Promise<JailEntry>,
    sessionId: string | undefined,
    hooks: { onDestroy?: () => Promise<void>; onPorts?: () => void } = {},
  ) {
    this.id = id;
    this.#entry = entry;
    this.#session = sessionId;
    this.#onDestroy = hooks.onDestroy ?? (async () => {});
    this.#onPorts = hooks.onPorts;
  }

  async #client(): Promise<{ client: ControlClient; entry: JailEntry }> {
    const entry = await this.#entry();
    touch(entry);
    return { client: entry.jail.client, entry };
  }

  /** Calls of this API bound to another session (`createSession`/`getSession`). */
  withSession(sessionId: string): SandboxApi {
    return new SandboxApi(this.id, this.#entry, sessionId, {
      onDestroy: this.#onDestroy,
      ...(this.#onPorts ? { onPorts: this.#onPorts } : {}),
    });
  }

  get sessionId(): string | undefined {
    return this.#session;
  }

  // ------------------------------------------------------------ commands

  /**
   * Runs a command. `exec(command, options?)` (0.12: a shell command line, in the session) or the
   * seed's `exec(command, args[], { stream? })` (argv, no shell; `stream` yields its old events).
   */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  exec(
    command: string,
    args: string[],
    options?: { stream?: boolean },
  ): Promise<ExecResult | AsyncIterable<LegacyExecEvent>>;
  exec(
    command: string,
    a?: ExecOptions | string[],
    b?: { stream?: boolean },
  ): Promise<ExecResult | AsyncIterable<LegacyExecEvent>> {
    if (Array.isArray(a)) return this.#legacyExec(command, a, b?.stream ?? false);
    return this.#exec(command, a ?? {});
  }

  async #legacyExec(
    command: string,
    args: string[],
    stream: boolean,
  ): Promise<ExecResult | AsyncIterable<LegacyExecEvent>> {
    validateCommand(command);
    if (!args.every((x) => typeof x === "string" && !x.includes("\0")))
      throw new SandboxError("sandbox.invalid_argument", "args must be strings without NUL characters");
    if (!stream) return this.#run(command, { argv: args }, {});
    const self = this;
    return (async function* () {
      yield { type: "command_start", command, args, timestamp: now() } as LegacyExecEvent;
      try {
        let stdout = "";
        let stderr = "";
        const out: LegacyExecEvent[] = [];
        let wake: (() => void) | undefined;
        let done = false;
        let result: ExecResult | undefined;
        let failure: unknown;
        void self
          .#run(
            command,
            { argv: args },
            {
              onOutput: (s, data) => {
                if (s === "stdout") stdout += data;
                else stderr += data;
                out.push({ type: "output", command, args, stream: s, data, timestamp: now() });
                wake?.();
              },
            },
          )
          .then(
            (r) => (result = r),
            (e) => (failure = e),
          )
          .finally(() => {
            done = true;
            wake?.();
          });
        while (!done || out.length) {
          if (out.length) yield out.shift() as LegacyExecEvent;
          else await new Promise<void>((r) => (wake = r));
        }
        if (failure) throw failure;
        yield {
          type: "command_complete",
          command,
          args,
          exitCode: result?.exitCode ?? -1,
          success: !!result?.success,
          stdout,
          stderr,
          timestamp: now(),
        };
      } catch (e) {
        yield { type: "error", command, args, error: (e as Error).message, timestamp: now() };
      }
    })();
  }

  async #exec(command: string, o: ExecOptions): Promise<ExecResult> {
    try {
      const r = await this.#run(command, {}, o);
      o.onComplete?.(r);
      return r;
    } catch (e) {
      o.onError?.(e as Error);
      throw e;
    }
  }

  async #run(
    command: string,
    extra: { argv?: string[]; subshell?: boolean },
    o: ExecOptions,
    onEvent?: (e: ControlEvent) => void,
  ): Promise<ExecResult> {
    validateCommand(command);
    const timeout = validateTimeout(o.timeout);
    const env = validateEnv(o.env);
    if (o.cwd !== undefined) validatePath(o.cwd, "cwd");
    const { client, entry } = await this.#client();
    const started = Date.now();
    const timestamp = new Date(started).toISOString();
    let stdout = "";
    let stderr = "";
    let exitCode = -1;
    const body = {
      command,
      ...extra,
      ...(this.#session ? { sessionId: this.#session } : {}),
      ...(o.cwd ? { cwd: o.cwd } : {}),
      ...(env ? { env } : {}),
      ...(timeout ? { timeout } : {}),
      ...(o.cpuSeconds ? { cpuSeconds: o.cpuSeconds } : {}),
      maxOutput: MAX_EXEC_OUTPUT,
    };
    entry.inflight++;
    try {
      for await (const ev of client.events("/exec", body, o.signal)) {
        onEvent?.(ev);
        if (ev.type === "stdout") {
          stdout += ev.data ?? "";
          o.onOutput?.("stdout", ev.data ?? "");
        } else if (ev.type === "stderr") {
          stderr += ev.data ?? "";
          o.onOutput?.("stderr", ev.data ?? "");
        } else if (ev.type === "complete") {
          exitCode = ev.exitCode ?? -1;
          if (ev.cwd && this.#session) await sessionCwd(entry.state, this.#session, ev.cwd);
        }
      }
    } catch (e) {
      if (o.signal?.aborted) throw new SandboxError("sandbox.aborted", "the command was aborted");
      record(entry, command, null, started);
      throw await this.#explain(e, entry);
    } finally {
      entry.inflight--;
      touch(entry);
    }
    record(entry, command, exitCode, started);
    await checkAfter(entry);
    return {
      success: exitCode === 0,
      exitCode,
      stdout,
      stderr,
      command,
      duration: Date.now() - started,
      timestamp,
      ...(this.#session ? { sessionId: this.#session } : {}),
    };
  }

  /** A control error, or the jail's death (`sandbox.not_running`, naming a memory kill). */
  async #explain(e: unknown, entry: JailEntry): Promise<unknown> {
    if (SandboxError.is(e, "sandbox.not_running")) {
      const oom = await entry.jail.oomKills();
      if (oom > 0)
        return new SandboxError(
          "sandbox.memory_limit",
          `the sandbox went over its memory limit (${entry.config.limits.memory} bytes) and was stopped`,
        );
    }
    return e;
  }

  /** The command's events as an SSE body (`parseSSEStream` reads it). */
  async execStream(
    command: string,
    options: BaseExecOptions & { signal?: AbortSignal } = {},
  ): Promise<ReadableStream<Uint8Array>> {
    validateCommand(command);
    const sessionId = this.#session;
    const queue: ExecEvent[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const push = (e: ExecEvent) => {
      queue.push(e);
      wake?.();
    };
    const started = Date.now();
    void this.#run(command, { subshell: true }, options, (ev) => {
      const base = { timestamp: now(), ...(sessionId ? { sessionId } : {}) };
      if (ev.type === "start") push({ type: "start", command, ...(ev.pid ? { pid: ev.pid } : {}), ...base });
      else if (ev.type === "stdout" || ev.type === "stderr")
        push({ type: ev.type, data: ev.data ?? "", ...base });
    })
      .then(
        (result) =>
          push({
            type: "complete",
            exitCode: result.exitCode,
            result: { ...result, duration: Date.now() - started },
            timestamp: now(),
            ...(sessionId ? { sessionId } : {}),
          }),
        (e) =>
          push({
            type: "error",
            error: (e as Error).message,
            timestamp: now(),
            ...(sessionId ? { sessionId } : {}),
          }),
      )
      .finally(() => {
        done = true;
        wake?.();
      });
    return asyncIterableToSSEStream(
      (async function* () {
        while (!done || queue.length) {
          if (queue.length) yield queue.shift() as ExecEvent;
          else await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      })(),
    );
  }

  // ------------------------------------------------------------ processes

  async startProcess(command: string, options: ProcessOptions = {}): Promise<Process> {
    validateCommand(command);
    const env = validateEnv(options.env);
    if (options.cwd !== undefined) validatePath(options.cwd, "cwd");
    const id =
      options.processId !== undefined
        ? checkProcessId(options.processId)
        : `proc_${randomBytes(6).toString("hex")}`;
    const { client, entry } = await this.#client();
    let info: ProcessInfo;
    try {
      info = await client.call<ProcessInfo>("POST", "/process/start", {
        id,
        command,
        ...(this.#session ? { sessionId: this.#session } : {}),
        ...(options.cwd ? { cwd: options.cwd } : {}),
        ...(env ? { env } : {}),
        ...(options.cpuSeconds ? { cpuSeconds: options.cpuSeconds } : {}),
      });
    } catch (e) {
      options.onError?.(e as Error);
      throw e;
    }
    await saveProcess(entry.state, { ...stored(info), stdout: "", stderr: "" });
    followProcess(entry.state, client, id);
    const proc = this.#handle(info);
    options.onStart?.(proc);
    if (options.onOutput || options.onExit) {
      void (async () => {
        try {
          for await (const ev of client.events("/process/logs", { id, follow: true })) {
            if (ev.type === "stdout" || ev.type === "stderr") options.onOutput?.(ev.type, ev.data ?? "");
            else if (ev.type === "exit") options.onExit?.(ev.exitCode ?? null);
          }
        } catch (e) {
          options.onError?.(e as Error);
        }
      })();
    }
    return proc;
  }

  #handle(info: ProcessInfo): Process {
    return {
      ...info,
      kill: (signal?: string) => this.killProcess(info.id, signal),
      getStatus: async () => (await this.getProcess(info.id))?.status ?? "error",
      getLogs: async () => {
        const l = await this.getProcessLogs(info.id);
        return { stdout: l.stdout, stderr: l.stderr };
      },
      waitForLog: (pattern, timeout) => this.#waitForLog(info.id, pattern, timeout),
      waitForPort: (port, options) => this.#waitForPort(info.id, port, options),
      waitForExit: (timeout) => this.#waitForExit(info.id, timeout),
    };
  }

  async #follow<T>(
    id: string,
    timeout: number | undefined,
    what: string,
    step: (ev: ControlEvent) => T | undefined,
  ): Promise<T> {
    validateTimeout(timeout);
    const { client, entry } = await this.#client();
    const ac = new AbortController();
    const timer = timeout ? setTimeout(() => ac.abort(), timeout) : undefined;
    entry.inflight++;
    try {
      for await (const ev of client.events("/process/logs", { id, follow: true }, ac.signal)) {
        const r = step(ev);
        if (r !== undefined) return r;
      }
    } catch (e) {
      if (!ac.signal.aborted) throw e;
    } finally {
      clearTimeout(timer);
      entry.inflight--;
      touch(entry);
    }
    if (ac.signal.aborted)
      throw new SandboxError(
        "sandbox.ready_timeout",
        `process ${id}: ${what} did not happen within ${timeout}ms`,
      );
    throw new SandboxError("sandbox.process_exited", `process ${id} exited before ${what}`);
  }

  #waitForLog(
    id: string,
    pattern: string | RegExp,
    timeout?: number,
  ): Promise<{ line: string; match?: RegExpMatchArray }> {
    const bufs = { stdout: "", stderr: "" };
    return this.#follow(id, timeout, `its output matched ${String(pattern)}`, (ev) => {
      if (ev.type !== "stdout" && ev.type !== "stderr") return undefined;
      bufs[ev.type] += ev.data ?? "";
      const lines = bufs[ev.type].split("\n");
      for (const line of lines) {
        if (typeof pattern === "string" ? line.includes(pattern) : pattern.test(line)) {
          const match = typeof pattern === "string" ? undefined : (line.match(pattern) ?? undefined);
          return { line, ...(match ? { match } : {}) };
        }
      }
      bufs[ev.type] = lines[lines.length - 1] ?? "";
      return undefined;
    });
  }

  async #waitForExit(id: string, timeout?: number): Promise<{ exitCode: number }> {
    const r = await this.#follow(id, timeout, "it exited", (ev) =>
      ev.type === "exit" ? { exitCode: ev.exitCode ?? -1 } : undefined,
    );
    // The exit is stored before this returns (the follower may not have written it yet).
    const { client, entry } = await this.#client();
    try {
      await recordProcess(entry.state, client, id);
    } catch {}
    return r;
  }

  async #waitForPort(id: string, port: number, o: WaitForPortOptions = {}): Promise<void> {
    validatePort(port, false);
    const timeout = validateTimeout(o.timeout);
    const interval = o.interval ?? 500;
    const status =
      typeof o.status === "number" ? { min: o.status, max: o.status } : (o.status ?? { min: 200, max: 399 });
    const deadline = timeout ? Date.now() + timeout : Number.POSITIVE_INFINITY;
    const { client } = await this.#client();
    while (true) {
      const r = await client.call<{ ready: boolean }>("POST", "/port/check", {
        port,
        mode: o.mode ?? "tcp",
        path: o.path ?? "/",
        status,
      });
      if (r.ready) return;
      const p = await client.call<ProcessInfo>("POST", "/process/get", { id });
      if (p.status !== "running")
        throw new SandboxError(
          "sandbox.process_exited",
          `process ${id} exited (${p.exitCode}) before port ${port} was ready`,
        );
      if (Date.now() + interval > deadline)
        throw new SandboxError("sandbox.ready_timeout", `port ${port} was not ready within ${timeout}ms`);
      await new Promise((r) => setTimeout(r, interval));
    }
  }

  /** The jail's processes, then the stored records of processes of its earlier runs (§14.6). */
  async listProcesses(): Promise<ProcessInfo[]> {
    const { client, entry } = await this.#client();
    const r = await client.call<{ processes: ProcessInfo[] }>("GET", "/process/list");
    const live = new Set(r.processes.map((p) => p.id));
    const earlier = [...entry.state.processes.values()].filter((p) => !live.has(p.id)).map(info);
    return [...earlier, ...r.processes];
  }

  async getProcess(id: string): Promise<Process | null> {
    checkProcessId(id);
    const { client, entry } = await this.#client();
    try {
      return this.#handle(await client.call<ProcessInfo>("POST", "/process/get", { id }));
    } catch (e) {
      if (!SandboxError.is(e, "sandbox.process_not_found")) throw e;
      const rec = entry.state.processes.get(id);
      return rec ? this.#handle(info(rec)) : null;
    }
  }

  /** Kills the process and every process it started: `signal` (default SIGTERM), SIGKILL after 5 s. */
  async killProcess(id: string, signal?: string): Promise<void> {
    checkProcessId(id);
    if (signal !== undefined && !/^SIG[A-Z0-9]+$/.test(signal))
      throw new SandboxError("sandbox.invalid_argument", `unknown signal ${JSON.stringify(signal)}`);
    const { client, entry } = await this.#client();
    try {
      await client.call("POST", "/process/kill", { id, ...(signal ? { signal } : {}) });
    } catch (e) {
      // A record of an earlier run of the jail has nothing left to kill.
      if (!SandboxError.is(e, "sandbox.process_not_found") || !entry.state.processes.has(id)) throw e;
    }
  }

  async killAllProcesses(): Promise<number> {
    const { client } = await this.#client();
    return (await client.call<{ killed: number }>("POST", "/process/kill-all", {})).killed;
  }

  async cleanupCompletedProcesses(): Promise<number> {
    let n = 0;
    const { client, entry } = await this.#client();
    for (const p of await this.listProcesses())
      if (p.status !== "running") {
        try {
          await client.call("POST", "/process/forget", { id: p.id });
        } catch (e) {
          if (!SandboxError.is(e, "sandbox.process_not_found")) throw e;
        }
        if (entry.state.processes.delete(p.id))
          await persist(entry.state, { kind: "process-deleted", id: p.id });
        n++;
      }
    return n;
  }

  async getProcessLogs(id: string): Promise<{ stdout: string; stderr: string; processId: string }> {
    checkProcessId(id);
    const { client, entry } = await this.#client();
    try {
      const r = await client.call<{ stdout: string; stderr: string }>("POST", "/process/logs", { id });
      return { stdout: r.stdout, stderr: r.stderr, processId: id };
    } catch (e) {
      const rec = entry.state.processes.get(id);
      if (!SandboxError.is(e, "sandbox.process_not_found") || !rec) throw e;
      return { stdout: rec.stdout, stderr: rec.stderr, processId: id };
    }
  }

  async streamProcessLogs(
    processId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ReadableStream<Uint8Array>> {
    checkProcessId(processId);
    const { client } = await this.#client();
    await client.call("POST", "/process/get", { id: processId });
    const sessionId = this.#session;
    return asyncIterableToSSEStream(
      (async function* () {
        for await (const ev of client.events(
          "/process/logs",
          { id: processId, follow: true },
          options.signal,
        ))
          yield {
            type: ev.type,
            timestamp: ev.timestamp ?? now(),
            data: ev.data ?? "",
            processId,
            ...(sessionId ? { sessionId } : {}),
            ...(ev.exitCode !== undefined ? { exitCode: ev.exitCode } : {}),
          } as LogEvent;
      })(),
    );
  }

  // ------------------------------------------------------------ sessions

  async createSession(options: SessionOptions = {}): Promise<SandboxApi> {
    const id = options.id ?? `session_${randomBytes(6).toString("hex")}`;
    checkProcessId(id);
    const env = validateEnv(options.env);
    if (options.cwd !== undefined) validatePath(options.cwd, "cwd");
    const { client, entry } = await this.#client();
    const commandTimeoutMs = options.commandTimeoutMs
      ? validateTimeout(options.commandTimeoutMs, "commandTimeoutMs")
      : undefined;
    await client.call("POST", "/session/create", {
      id,
      ...(env ? { env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(commandTimeoutMs ? { commandTimeoutMs } : {}),
    });
    await saveSession(entry.state, {
      id,
      env: Object.fromEntries(
        Object.entries(env ?? {}).filter((e): e is [string, string] => e[1] !== undefined),
      ),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(commandTimeoutMs ? { commandTimeoutMs } : {}),
    });
    return this.withSession(id);
  }

  async getSession(id: string): Promise<SandboxApi> {
    checkProcessId(id);
    return this.withSession(id);
  }

  async deleteSession(id: string): Promise<{ success: boolean; sessionId: string }> {
    checkProcessId(id);
    const { client, entry } = await this.#client();
    await client.call("POST", "/session/delete", { id });
    if (entry.state.sessions.delete(id)) await persist(entry.state, { kind: "session-deleted", id });
    return { success: true, sessionId: id };
  }

  async setEnvVars(vars: Record<string, string | undefined>): Promise<void> {
    const env = validateEnv(vars, "vars") ?? {};
    const { client, entry } = await this.#client();
    const sessionId = this.#session ?? "__cairn_default";
    await client.call("POST", "/session/env", { sessionId, vars: env });
    const s = entry.state.sessions.get(sessionId) ?? { id: sessionId, env: {} };
    const merged = { ...s.env };
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined || v === null) delete merged[k];
      else merged[k] = String(v);
    }
    await saveSession(entry.state, { ...s, env: merged });
  }

  // ------------------------------------------------------------ files

  async writeFile(
    path: string,
    content: string | ReadableStream<Uint8Array> | Uint8Array,
    options: { encoding?: "utf-8" | "utf8" | "base64" } = {},
  ): Promise<{ success: boolean; path: string; timestamp: string; exitCode?: number }> {
    validatePath(path);
    let b64: string;
    if (typeof content === "string") {
      if (options.encoding === "base64") {
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(content.replace(/\s/g, "")))
          throw new SandboxError("sandbox.invalid_argument", "content is not valid base64");
        b64 = content.replace(/\s/g, "");
      } else b64 = Buffer.from(content, "utf8").toString("base64");
    } else if (content instanceof Uint8Array) b64 = Buffer.from(content).toString("base64");
    else if (content && typeof (content as ReadableStream).getReader === "function") {
      const parts: Buffer[] = [];
      for await (const c of content as unknown as AsyncIterable<Uint8Array>) parts.push(Buffer.from(c));
      b64 = Buffer.concat(parts).toString("base64");
    } else
      throw new SandboxError(
        "sandbox.invalid_argument",
        "content must be a string, bytes or a ReadableStream",
      );
    const { client, entry } = await this.#client();
    await checkBeforeWrite(entry, Math.floor((b64.length * 3) / 4));
    const r = await client.call<{ path: string }>("POST", "/file/write", { path, content: b64 });
    await checkAfter(entry);
    return { success: true, path: r.path, timestamp: now(), exitCode: 0 };
  }

  async readFile(
    path: string,
    options: { encoding?: "utf-8" | "utf8" | "base64" } = {},
  ): Promise<{
    success: boolean;
    path: string;
    content: string;
    timestamp: string;
    encoding: "utf-8" | "base64";
    isBinary: boolean;
    mimeType: string;
    size: number;
  }> {
    validatePath(path);
    const { client } = await this.#client();
    const enc = options.encoding === "utf8" ? "utf-8" : options.encoding;
    const r = await client.call<{
      path: string;
      content: string;
      encoding: "utf-8" | "base64";
      isBinary: boolean;
      mimeType: string;
      size: number;
    }>("POST", "/file/read", { path, ...(enc ? { encoding: enc } : {}) });
    return { success: true, timestamp: now(), ...r };
  }

  /** The file as an SSE body of `metadata`, `chunk` and `complete` events (`streamFile`, `collectFile`). */
  async readFileStream(path: string): Promise<ReadableStream<Uint8Array>> {
    const f = await this.readFile(path);
    const CHUNK = 64 * 1024;
    return asyncIterableToSSEStream(
      (async function* () {
        yield {
          type: "metadata",
          mimeType: f.mimeType,
          size: f.size,
          isBinary: f.isBinary,
          encoding: f.encoding,
        };
        for (let i = 0; i < f.content.length; i += CHUNK)
          yield { type: "chunk", data: f.content.slice(i, i + CHUNK) };
        yield { type: "complete", bytesRead: f.size };
      })(),
    );
  }

  async mkdir(
    path: string,
    options: { recursive?: boolean } = {},
  ): Promise<{ success: boolean; path: string; recursive: boolean; timestamp: string }> {
    validatePath(path);
    const { client } = await this.#client();
    const r = await client.call<{ path: string }>("POST", "/file/mkdir", {
      path,
      recursive: !!options.recursive,
    });
    return { success: true, path: r.path, recursive: !!options.recursive, timestamp: now() };
  }

  async deleteFile(path: string): Promise<{ success: boolean; path: string; timestamp: string }> {
    validatePath(path);
    const { client } = await this.#client();
    const r = await client.call<{ path: string }>("POST", "/file/delete", { path });
    return { success: true, path: r.path, timestamp: now() };
  }

  async renameFile(
    oldPath: string,
    newPath: string,
  ): Promise<{ success: boolean; path: string; newPath: string; timestamp: string }> {
    validatePath(oldPath, "oldPath");
    validatePath(newPath, "newPath");
    const { client } = await this.#client();
    const r = await client.call<{ path: string; newPath: string }>("POST", "/file/rename", {
      from: oldPath,
      to: newPath,
    });
    return { success: true, ...r, timestamp: now() };
  }

  async moveFile(
    sourcePath: string,
    destinationPath: string,
  ): Promise<{ success: boolean; path: string; newPath: string; timestamp: string }> {
    return this.renameFile(sourcePath, destinationPath);
  }

  async listFiles(
    path: string,
    options: { recursive?: boolean; includeHidden?: boolean } = {},
  ): Promise<{ success: boolean; path: string; files: FileInfo[]; count: number; timestamp: string }> {
    validatePath(path);
    const { client } = await this.#client();
    const r = await client.call<{ path: string; files: FileInfo[]; count: number }>("POST", "/file/list", {
      path,
      recursive: !!options.recursive,
      includeHidden: !!options.includeHidden,
    });
    return { success: true, ...r, timestamp: now() };
  }

  async exists(path: string): Promise<{ success: boolean; exists: boolean; timestamp: string }> {
    validatePath(path);
    const { client } = await this.#client();
    const r = await client.call<{ exists: boolean }>("POST", "/file/exists", { path });
    return { success: true, exists: r.exists, timestamp: now() };
  }

  // ------------------------------------------------------------ git

  async gitCheckout(
    repoUrl: string,
    options: {
      branch?: string;
      targetDir?: string;
      depth?: number;
      cloneTimeoutMs?: number;
      stream?: boolean;
    } = {},
  ): Promise<{ success: boolean; repoUrl: string; branch: string; targetDir: string; timestamp: string }> {
    let url: URL;
    try {
      url = new URL(repoUrl);
    } catch {
      throw new SandboxError("sandbox.invalid_argument", `repoUrl is not a URL: ${JSON.stringify(repoUrl)}`);
    }
    if (!["http:", "https:", "git:", "ssh:"].includes(url.protocol))
      throw new SandboxError(
        "sandbox.invalid_argument",
        `repoUrl must be http(s), git or ssh (got ${url.protocol})`,
      );
    if (options.branch !== undefined && !/^[\w./-]+$/.test(options.branch))
      throw new SandboxError(
        "sandbox.invalid_argument",
        `invalid branch name ${JSON.stringify(options.branch)}`,
      );
    const name = (url.pathname.split("/").filter(Boolean).pop() ?? "repo").replace(/\.git$/, "") || "repo";
    const targetDir = validatePath(options.targetDir ?? `/workspace/${name}`, "targetDir");
    const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const depth = options.depth !== undefined ? ` --depth ${Math.max(1, Math.floor(options.depth))}` : "";
    const branch = options.branch ? ` --branch ${q(options.branch)}` : "";
    const r = await this.#run(
      `git -c http.lowSpeedLimit=1000 -c http.lowSpeedTime=30 clone --quiet${depth}${branch} -- ${q(repoUrl)} ${q(targetDir)} && git -C ${q(targetDir)} rev-parse --abbrev-ref HEAD`,
      { subshell: true },
      { timeout: options.cloneTimeoutMs ?? 300_000 },
    );
    if (!r.success)
      throw new SandboxError(
        "sandbox.git_failed",
        `git clone of ${repoUrl} failed (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 2000)}`,
      );
    return {
      success: true,
      repoUrl,
      branch: r.stdout.trim() || (options.branch ?? ""),
      targetDir,
      timestamp: now(),
    };
  }

  // ------------------------------------------------------------ ports

  async exposePort(
    port: number,
    options: { name?: string; hostname?: string; token?: string } = {},
  ): Promise<{ url: string; port: number; name?: string }> {
    validatePort(port);
    if (options.token !== undefined && !/^[a-z0-9_]{1,16}$/.test(options.token))
      throw new SandboxError(
        "sandbox.invalid_argument",
        "a port token must be 1–16 characters of a-z, 0-9 and _",
      );
    const { entry } = await this.#client();
    const token = options.token ?? randomBytes(12).toString("base64url").toLowerCase();
    for (const [p, t] of entry.ports)
      if (p !== port && t.token === token)
        throw new SandboxError("sandbox.invalid_argument", `token already used for port ${p}`);
    entry.ports.set(port, { token, ...(options.name ? { name: options.name } : {}) });
    await persist(entry.state, {
      kind: "port",
      port: { port, token, ...(options.name ? { name: options.name } : {}) },
    });
    this.#onPorts?.();
    const host = options.hostname ?? "localhost";
    return {
      url: previewUrl(host, this.id, port, token),
      port,
      ...(options.name ? { name: options.name } : {}),
    };
  }

  async unexposePort(port: number): Promise<void> {
    validatePort(port);
    const { entry } = await this.#client();
    if (entry.ports.delete(port)) await persist(entry.state, { kind: "port-deleted", port });
    this.#onPorts?.();
  }

  async getExposedPorts(hostname = "localhost"): Promise<{ url: string; port: number; name?: string }[]> {
    const { entry } = await this.#client();
    return [...entry.ports].map(([port, t]) => ({
      url: previewUrl(hostname, this.id, port, t.token),
      port,
      ...(t.name ? { name: t.name } : {}),
    }));
  }

  async isPortExposed(port: number): Promise<boolean> {
    validatePort(port);
    const { entry } = await this.#client();
    return entry.ports.has(port);
  }

  // ------------------------------------------------------------ lifecycle

  async ping(): Promise<string> {
    const { client } = await this.#client();
    return client.call<string>("GET", "/ping") as unknown as Promise<string>;
  }

  /** Stops the jail, kills every process and removes the sandbox's directory. */
  async destroy(): Promise<void> {
    await this.#onDestroy();
  }
}

/** The stored fields of a process's info. */
function stored(p: ProcessInfo): Omit<StoredProcess, "stdout" | "stderr"> {
  return {
    id: p.id,
    pid: p.pid,
    command: p.command,
    status: p.status,
    startTime: String(p.startTime),
    ...(p.endTime ? { endTime: String(p.endTime) } : {}),
    ...(p.exitCode !== undefined && p.exitCode !== null ? { exitCode: p.exitCode } : {}),
    ...(p.sessionId ? { sessionId: p.sessionId } : {}),
  };
}

/** A stored record as the API's `ProcessInfo`. */
function info(p: StoredProcess): ProcessInfo {
  const { stdout: _o, stderr: _e, ...rest } = p;
  return rest as unknown as ProcessInfo;
}

function record(entry: JailEntry, command: string, exitCode: number | null, started: number): void {
  entry.commands.push({
    command: command.slice(0, 500),
    exitCode,
    at: new Date(started).toISOString(),
    durationMs: Date.now() - started,
  });
  if (entry.commands.length > 50) entry.commands.shift();
}

/** `http://<host>/_cairn/sandbox/<id>/ports/<port>/<token>/` (the path form; see `proxyToSandbox`). */
export function previewUrl(host: string, id: string, port: number, token: string): string {
  const scheme = /^(localhost|127\.|\[::1\])/.test(host) ? "http" : "https";
  return `${scheme}://${host}/_cairn/sandbox/${encodeURIComponent(id)}/ports/${port}/${token}/`;
}

/** Stops a jail and removes its directory (`destroy()`). */
export async function destroyJail(entry: JailEntry | undefined, key: string): Promise<void> {
  if (entry) await stopJail(entry.key, false);
  await rm(key, { recursive: true, force: true });
}

export { parseSSEStream };
