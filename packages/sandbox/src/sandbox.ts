/**
 * `Sandbox` (the Durable Object class a project exports), `getSandbox` and `proxyToSandbox`, as
 * `@cloudflare/sandbox` 0.12 has them (SPEC §14.1).
 *
 * The object keeps the sandbox's options in its SQLite storage and owns the jail's lifecycle; the
 * jail itself lives in this process's registry (`runtime.ts`), so it survives the object being
 * unloaded while idle, and stops after `sleepAfter` (unless `keepAlive`) or with the process.
 * `getSandbox` returns a handle whose calls run in this process against the jail (callbacks,
 * streams and `Process` handles cannot cross an RPC), after one RPC to the object that starts it.
 */
import { DurableObject, type DurableObjectState } from "@cairn/objects";
import { destroyJail, type ExecOptions, type ExecResult, type LegacyExecEvent, SandboxApi } from "./api.ts";
import { SandboxError } from "./errors.ts";
import type { SandboxLimitsConfig } from "./limits.ts";
import {
  ensureJail,
  findJail,
  type JailEntry,
  jailKey,
  probeIsolation,
  sandboxConfig,
  setKeepAlive,
} from "./runtime.ts";
import type { SandboxState, StateChange } from "./state.ts";
import { parseDuration, validateSandboxId } from "./validate.ts";

export interface SandboxOptions {
  sleepAfter?: string | number;
  keepAlive?: boolean;
  enableDefaultSession?: boolean;
  normalizeId?: boolean;
  containerTimeouts?: { instanceGetTimeoutMS?: number; portReadyTimeoutMS?: number; waitIntervalMS?: number };
  /** Accepted and ignored (Cairn talks to the jail over its Unix socket). */
  transport?: "http" | "websocket" | "rpc";
  labels?: Record<string, string>;
  /** Cairn: limits of this sandbox (`memory`, `pids`, `cpu`, `tmp`, `cpuSeconds`). */
  limits?: SandboxLimitsConfig;
}

interface StoredOptions {
  id: string;
  sleepAfterMs: number;
  keepAlive: boolean;
  enableDefaultSession: boolean;
  startTimeoutMs?: number;
  limits?: SandboxLimitsConfig;
}

const DEFAULT_SLEEP_AFTER_MS = 10 * 60_000;

function storedOptions(id: string, o: SandboxOptions = {}): StoredOptions {
  return {
    id,
    sleepAfterMs: parseDuration(o.sleepAfter, DEFAULT_SLEEP_AFTER_MS),
    keepAlive: !!o.keepAlive,
    enableDefaultSession: o.enableDefaultSession ?? true,
    ...(o.containerTimeouts?.instanceGetTimeoutMS
      ? { startTimeoutMs: o.containerTimeouts.instanceGetTimeoutMS }
      : {}),
    ...(o.limits ? { limits: o.limits } : {}),
  };
}

/** The session implicit calls use: `sandbox-<id>`, or none with `enableDefaultSession: false`. */
const defaultSession = (o: StoredOptions) => (o.enableDefaultSession ? `sandbox-${o.id}` : undefined);

async function start(
  o: StoredOptions,
  state?: { stored: SandboxState; persist: (c: StateChange) => Promise<void> },
): Promise<JailEntry> {
  const probe = await probeIsolation();
  if (!probe.ok) throw new SandboxError("sandbox.isolation_unavailable", probe.reason);
  return ensureJail(o.id, {
    keepAlive: o.keepAlive,
    sleepAfterMs: o.sleepAfterMs,
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.startTimeoutMs ? { startTimeoutMs: o.startTimeoutMs } : {}),
    ...(state ?? {}),
  });
}

/** Rows of the stored state (SPEC §14.6): `kind` session | port | process, keyed by id or port. */
const STATE_TABLE = "cairn_sandbox_state";

/**
 * The sandbox Durable Object (`export { Sandbox } from "@cloudflare/sandbox"`). Every method of
 * the API is also a method of the object, so a subclass can call `this.exec(…)`.
 */
