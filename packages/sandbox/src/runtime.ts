/**
 * The jails of this process: one per sandbox directory, shared by every copy of this module
 * (kept on `globalThis`), started on first use, stopped after `sleepAfter` of idleness unless
 * `keepAlive`, and all killed when the process exits (bwrap's `--die-with-parent` covers SIGKILL).
 */
import { join, resolve } from "node:path";
import { driverFor, type IsolationName, type Jail, type Probe } from "./driver.ts";
import { SandboxError } from "./errors.ts";
import { type ResolvedLimits, resolveLimits, type SandboxLimitsConfig } from "./limits.ts";
import {
  restoreState,
  type SandboxState,
  type StateChange,
  type StateHolder,
  settleBeforeStop,
} from "./state.ts";

/** Settings of the sandboxes of a process (`configureSandboxes`, or `CAIRN_SANDBOX_*` variables). */
export interface SandboxConfig {
  /** Where sandbox directories live (default `<cwd>/.cairn/sandboxes`, or `CAIRN_SANDBOX_DIR`). */
  dir?: string;
  /** `bwrap` (default) or `none` (`CAIRN_SANDBOX_ISOLATION`). */
  isolation?: IsolationName;
  /** `none` (default) or `egress` (`CAIRN_SANDBOX_NETWORK`). */
  network?: "none" | "egress";
  /** Egress destinations, `host:port` (`CAIRN_SANDBOX_ALLOW`, comma-separated). */
  allow?: string[];
  /** Limits (`CAIRN_SANDBOX_MEMORY`, `CAIRN_SANDBOX_PIDS`, `CAIRN_SANDBOX_CPU`, `CAIRN_SANDBOX_TMP`, `CAIRN_SANDBOX_DISK`). */
  limits?: SandboxLimitsConfig;
  /** Warnings (isolation `none`, Dockerfile images); default `console.warn`. */
  warn?: (message: string) => void;
  /** A directory used as the root file system (its `usr/` replaces the host's). */
  root?: string;
  /** Where bwrap is (default `/usr/bin/bwrap`, or `CAIRN_BWRAP`). */
  bwrap?: string;
}

export interface ResolvedConfig {
  dir: string;
  isolation: IsolationName;
  network: "none" | "egress";
  allow: string[];
  limits: ResolvedLimits;
  warn: (message: string) => void;
  root?: string;
  bwrap?: string;
}

export interface JailEntry {
  key: string;
  id: string;
  dir: string;
  jail: Jail;
  startedAt: number;
  lastActivity: number;
  keepAlive: boolean;
  sleepAfterMs: number;
  config: ResolvedConfig;
  timer?: NodeJS.Timeout;
  /** Exposed ports and their tokens (port → { token, name }). */
  ports: Map<number, { token: string; name?: string }>;
  /** Recent commands (for operators), newest last, at most 50. */
  commands: { command: string; exitCode: number | null; at: string; durationMs: number }[];
  /** Calls in flight (a long command is activity: the idle stop waits for it). */
  inflight: number;
  /** The stored state's host copy and its writer (SPEC §14.6, `state.ts`). */
  state: StateHolder;
  /** Bytes the sandbox's files used at the last measurement (`disk.ts`). */
  diskUsed?: number;
}

interface Runtime {
  config: SandboxConfig;
  jails: Map<string, JailEntry>;
  starting: Map<string, Promise<JailEntry>>;
}

const SLOT = Symbol.for("cairn.sandbox.runtime");
const rt: Runtime =
  ((globalThis as Record<symbol, unknown>)[SLOT] as Runtime | undefined) ??
  ((globalThis as Record<symbol, unknown>)[SLOT] = {
    config: {},
    jails: new Map(),
    starting: new Map(),
  } as Runtime);

/** Sets the sandboxes' settings for this process (merged over the current ones). */
export function configureSandboxes(config: SandboxConfig): void {
  rt.config = { ...rt.config, ...config };
}

/** The settings in effect: `configureSandboxes`, then `CAIRN_SANDBOX_*`, then defaults. */
export function sandboxConfig(): ResolvedConfig {
  const c = rt.config;
  const env = process.env;
  const isolation = (c.isolation ?? env.CAIRN_SANDBOX_ISOLATION ?? "bwrap") as IsolationName;
  if (isolation !== "bwrap" && isolation !== "none")
    throw new SandboxError(
      "sandbox.invalid_argument",
      `isolation must be "bwrap" or "none" (got ${JSON.stringify(isolation)})`,
    );
  const network = (c.network ?? env.CAIRN_SANDBOX_NETWORK ?? "none") as "none" | "egress";
  if (network !== "none" && network !== "egress")
    throw new SandboxError(
      "sandbox.invalid_argument",
      `network must be "none" or "egress" (got ${JSON.stringify(network)})`,
    );
  const allow =
    c.allow ??
    (env.CAIRN_SANDBOX_ALLOW
      ? env.CAIRN_SANDBOX_ALLOW.split(",")
          .map((s) => s.trim())
          .filter(Boolean)
      : []);
  for (const a of allow)
    if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5}|\*)$/.test(a))
      throw new SandboxError("sandbox.invalid_argument", `allow: ${JSON.stringify(a)} is not host:port`);
  const limits = resolveLimits({
    ...(env.CAIRN_SANDBOX_MEMORY ? { memory: env.CAIRN_SANDBOX_MEMORY } : {}),
    ...(env.CAIRN_SANDBOX_PIDS ? { pids: Number(env.CAIRN_SANDBOX_PIDS) } : {}),
    ...(env.CAIRN_SANDBOX_CPU ? { cpu: Number(env.CAIRN_SANDBOX_CPU) } : {}),
    ...(env.CAIRN_SANDBOX_TMP ? { tmp: env.CAIRN_SANDBOX_TMP } : {}),
    ...(env.CAIRN_SANDBOX_DISK ? { disk: env.CAIRN_SANDBOX_DISK } : {}),
    ...c.limits,
  });
  return {
    dir: resolve(c.dir ?? env.CAIRN_SANDBOX_DIR ?? join(process.cwd(), ".cairn", "sandboxes")),
    isolation,
    network,
    allow,
    limits,
    warn: c.warn ?? ((m) => console.warn(m)),
    ...(c.root ? { root: c.root } : {}),
    ...((c.bwrap ?? env.CAIRN_BWRAP) ? { bwrap: (c.bwrap ?? env.CAIRN_BWRAP) as string } : {}),
  };
}

