/**
 * `ctx.container` of the Sandbox SDK 1.0 direction (SPEC §14.1) for any Durable Object class bound
 * in wrangler's `containers[]`: `running`, `start()`, `exec(argv, options)` → `ExecProcess`,
 * `destroy()`, on the same jail as the sandbox of that object. `exec` runs argv with no implicit
 * shell, in `/`, and nothing carries over between calls; stdin is streamed (a `ReadableStream`, or
 * `"pipe"` for `ExecProcess.stdin`), output comes as bytes, and `pty` gives the command a terminal
 * of its own (`script` inside the jail; `resize` sets its size).
 */
import type { DurableObjectClass } from "@cairn/objects";
import { SandboxError } from "./errors.ts";
import {
  ensureJail,
  findJail,
  type JailEntry,
  jailKey,
  probeIsolation,
  sandboxConfig,
  stopJail,
} from "./runtime.ts";
import { validateEnv, validateSandboxId } from "./validate.ts";

export interface ContainerExecOptions {
  /** The command's stdin: a stream Cairn reads, or `"pipe"` for `ExecProcess.stdin`. */
  stdin?: ReadableStream<Uint8Array> | "pipe";
  stdout?: "pipe" | "ignore";
  stderr?: "pipe" | "ignore" | "combined";
  cwd?: string;
  env?: Record<string, string>;
  /** Only the jail's user (`"user"`, `1000`) is accepted: every command of a jail runs as it. */
  user?: string | number;
  signal?: AbortSignal;
  /** A terminal of its own (`true`, or its size); stdout and stderr come merged, as on a terminal. */
  pty?: boolean | { cols?: number; rows?: number };
}

export interface ExecProcess {
  readonly pid: number | undefined;
  readonly isPty: boolean;
  /** With `stdin: "pipe"`: write to it, close it for end of input. */
  readonly stdin: WritableStream<Uint8Array> | null;
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
  readonly exitCode: Promise<number>;
  output(): Promise<{ stdout: ArrayBuffer; stderr: ArrayBuffer; exitCode: number }>;
  kill(signal?: string): void;
  /** The terminal's size (`pty` only). */
  resize(cols: number, rows: number): Promise<void>;
}

export interface Container {
  readonly running: boolean;
  start(options?: { sleepAfter?: number }): Promise<void>;
  exec(argv: string[], options?: ContainerExecOptions): Promise<ExecProcess>;
  destroy(): Promise<void>;
}

function containerId(ctx: { id: { toString(): string; name?: string } }): string {
  const name = ctx.id.name;
  try {
    if (name) return validateSandboxId(name);
  } catch {}
  return `c-${ctx.id.toString().slice(0, 24)}`;
}