export class Sandbox<Env = unknown> extends DurableObject<Env> {
  #options: StoredOptions | undefined;
  #api: SandboxApi | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS cairn_sandbox (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    );
    ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS ${STATE_TABLE} (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, key))`,
    );
    const row = ctx.storage.sql.exec("SELECT value FROM cairn_sandbox WHERE key = 'options'").toArray()[0];
    if (row) this.#options = JSON.parse(String(row.value)) as StoredOptions;
  }

  #opts(): StoredOptions {
    if (this.#options) return this.#options;
    const name = (this.ctx.id as { name?: string }).name;
    this.#options = storedOptions(validateSandboxId(name ?? this.ctx.id.toString().slice(0, 16)));
    return this.#options;
  }

  /** The stored sessions, ports and process records. */
  #stored(): SandboxState {
    const state: SandboxState = { sessions: [], ports: [], processes: [] };
    for (const r of this.ctx.storage.sql.exec(`SELECT kind, value FROM ${STATE_TABLE} ORDER BY rowid`)) {
      const v = JSON.parse(String(r.value));
      if (r.kind === "session") state.sessions.push(v);
      else if (r.kind === "port") state.ports.push(v);
      else if (r.kind === "process") state.processes.push(v);
    }
    return state;
  }

  /** Writes one change of the stored state (from the jail's entry, through `getSandbox`'s stub). */
  async __cairnSave(change: StateChange): Promise<void> {
    const sql = this.ctx.storage.sql;
    const put = (kind: string, key: string | number, value: unknown) =>
      sql.exec(
        `INSERT INTO ${STATE_TABLE} (kind, key, value) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value`,
        kind,
        String(key),
        JSON.stringify(value),
      );
    const del = (kind: string, key: string | number) =>
      sql.exec(`DELETE FROM ${STATE_TABLE} WHERE kind = ? AND key = ?`, kind, String(key));
    switch (change.kind) {
      case "session":
        return void put("session", change.session.id, change.session);
      case "session-deleted":
        return void del("session", change.id);
      case "port":
        return void put("port", change.port.port, change.port);
      case "port-deleted":
        return void del("port", change.port);
      case "process":
        return void put("process", change.process.id, change.process);
      case "process-deleted":
        return void del("process", change.id);
    }
  }

  #state() {
    return { stored: this.#stored(), persist: (c: StateChange) => this.__cairnSave(c) };
  }

  /** Settles the options of this sandbox (called by `getSandbox`); starts its jail; returns its key. */
  async __cairnStart(
    options: SandboxOptions & { id: string },
  ): Promise<{ key: string; sessionId: string | undefined }> {
    const o = storedOptions(validateSandboxId(options.id), options);
    const before = JSON.stringify(this.#options);
    this.#options = o;
    this.#api = undefined;
    if (JSON.stringify(o) !== before)
      this.ctx.storage.sql.exec(
        "INSERT OR REPLACE INTO cairn_sandbox (key, value) VALUES ('options', ?)",
        JSON.stringify(o),
      );
    const entry = await start(o, this.#state());
    setKeepAlive(entry, o.keepAlive, o.sleepAfterMs);
    return { key: entry.key, sessionId: defaultSession(o) };
  }

  /** `this.exec(…)` and friends: the API on this object's own jail. */
  get api(): SandboxApi {
    if (!this.#api) {
      const o = this.#opts();
      this.#api = new SandboxApi(o.id, () => start(o, this.#state()), defaultSession(o), {
        onDestroy: () => this.destroy(),
      });
    }
    return this.#api;
  }

  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  exec(
    command: string,
    args: string[],
    options?: { stream?: boolean },
  ): Promise<ExecResult | AsyncIterable<LegacyExecEvent>>;
  exec(command: string, a?: ExecOptions | string[], b?: { stream?: boolean }): Promise<unknown> {
    return Array.isArray(a) ? this.api.exec(command, a, b) : this.api.exec(command, a);
  }
  readFile(...a: Parameters<SandboxApi["readFile"]>) {
    return this.api.readFile(...a);
  }
  writeFile(...a: Parameters<SandboxApi["writeFile"]>) {
    return this.api.writeFile(...a);
  }
  mkdir(...a: Parameters<SandboxApi["mkdir"]>) {
    return this.api.mkdir(...a);
  }
  deleteFile(...a: Parameters<SandboxApi["deleteFile"]>) {
    return this.api.deleteFile(...a);
  }
  renameFile(...a: Parameters<SandboxApi["renameFile"]>) {
    return this.api.renameFile(...a);
  }
  moveFile(...a: Parameters<SandboxApi["moveFile"]>) {
    return this.api.moveFile(...a);
  }
  listFiles(...a: Parameters<SandboxApi["listFiles"]>) {
    return this.api.listFiles(...a);
  }
  exists(...a: Parameters<SandboxApi["exists"]>) {
    return this.api.exists(...a);
  }
  gitCheckout(...a: Parameters<SandboxApi["gitCheckout"]>) {
    return this.api.gitCheckout(...a);
  }
  setEnvVars(...a: Parameters<SandboxApi["setEnvVars"]>) {
    return this.api.setEnvVars(...a);
  }
  ping() {
    return this.api.ping();
  }
  listProcesses() {
    return this.api.listProcesses();
  }
  killProcess(...a: Parameters<SandboxApi["killProcess"]>) {
    return this.api.killProcess(...a);
  }
  killAllProcesses() {
    return this.api.killAllProcesses();
  }
  getProcessLogs(...a: Parameters<SandboxApi["getProcessLogs"]>) {
    return this.api.getProcessLogs(...a);
  }
  exposePort(...a: Parameters<SandboxApi["exposePort"]>) {
    return this.api.exposePort(...a);
  }
  unexposePort(...a: Parameters<SandboxApi["unexposePort"]>) {
    return this.api.unexposePort(...a);
  }
  getExposedPorts(...a: Parameters<SandboxApi["getExposedPorts"]>) {
    return this.api.getExposedPorts(...a);
  }
  isPortExposed(...a: Parameters<SandboxApi["isPortExposed"]>) {
    return this.api.isPortExposed(...a);
  }

  /** What the sandbox runs with: driver, limits and their mode, state. */
  async info(): Promise<SandboxInfo> {
    const o = this.#opts();
    return sandboxInfo(o.id);
  }

  /** Stops the jail (every process), removes the workspace and the stored options. */
  async destroy(): Promise<void> {
    const o = this.#opts();
    const key = jailKey(sandboxConfig().dir, o.id);
    await destroyJail(findJail(key), key);
    this.ctx.storage.sql.exec("DELETE FROM cairn_sandbox");
    this.ctx.storage.sql.exec(`DELETE FROM ${STATE_TABLE}`);
    this.#options = undefined;
    this.#api = undefined;
  }

  setKeepAlive(keepAlive: boolean): void {
    const o = this.#opts();
    o.keepAlive = keepAlive;
    const e = findJail(jailKey(sandboxConfig().dir, o.id));
    if (e) setKeepAlive(e, keepAlive);
  }
}

export interface SandboxInfo {
  id: string;
  running: boolean;
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
  exposedPorts: number[];
  recentCommands: { command: string; exitCode: number | null; at: string; durationMs: number }[];
}

export function sandboxInfo(id: string): SandboxInfo {
  const c = sandboxConfig();
  const e = findJail(jailKey(c.dir, id));
  const limits = e?.config.limits ?? c.limits;
  return {
    id,
    running: !!e,
    driver: e?.jail.driver ?? c.isolation,
    ...(e
      ? {
          startedAt: new Date(e.startedAt).toISOString(),
          lastActivity: new Date(e.lastActivity).toISOString(),
        }
      : {}),
    limits: { mode: e?.jail.limitsMode ?? "stopped", ...limits },
    network: c.network,
    exposedPorts: e ? [...e.ports.keys()] : [],
    recentCommands: e ? [...e.commands] : [],
  };
}

interface NamespaceLike {
  idFromName(name: string): unknown;
  get(id: never): unknown;
}

type StartStub = {
  __cairnStart(o: SandboxOptions & { id: string }): Promise<{ key: string; sessionId: string | undefined }>;
  __cairnSave(change: StateChange): Promise<void>;
  destroy(): Promise<void>;
};

/** The handle `getSandbox` returns: the whole API, run in this process. */
export type SandboxHandle = SandboxApi & {
  info(): Promise<SandboxInfo>;
  setKeepAlive(k: boolean): Promise<void>;
};

/**
 * A sandbox by id (`getSandbox(env.Sandbox, "my-id", options?)`). The id follows upstream's rules
 * (1–63 characters, no leading or trailing `-`, not reserved); `normalizeId` lowercases it.
 */
export function getSandbox(ns: NamespaceLike, id: string, options: SandboxOptions = {}): SandboxHandle {
  if (!ns || typeof ns.idFromName !== "function" || typeof ns.get !== "function")
    throw new TypeError("getSandbox: the first argument must be a Durable Object namespace (env.Sandbox)");
  const sid = validateSandboxId(id, !!options.normalizeId);
  parseDuration(options.sleepAfter, DEFAULT_SLEEP_AFTER_MS);
  const stub = ns.get(ns.idFromName(sid) as never) as StartStub;
  const opts = { ...options, id: sid };
  let starting: Promise<JailEntry> | undefined;
  // Changes are written through the stub: the object may be unloaded while its jail runs.
  const save = (c: StateChange) => stub.__cairnSave(c);
  const adopt = (e: JailEntry) => {
    e.state.persist = save;
    return e;
  };
  const entry = async (): Promise<JailEntry> => {
    const c = sandboxConfig();
    const running = findJail(jailKey(c.dir, sid));
    if (running) return adopt(running);
    starting ??= (async () => {
      try {
        const { key } = await stub.__cairnStart(opts);
        const e = findJail(key);
        if (!e) throw new SandboxError("sandbox.not_running", `sandbox ${sid} stopped while starting`);
        return adopt(e);
      } catch (err) {
        throw SandboxError.from(err);
      } finally {
        starting = undefined;
      }
    })();
    return starting;
  };
  const sessionId = options.enableDefaultSession === false ? undefined : `sandbox-${sid}`;
  const api = new SandboxApi(sid, entry, sessionId, {
    onDestroy: async () => {
      try {
        await stub.destroy();
      } catch (e) {
        throw SandboxError.from(e);
      }
    },
  }) as SandboxHandle;
  api.info = async () => sandboxInfo(sid);
  api.setKeepAlive = async (k: boolean) => {
    opts.keepAlive = k;
    const e = findJail(jailKey(sandboxConfig().dir, sid));
    if (e) setKeepAlive(e, k);
  };
  return api;
}

/**
 * Routes a preview-URL request (`/_cairn/sandbox/<id>/ports/<port>/<token>/…`) to the port inside
 * the sandbox; `null` when the request is not one (the Worker handles it). A wrong token or a port
 * not exposed is a 404.
 */
export async function proxyToSandbox(request: Request, _env?: unknown): Promise<Response | null> {
  const url = new URL(request.url);
  const m = /^\/_cairn\/sandbox\/([^/]+)\/ports\/(\d+)\/([a-z0-9_-]+)(\/.*)?$/.exec(url.pathname);
  if (!m) return null;
  const id = decodeURIComponent(m[1] as string);
  const port = Number(m[2]);
  const entry = findJail(jailKey(sandboxConfig().dir, id));
  const exposed = entry?.ports.get(port);
  if (!entry || !exposed || exposed.token !== m[3]) return new Response("Not found\n", { status: 404 });
  const headers: Record<string, string> = {};
  request.headers.forEach((v, k) => {
    if (k !== "host" && k !== "authorization") headers[k] = v;
  });
  const body =
    request.method === "GET" || request.method === "HEAD"
      ? undefined
      : Buffer.from(await request.arrayBuffer());
  const res = await entry.jail.client.proxy(port, (m[4] ?? "/") + url.search, {
    method: request.method,
    headers,
    ...(body ? { body } : {}),
  });
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const out = new Headers();
  for (const [k, v] of Object.entries(res.headers))
    if (v !== undefined && !["transfer-encoding", "connection", "keep-alive"].includes(k))
      out.set(k, Array.isArray(v) ? v.join(", ") : v);
  return new Response(chunks.length ? Buffer.concat(chunks) : null, {
    status: res.statusCode ?? 502,
    headers: out,
  });
}
