/**
 * Isolation drivers (SPEC §14.2). A driver starts one jail per sandbox with Cairn's supervisor
 * inside and hands back its control socket; everything else (commands, files, processes) goes
 * through the supervisor.
 *
 * - `bwrap` (default on Linux): bubblewrap with every namespace unshared, no nested user
 *   namespaces, all capabilities dropped, the seccomp filter of §14.4, `/usr` read-only, a
 *   size-limited `/tmp`, `/workspace` and `/home/user` bound read-write from the sandbox's
 *   directory, a generated `/etc`, no network (loopback only) unless egress is on, and the cgroup
 *   limits of the best mode the host offers (`limits.ts`). `--die-with-parent`: a jail never
 *   outlives the Cairn process that started it.
 * - `none`: no isolation at all (the supervisor runs as a plain child process), for development
 *   on macOS or Windows only; chosen explicitly with `isolation: "none"`, and every start warns.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, constants as fsc, realpathSync, statSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { homedir, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ControlClient } from "./client.ts";
import { SandboxError } from "./errors.ts";
import { type CgroupMode, detectCgroupMode, type ResolvedLimits, SandboxCgroup } from "./limits.ts";
import { buildSeccompFilter, seccompSupported } from "./seccomp.ts";

export type IsolationName = "bwrap" | "none";

export interface JailSpec {
  /** The sandbox id (for names and logs). */
  id: string;
  /** The sandbox's host directory (`.cairn/sandboxes/<id>`): `workspace/` and `home/` live there. */
  dir: string;
  limits: ResolvedLimits;
  /** `none` (default): loopback only; `egress`: an HTTP(S) proxy to the destinations in `allow`. */
  network?: "none" | "egress";
  /** `host:port` destinations egress may reach (`host:*` for any port). */
  allow?: string[];
  /** A directory used as the root file system instead of the host's `/usr`. */
  root?: string;
  /** How long the supervisor may take to start (default 30 s). */
  startTimeoutMs?: number;
}

export interface Probe {
  ok: boolean;
  driver: IsolationName;
  reason: string;
  cgroup: CgroupMode;
  cgroupReason: string;
  seccomp: boolean;
  bwrap?: string;
}

/** A running jail: its control client, the host pid of its outermost process, and how to stop it. */
export interface Jail {
  readonly driver: IsolationName;
  readonly client: ControlClient;
  readonly pid: number;
  readonly token: string;
  readonly limitsMode: CgroupMode;
  /** Resolves with the jail's exit once it is gone. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Kernel OOM kills so far (cgroup modes). */
  oomKills(): Promise<number>;
  /** Kills everything in the jail and removes its runtime files (the workspace stays). */
  destroy(): Promise<void>;
}

export interface SandboxDriver {
  readonly name: IsolationName;
  /** Whether this host can run jails, and why not. Cached per process. */
  probe(): Promise<Probe>;
  create(spec: JailSpec): Promise<Jail>;
}

const SUPERVISOR = fileURLToPath(new URL("../supervisor/supervisor.mjs", import.meta.url));
const PROXY_PORT = 3128;

function findBwrap(path: string | undefined): string | undefined {
  if (path) return existsSync(path) ? path : undefined;
  for (const p of ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]) if (existsSync(p)) return p;
  return undefined;
}

/** Writes to a child's pipe; a child that exits without reading is reported by its exit, not EPIPE. */
function writeQuietly(stream: NodeJS.WritableStream, data: Buffer | string): void {
  stream.on("error", () => {});
  stream.end(data);
}

/** Where the jail's execute-only binaries are kept (`CAIRN_JAIL_BIN_DIR`, else the user's cache). */
function jailBinDir(): string {
  if (process.env.CAIRN_JAIL_BIN_DIR) return process.env.CAIRN_JAIL_BIN_DIR;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(cache, "cairn", "jail-bin");
}

const copies = new Map<string, Promise<string>>();