/** The `ctx.container` of one object. */
export function containerFor(ctx: { id: { toString(): string; name?: string } }): Container {
  const id = containerId(ctx);
  const key = () => jailKey(sandboxConfig().dir, id);
  const entry = async (): Promise<JailEntry> => {
    const probe = await probeIsolation();
    if (!probe.ok) throw new SandboxError("sandbox.isolation_unavailable", probe.reason);
    return ensureJail(id, { sleepAfterMs: 10 * 60_000 });
  };
  return {
    get running() {
      return findJail(key()) !== undefined;
    },
    async start() {
      await entry();
    },
    async destroy() {
      await stopJail(key());
    },
    async exec(argv, options = {}) {
      if (
        !Array.isArray(argv) ||
        argv.length === 0 ||
        !argv.every((a) => typeof a === "string" && !a.includes("\0"))
      )
        throw new SandboxError(
          "sandbox.invalid_argument",
          "exec needs argv: a non-empty array of strings without NUL",
        );
      const stdinOpt = options.stdin;
      if (
        stdinOpt !== undefined &&
        stdinOpt !== "pipe" &&
        typeof (stdinOpt as ReadableStream | undefined)?.getReader !== "function"
      )
        throw new SandboxError("sandbox.invalid_argument", 'exec: stdin must be a ReadableStream or "pipe"');
      if (options.user !== undefined && options.user !== "user" && options.user !== 1000)
        throw new SandboxError(
          "sandbox.invalid_argument",
          `exec: user ${JSON.stringify(options.user)}: every command of a sandbox runs as its user ("user", uid 1000)`,
        );
      const size = typeof options.pty === "object" && options.pty ? options.pty : {};
      for (const [k, v] of Object.entries(size))
        if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 10_000))
          throw new SandboxError("sandbox.invalid_argument", `exec: pty.${k} must be an integer 1–10000`);
      const isPty = !!options.pty;
      const env = validateEnv(options.env);
      const e = await entry();
      const client = e.jail.client;
      // stdin: the given stream, or a pipe fed by ExecProcess.stdin.
      let input: AsyncIterable<Uint8Array> | undefined;
      let stdin: WritableStream<Uint8Array> | null = null;
      if (stdinOpt === "pipe") {
        const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
        stdin = writable;
        input = readable as unknown as AsyncIterable<Uint8Array>;
      } else if (stdinOpt) input = stdinOpt as unknown as AsyncIterable<Uint8Array>;
      const out: Uint8Array[] = [];
      const err: Uint8Array[] = [];
      let outCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
      let errCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
      const stdout =
        options.stdout === "ignore"
          ? null
          : new ReadableStream<Uint8Array>({ start: (c) => void (outCtl = c) });
      const combined = options.stderr === "combined" || isPty;
      const stderr =
        options.stderr === "ignore" || combined
          ? null
          : new ReadableStream<Uint8Array>({ start: (c) => void (errCtl = c) });
      let pid: number | undefined;
      let started: (e?: unknown) => void = () => {};
      let startFailed: unknown;
      const ready = new Promise<void>((r) => {
        started = (x) => {
          startFailed ??= x;
          r();
        };
      });
      const ac = new AbortController();
      options.signal?.addEventListener("abort", () => ac.abort());
      const exitCode = (async () => {
        let code = -1;
        try {
          for await (const ev of client.execIo(
            {
              argv,
              cwd: options.cwd ?? "/",
              ...(env ? { env } : {}),
              ...(isPty ? { pty: true, ...size } : {}),
            },
            input,
            ac.signal,
          )) {
            if (ev.type === "start") {
              pid = ev.pid;
              started();
            } else if (ev.type === "stdout" || (ev.type === "stderr" && combined)) {
              const b = new Uint8Array(Buffer.from(ev.b64 ?? "", "base64"));
              out.push(b);
              outCtl?.enqueue(b);
            } else if (ev.type === "stderr") {
              const b = new Uint8Array(Buffer.from(ev.b64 ?? "", "base64"));
              err.push(b);
              errCtl?.enqueue(b);
            } else if (ev.type === "complete") code = ev.exitCode ?? -1;
          }
        } catch (x) {
          started(x);
          throw x;
        } finally {
          started();
          outCtl?.close();
          errCtl?.close();
        }
        return code;
      })();
      exitCode.catch(() => {});
      await ready;
      if (startFailed) throw SandboxError.from(startFailed);
      const buf = (parts: Uint8Array[]) => {
        const b = Buffer.concat(parts);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      };
      return {
        get pid() {
          return pid;
        },
        isPty,
        stdin,
        stdout,
        stderr,
        exitCode,
        async output() {
          const code = await exitCode;
          return { stdout: buf(out), stderr: buf(err), exitCode: code };
        },
        kill(signal?: string) {
          if (signal !== undefined && !/^SIG[A-Z0-9]+$/.test(signal))
            throw new SandboxError("sandbox.invalid_argument", `unknown signal ${JSON.stringify(signal)}`);
          if (pid === undefined) return ac.abort();
          void client
            .call("POST", "/exec-io/kill", { pid, ...(signal ? { signal } : {}) })
            .catch(() => ac.abort());
        },
        async resize(cols: number, rows: number) {
          if (!isPty) throw new SandboxError("sandbox.invalid_argument", "resize: the command has no pty");
          for (const [k, v] of [
            ["cols", cols],
            ["rows", rows],
          ] as const)
            if (!Number.isInteger(v) || v < 1 || v > 10_000)
              throw new SandboxError("sandbox.invalid_argument", `resize: ${k} must be an integer 1–10000`);
          await client.call("POST", "/exec-io/resize", { pid, cols, rows });
        },
      } satisfies ExecProcess;
    },
  };
}

/** Makes `ctx.container` available to a Durable Object class bound in `containers[]`. */
export function withContainer<T extends DurableObjectClass>(cls: T): T {
  const Wrapped = class extends (cls as DurableObjectClass) {
    constructor(ctx: any, env: any) {
      if (ctx && ctx.container === undefined)
        Object.defineProperty(ctx, "container", { value: containerFor(ctx), enumerable: false });
      super(ctx, env);
    }
  };
  Object.defineProperty(Wrapped, "name", { value: cls.name });
  return Wrapped as unknown as T;
}