/** The isolation probe of the configured driver. */
export function probeIsolation(): Promise<Probe> {
  const c = sandboxConfig();
  return driverFor(c.isolation, c.warn, c.bwrap).probe();
}

export function jailKey(dir: string, id: string): string {
  return join(dir, id);
}

export function findJail(key: string): JailEntry | undefined {
  return rt.jails.get(key);
}

export function listJails(): JailEntry[] {
  return [...rt.jails.values()];
}

/** The running jail of sandbox `id`, started if needed. */
export function ensureJail(
  id: string,
  opts: {
    keepAlive?: boolean;
    sleepAfterMs: number;
    limits?: SandboxLimitsConfig;
    startTimeoutMs?: number;
    /** What the Sandbox object stored: a starting jail takes it back. */
    stored?: SandboxState;
    /** Where changes are written (the object's storage). */
    persist?: (change: StateChange) => Promise<void>;
  },
): Promise<JailEntry> {
  const config = sandboxConfig();
  const key = jailKey(config.dir, id);
  const running = rt.jails.get(key);
  if (running) {
    touch(running);
    return Promise.resolve(running);
  }
  let starting = rt.starting.get(key);
  if (!starting) {
    starting = (async () => {
      const driver = driverFor(config.isolation, config.warn, config.bwrap);
      const limits = opts.limits
        ? { ...config.limits, ...resolveLimits({ ...config.limits, ...opts.limits }) }
        : config.limits;
      const jail = await driver.create({
        id,
        dir: key,
        limits,
        network: config.network,
        allow: config.allow,
        ...(config.root ? { root: config.root } : {}),
        ...(opts.startTimeoutMs ? { startTimeoutMs: opts.startTimeoutMs } : {}),
      });
      const entry: JailEntry = {
        key,
        id,
        dir: key,
        jail,
        startedAt: Date.now(),
        lastActivity: Date.now(),
        keepAlive: !!opts.keepAlive,
        sleepAfterMs: opts.sleepAfterMs,
        config: { ...config, limits },
        ports: new Map(),
        commands: [],
        inflight: 0,
        state: {
          sessions: new Map(),
          processes: new Map(),
          ...(opts.persist ? { persist: opts.persist } : {}),
          warn: config.warn,
        },
      };
      if (opts.stored) {
        try {
          await restoreState(entry.state, jail.client, opts.stored, entry.ports);
        } catch (e) {
          await jail.destroy();
          throw e;
        }
      }
      rt.jails.set(key, entry);
      void jail.exited.then(() => {
        if (rt.jails.get(key) === entry) rt.jails.delete(key);
        clearTimeout(entry.timer);
      });
      schedule(entry);
      return entry;
    })().finally(() => rt.starting.delete(key));
    rt.starting.set(key, starting);
  }
  return starting;
}

/** Marks activity (postpones the idle stop). */
export function touch(entry: JailEntry): void {
  entry.lastActivity = Date.now();
}

function schedule(entry: JailEntry): void {
  clearTimeout(entry.timer);
  if (entry.keepAlive) return;
  const due = entry.lastActivity + entry.sleepAfterMs - Date.now();
  entry.timer = setTimeout(
    () => {
      if (entry.inflight === 0 && Date.now() - entry.lastActivity >= entry.sleepAfterMs)
        void stopJail(entry.key);
      else schedule(entry);
    },
    Math.max(10, due),
  );
  entry.timer.unref();
}

export function setKeepAlive(entry: JailEntry, keepAlive: boolean, sleepAfterMs?: number): void {
  entry.keepAlive = keepAlive;
  if (sleepAfterMs) entry.sleepAfterMs = sleepAfterMs;
  schedule(entry);
}

/** How long a stopping jail may take to hand over its last process records. */
const SETTLE_TIMEOUT_MS = 2000;

/**
 * Stops a sandbox's jail (its workspace stays). `settle` (default true): first store the last
 * records and logs of its processes; `destroy()` skips it (everything stored goes anyway).
 */
export async function stopJail(key: string, settle = true): Promise<void> {
  const entry = rt.jails.get(key);
  if (!entry) return;
  rt.jails.delete(key);
  clearTimeout(entry.timer);
  if (settle) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      settleBeforeStop(entry.state, entry.jail.client),
      new Promise((r) => {
        timer = setTimeout(r, SETTLE_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
  }
  await entry.jail.destroy();
}

/** Stops every jail of this process (or those of sandboxes under `under`), storing their last state. */
export async function stopAllJails(under?: string): Promise<void> {
  const dir = under === undefined ? undefined : resolve(under);
  await Promise.all(
    [...rt.jails.values()]
      .filter((e) => dir === undefined || e.dir.startsWith(`${dir}/`))
      .map((e) => stopJail(e.key)),
  );
}