/**
 * An execute-only (mode 0111) copy of `src`, made once per binary and kept. A process started from
 * a file it cannot read is not dumpable (the kernel's rule for execute-only programs), so no other
 * process of the jail can open its `/proc/<pid>/mem`, `environ`, `maps` or `fd/`, or ptrace it:
 * the jail's init and the supervisor (which holds the control token) run from such copies. Inside
 * the jail the copy's owner is the jail's uid, and the owner's bits (`--x`) are what count there.
 */
export async function executeOnlyCopy(src: string): Promise<string> {
  let real: string;
  let st: ReturnType<typeof statSync>;
  try {
    real = realpathSync(src);
    st = statSync(real);
  } catch (e) {
    throw new SandboxError("sandbox.isolation_unavailable", `the jail needs ${src}: ${(e as Error).message}`);
  }
  const key = createHash("sha256")
    .update(`${real}\0${st.size}\0${st.mtimeMs}\0${st.ino}`)
    .digest("hex")
    .slice(0, 16);
  const dir = jailBinDir();
  const dest = join(dir, `${basename(real)}-${key}`);
  let p = copies.get(dest);
  if (!p) {
    p = (async () => {
      try {
        const have = statSync(dest);
        if (have.size === st.size && (have.mode & 0o7777) === 0o111) return dest;
      } catch {}
      const tmp = `${dest}.${process.pid}.${randomBytes(4).toString("hex")}`;
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await copyFile(real, tmp, fsc.COPYFILE_FICLONE);
        await chmod(tmp, 0o111);
        await rename(tmp, dest);
      } catch (e) {
        await rm(tmp, { force: true }).catch(() => {});
        throw new SandboxError(
          "sandbox.isolation_unavailable",
          `cannot keep the jail's execute-only copy of ${real} in ${dir} (set CAIRN_JAIL_BIN_DIR to a directory of this user): ${(e as Error).message}`,
        );
      }
      return dest;
    })();
    p.catch(() => copies.delete(dest));
    copies.set(dest, p);
  }
  return p;
}

/** The fixed part of the bwrap command line (namespaces, privileges, the base file system). */
function baseArgs(limits: ResolvedLimits, root: string | undefined, network: "none" | "egress"): string[] {
  const usr = root ? join(root, "usr") : "/usr";
  const args = [
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--uid",
    "1000",
    "--gid",
    "1000",
    "--hostname",
    "sandbox",
    "--ro-bind",
    usr,
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/sbin",
    "/sbin",
    "--symlink",
    "usr/lib",
    "/lib",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--size",
    String(limits.tmp),
    "--tmpfs",
    "/tmp",
    "--dir",
    "/etc",
  ];
  if (existsSync(join(usr, "..", "lib64")) || existsSync("/usr/lib64"))
    args.push("--symlink", "usr/lib64", "/lib64");
  // Public system files programs need (no secrets): the linker cache, alternatives, CA certificates.
  for (const f of [
    "/etc/ld.so.cache",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/localtime",
    "/etc/nsswitch.conf",
  ])
    if (!root && existsSync(f)) args.push("--ro-bind", f, f);
  void network;
  return args;
}

