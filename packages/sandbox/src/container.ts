/**
 * `ctx.container` of the Sandbox SDK 1.0 direction (SPEC §14.1) for any Durable Object class bound
 * in wrangler's `containers[]`: `running`, `start()`, `exec(argv, options)` → `ExecProcess`,
 * `destroy()`, on the same jail as the sandbox of that object. `exec` runs argv with no implicit
 * shell, in `/`, and nothing carries over between calls. `stdin` other than none is not supported yet.
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
  stdin?: ReadableStream | "pipe";
  stdout?: "pipe" | "ignore";
  stderr?: "pipe" | "ignore" | "combined";
  cwd?: string;
  env?: Record<string, string>;
  signal?: AbortSignal;
}

export interface ExecProcess {
  readonly pid: number | undefined;
  readonly isPty: false;
  readonly stdin: null;
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
  readonly exitCode: Promise<number>;
  output(): Promise<{ stdout: ArrayBuffer; stderr: ArrayBuffer; exitCode: number }>;
  kill(signal?: string): void;
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
      if (options.stdin !== undefined)
        throw new SandboxError("sandbox.invalid_argument", "exec: stdin is not supported by Cairn yet");
      const env = validateEnv(options.env);
      const e = await entry();
      const enc = new TextEncoder();
      const out: Uint8Array[] = [];
      const err: Uint8Array[] = [];
      let outCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
      let errCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
      const stdout =
        options.stdout === "ignore"
          ? null
          : new ReadableStream<Uint8Array>({ start: (c) => void (outCtl = c) });
      const combined = options.stderr === "combined";
      const stderr =
        options.stderr === "ignore" || combined
          ? null
          : new ReadableStream<Uint8Array>({ start: (c) => void (errCtl = c) });
      let pid: number | undefined;
      let started: () => void = () => {};
      const ready = new Promise<void>((r) => (started = r));
      const ac = new AbortController();
      options.signal?.addEventListener("abort", () => ac.abort());
      const exitCode = (async () => {
        let code = -1;
        try {
          for await (const ev of e.jail.client.events(
            "/exec",
            { command: argv[0], argv: argv.slice(1), cwd: options.cwd ?? "/", ...(env ? { env } : {}) },
            ac.signal,
          )) {
            if (ev.type === "start") {
              pid = ev.pid;
              started();
            } else if (ev.type === "stdout" || (ev.type === "stderr" && combined)) {
              const b = enc.encode(ev.data ?? "");
              out.push(b);
              outCtl?.enqueue(b);
            } else if (ev.type === "stderr") {
              const b = enc.encode(ev.data ?? "");
              err.push(b);
              errCtl?.enqueue(b);
            } else if (ev.type === "complete") code = ev.exitCode ?? -1;
          }
        } finally {
          started();
          outCtl?.close();
          errCtl?.close();
        }
        return code;
      })();
      exitCode.catch(() => {});
      await ready;
      const buf = (parts: Uint8Array[]) => {
        const b = Buffer.concat(parts);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      };
      return {
        get pid() {
          return pid;
        },
        isPty: false,
        stdin: null,
        stdout,
        stderr,
        exitCode,
        async output() {
          const code = await exitCode;
          return { stdout: buf(out), stderr: buf(err), exitCode: code };
        },
        kill() {
          ac.abort();
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