/** `/etc/passwd`, `/etc/group`, `/etc/hosts` of the jail. */
async function writeEtc(dir: string): Promise<void> {
  await writeFile(
    join(dir, "passwd"),
    "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000:sandbox:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  );
  await writeFile(join(dir, "group"), "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n");
  await writeFile(join(dir, "hosts"), "127.0.0.1 localhost sandbox\n::1 localhost\n");
}

/** Whether `target` (`host:port`) is in the allow-list. */
export function egressAllowed(target: string, allow: readonly string[]): boolean {
  const i = target.lastIndexOf(":");
  if (i <= 0) return false;
  const host = target
    .slice(0, i)
    .replace(/^\[|\]$/g, "")
    .toLowerCase();
  const port = target.slice(i + 1);
  return allow.some((a) => {
    const j = a.lastIndexOf(":");
    const ah = a
      .slice(0, j)
      .replace(/^\[|\]$/g, "")
      .toLowerCase();
    const ap = a.slice(j + 1);
    return ah === host && (ap === "*" || ap === port);
  });
}

/** The host end of egress: an HTTP CONNECT proxy on the jail's `egress.sock`, allow-list first. */
function egressServer(socket: string, allow: readonly string[]): Promise<Server> {
  const server = createServer((_req, res) => res.writeHead(405).end());
  server.on("connect", (req, client: Socket, head) => {
    const target = req.url ?? "";
    if (!egressAllowed(target, allow)) {
      client.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    const i = target.lastIndexOf(":");
    const up = connect({
      host: target.slice(0, i).replace(/^\[|\]$/g, ""),
      port: Number(target.slice(i + 1)),
    });
    up.once("connect", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(client).pipe(up);
    });
    up.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
    client.on("error", () => up.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => resolve(server));
  });
}

interface Started {
  child: ChildProcess;
  run: string;
  token: string;
  cgroup?: SandboxCgroup;
  egress?: Server;
}

/** Waits for the supervisor's `ready` line (or the jail's early exit). */
function waitReady(child: ChildProcess, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs);
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(
        new SandboxError(
          "sandbox.not_running",
          `${what}: ${why}${err ? `: ${err.trim().slice(0, 2000)}` : ""}`,
        ),
      );
    };
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      if (err.length < 8192) err += d;
    });
    child.stdout?.on("data", (d: string) => {
      out += d;
      if (out.includes("ready\n")) {
        clearTimeout(timer);
        child.stdout?.removeAllListeners("data");
        child.stdout?.resume();
        resolve();
      }
    });
    child.once("error", (e) => fail(e.message));
    child.once("exit", (code, signal) => fail(`exited (${signal ?? code}) before it was ready`));
  });
}

function toJail(driver: IsolationName, s: Started, limitsMode: CgroupMode): Jail {
  const client = new ControlClient(join(s.run, "ctl.sock"), s.token);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null)
      resolve({ code: s.child.exitCode, signal: s.child.signalCode });
    else s.child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  let destroying: Promise<void> | undefined;
  return {
    driver,
    client,
    pid: s.child.pid as number,
    token: s.token,
    limitsMode,
    exited,
    oomKills: () => s.cgroup?.oomKills() ?? Promise.resolve(0),
    destroy() {
      destroying ??= (async () => {
        client.close();
        if (driver === "none") {
          // No pid namespace: kill the supervisor's process group and every process it started.
          try {
            process.kill(-(s.child.pid as number), "SIGKILL");
          } catch {}
          spawnSync("pkill", ["-KILL", "-s", String(s.child.pid)]);
        }
        s.child.kill("SIGKILL");
        await exited;
        await s.cgroup?.destroy();
        await new Promise<void>((r) => (s.egress ? s.egress.close(() => r()) : r()));
        await rm(s.run, { recursive: true, force: true });
      })();
      return destroying;
    },
  };
}

async function prepareDirs(spec: JailSpec): Promise<{ run: string; workspace: string; home: string }> {
  const workspace = join(spec.dir, "workspace");
  const home = join(spec.dir, "home");
  await mkdir(workspace, { recursive: true });
  await mkdir(home, { recursive: true });
  // Unix socket paths are short (108 bytes): the runtime directory is a private one under /tmp.
  const run = await mkdtemp(join(tmpdir(), "cairn-sb-"));
  return { run, workspace, home };
}

const probes = new Map<string, Promise<Probe>>();
const drivers = new Map<string, SandboxDriver>();

/** The bubblewrap driver (see the module comment); `bwrapPath` overrides where bwrap is looked for. */
export function bwrapDriverAt(bwrapPath?: string): SandboxDriver {
  const key = bwrapPath ?? "";
  let d = drivers.get(key);
  if (!d) drivers.set(key, (d = makeBwrapDriver(bwrapPath)));
  return d;
}

function makeBwrapDriver(bwrapPath: string | undefined): SandboxDriver {
  return {
    name: "bwrap",
    probe() {
      const key = bwrapPath ?? "";
      let probed = probes.get(key);
      if (!probed)
        probes.set(
          key,
          (probed = (async (): Promise<Probe> => {
            const cg = detectCgroupMode();
            const seccomp = seccompSupported();
            const base = { driver: "bwrap" as const, cgroup: cg.mode, cgroupReason: cg.reason, seccomp };
            if (process.platform !== "linux")
              return {
                ...base,
                ok: false,
                reason: `bubblewrap needs Linux (this is ${process.platform}); use isolation: "none" for development`,
              };
            const bwrap = findBwrap(bwrapPath);
            if (!bwrap)
              return {
                ...base,
                ok: false,
                reason: `bwrap (bubblewrap) is not installed${bwrapPath ? ` at ${bwrapPath}` : ""}: apt-get install bubblewrap`,
              };
            if (!seccomp)
              return {
                ...base,
                ok: false,
                bwrap,
                reason: `no seccomp filter for the architecture ${process.arch}`,
              };
            const trial = await new Promise<{ code: number | null; err: string }>((resolve) => {
              const child = spawn(
                bwrap,
                [
                  ...baseArgs(
                    { cpu: 1, memory: 0, tmp: 1024 * 1024, pids: 0, cpuSeconds: 0, disk: 0 },
                    undefined,
                    "none",
                  ),
                  "--seccomp",
                  "3",
                  "--",
                  "/bin/true",
                ],
                {
                  stdio: ["ignore", "ignore", "pipe", "pipe"],
                },
              );
              let err = "";
              child.stderr?.on("data", (d) => (err += d));
              writeQuietly(child.stdio[3] as NodeJS.WritableStream, buildSeccompFilter());
              child.on("error", (e) => resolve({ code: -1, err: e.message }));
              child.on("exit", (code) => resolve({ code, err }));
            });
            if (trial.code !== 0)
              return {
                ...base,
                ok: false,
                bwrap,
                reason: `a trial jail failed (exit ${trial.code}): ${trial.err.trim() || "no message"} (unprivileged user namespaces may be off, or blocked by a container's seccomp profile)`,
              };
            return { ...base, ok: true, bwrap, reason: "bubblewrap jails run" };
          })()),
        );
      return probed;
    },

    async create(spec) {
      const probe = await this.probe();
      if (!probe.ok) throw new SandboxError("sandbox.isolation_unavailable", probe.reason);
      const { run, workspace, home } = await prepareDirs(spec);
      const token = randomBytes(32).toString("hex");
      const etc = join(run, "etc");
      await mkdir(etc);
      await writeEtc(etc);
      const network = spec.network ?? "none";
      let egress: Server | undefined;
      if (network === "egress") egress = await egressServer(join(run, "egress.sock"), spec.allow ?? []);
      const cgroup =
        probe.cgroup === "rlimits"
          ? undefined
          : new SandboxCgroup(probe.cgroup, `${spec.id}-${randomBytes(4).toString("hex")}`);
      await cgroup?.create(spec.limits);
      const usr = spec.root ? join(spec.root, "usr") : "/usr";
      const node = await executeOnlyCopy(process.execPath);
      const init = await executeOnlyCopy(join(usr, "bin", "bash"));
      const args = [
        ...baseArgs(spec.limits, spec.root, network),
        "--ro-bind",
        join(etc, "passwd"),
        "/etc/passwd",
        "--ro-bind",
        join(etc, "group"),
        "/etc/group",
        "--ro-bind",
        join(etc, "hosts"),
        "/etc/hosts",
        "--bind",
        workspace,
        "/workspace",
        "--bind",
        home,
        "/home/user",
        "--bind",
        run,
        "/run/cairn",
        "--ro-bind",
        node,
        "/.cairn/node",
        "--ro-bind",
        init,
        "/.cairn/init",
        "--ro-bind",
        SUPERVISOR,
        "/.cairn/supervisor.mjs",
        "--remount-ro",
        "/",
        "--chdir",
        "/workspace",
        "--seccomp",
        "3",
        // The jail's pid 1 is Cairn's own init (bash from an execute-only copy: not dumpable, and it
        // reaps orphans), not bwrap's reaper, which makes itself dumpable. The supervisor gets the
        // token on its stdin (a background job's stdin is /dev/null unless given explicitly).
        "--as-pid-1",
        "--",
        "/.cairn/init",
        "-c",
        "/.cairn/node --max-old-space-size=64 /.cairn/supervisor.mjs <&0 & wait $!; exit $?",
      ];
      const env: Record<string, string> = { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", CAIRN_JAILED: "1" };
      if (probe.cgroup === "rlimits") env.CAIRN_MEMORY_WATCH = String(spec.limits.memory);
      if (spec.limits.cpuSeconds) env.CAIRN_CPU_SECONDS = String(spec.limits.cpuSeconds);
      if (network === "egress") env.CAIRN_PROXY = `http://127.0.0.1:${PROXY_PORT}`;
      // A starting shell joins the sandbox's cgroups itself, then becomes bwrap: nothing of the jail
      // runs outside them, even for a moment.
      const join_ = (cgroup?.procsFiles() ?? []).map((f) => `echo $$ > '${f}' && `).join("");
      const child = spawn("/bin/sh", ["-c", `${join_}exec "$0" "$@"`, probe.bwrap as string, ...args], {
        stdio: ["pipe", "pipe", "pipe", "pipe"],
        env,
      });
      writeQuietly(child.stdio[3] as NodeJS.WritableStream, buildSeccompFilter());
      if (child.stdin) writeQuietly(child.stdin, `${token}\n`);
      const started: Started = {
        child,
        run,
        token,
        ...(cgroup ? { cgroup } : {}),
        ...(egress ? { egress } : {}),
      };
      try {
        await waitReady(child, spec.startTimeoutMs ?? 30_000, `sandbox ${spec.id}`);
      } catch (e) {
        await cgroup?.destroy();
        egress?.close();
        await rm(run, { recursive: true, force: true });
        throw e;
      }
      return toJail("bwrap", started, probe.cgroup);
    },
  };
}

/** The bubblewrap driver with bwrap from `/usr/bin` or `/usr/local/bin`. */
export const bwrapDriver: SandboxDriver = bwrapDriverAt();

/** The driver without isolation (development only; see the module comment). */
export function noneDriver(warn: (message: string) => void = (m) => console.warn(m)): SandboxDriver {
  return {
    name: "none",
    async probe() {
      const cg = detectCgroupMode();
      return {
        ok: true,
        driver: "none",
        reason: "no isolation",
        cgroup: "rlimits",
        cgroupReason: cg.reason,
        seccomp: false,
      };
    },
    async create(spec) {
      warn(
        `sandbox ${spec.id}: isolation "none": commands run as this user on this machine, with no jail (development only)`,
      );
      const { run, workspace, home } = await prepareDirs(spec);
      const token = randomBytes(32).toString("hex");
      const child = spawn(process.execPath, [SUPERVISOR], {
        cwd: workspace,
        stdio: ["pipe", "pipe", "pipe"],
        detached: true,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          CAIRN_SOCKET: join(run, "ctl.sock"),
          CAIRN_WORKSPACE: workspace,
          CAIRN_HOME: home,
          CAIRN_UNJAILED: "1",
        },
      });
      if (child.stdin) writeQuietly(child.stdin, `${token}\n`);
      await waitReady(child, spec.startTimeoutMs ?? 30_000, `sandbox ${spec.id}`);
      return toJail("none", { child, run, token }, "rlimits");
    },
  };
}

/** The driver for an `isolation` setting (default: `bwrap`). */
export function driverFor(
  isolation: IsolationName | undefined,
  warn?: (m: string) => void,
  bwrapPath?: string,
): SandboxDriver {
  if (isolation === undefined || isolation === "bwrap") return bwrapDriverAt(bwrapPath);
  if (isolation === "none") return noneDriver(warn);
  throw new SandboxError(
    "sandbox.invalid_argument",
    `unknown isolation ${JSON.stringify(isolation)} (use "bwrap" or "none")`,
  );
}
