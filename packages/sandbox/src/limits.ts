/**
 * Resource limits of a sandbox (SPEC §14.3) and the cgroup mode the host offers, in order:
 * `v2` (a delegated cgroup v2 subtree with memory, pids and cpu), `v1` (writable v1 controllers,
 * root only), `rlimits` (no cgroups: memory is watched by the supervisor, which kills the biggest
 * process of the jail past the limit; pids cannot be capped per sandbox; CPU time per command via
 * RLIMIT_CPU). The mode in use is reported by `info().limits.mode`.
 */
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseBytes } from "./validate.ts";

export interface SandboxLimitsConfig {
  /** CPU share in cores (default 0.25). */
  cpu?: number;
  /** Memory (default "1GiB"). */
  memory?: string | number;
  /** Size of the jail's /tmp tmpfs (default "512MiB"). */
  tmp?: string | number;
  /** Processes (default 512). */
  pids?: number;
  /** CPU seconds per command (RLIMIT_CPU; default none). */
  cpuSeconds?: number;
  /** The sandbox's files (workspace and home; default "4GiB"; 0: no limit). */
  disk?: string | number;
}

export interface ResolvedLimits {
  cpu: number;
  memory: number;
  tmp: number;
  pids: number;
  cpuSeconds: number;
  disk: number;
}

export type CgroupMode = "v2" | "v1" | "rlimits";

export const DEFAULT_LIMITS: ResolvedLimits = {
  cpu: 0.25,
  memory: 1024 ** 3,
  tmp: 512 * 1024 ** 2,
  pids: 512,
  cpuSeconds: 0,
  disk: 4 * 1024 ** 3,
};

export function resolveLimits(c: SandboxLimitsConfig = {}): ResolvedLimits {
  return {
    cpu: c.cpu ?? DEFAULT_LIMITS.cpu,
    memory: parseBytes(c.memory, DEFAULT_LIMITS.memory, "memory"),
    tmp: parseBytes(c.tmp, DEFAULT_LIMITS.tmp, "tmp"),
    pids: c.pids ?? DEFAULT_LIMITS.pids,
    cpuSeconds: c.cpuSeconds ?? DEFAULT_LIMITS.cpuSeconds,
    disk: c.disk === 0 ? 0 : parseBytes(c.disk, DEFAULT_LIMITS.disk, "disk"),
  };
}

const ROOT = "/sys/fs/cgroup";
const V1 = ["memory", "pids", "cpu"] as const;

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The own cgroup v2 path when it is delegated with memory, pids and cpu, else undefined. */
function v2Base(): string | undefined {
  if (!existsSync(join(ROOT, "cgroup.controllers"))) return undefined;
  const line = readFileSync("/proc/self/cgroup", "utf8")
    .split("\n")
    .find((l) => l.startsWith("0::"));
  if (!line) return undefined;
  const base = join(ROOT, line.slice(3));
  const parent = join(base, "..");
  try {
    const enabled = readFileSync(join(parent, "cgroup.subtree_control"), "utf8");
    if (!["memory", "pids", "cpu"].every((c) => enabled.includes(c))) return undefined;
  } catch {
    return undefined;
  }
  return parent;
}

/** Detects the best cgroup mode of this host (and why a better one is not available). */
export function detectCgroupMode(): { mode: CgroupMode; reason: string } {
  const v2 = v2Base();
  if (v2) return { mode: "v2", reason: `cgroup v2 delegated at ${v2}` };
  const v1ok = V1.every((c) => writable(join(ROOT, c, "cgroup.procs"))) && process.getuid?.() === 0;
  if (v1ok) return { mode: "v1", reason: "cgroup v1 controllers memory, pids, cpu (root)" };
  return {
    mode: "rlimits",
    reason:
      "no delegated cgroup v2 and no writable cgroup v1: memory is watched by the supervisor, pids are not capped per sandbox",
  };
}

let swept = false;

/**
 * Removes the empty cgroups of sandboxes whose Cairn process died without cleaning up (a SIGKILL
 * leaves the directories, not processes: --die-with-parent took those). Once per process; only
 * directories older than a minute, so a jail starting in another process is left alone.
 */
async function sweepStale(): Promise<void> {
  if (swept) return;
  swept = true;
  const { readdir, stat } = await import("node:fs/promises");
  for (const c of V1) {
    const base = join(ROOT, c, "cairn");
    let names: string[] = [];
    try {
      names = await readdir(base);
    } catch {
      continue;
    }
    for (const name of names) {
      const d = join(base, name);
      try {
        const st = await stat(d);
        if (!st.isDirectory() || Date.now() - st.mtimeMs < 60_000) continue;
        if ((await readFile(join(d, "cgroup.procs"), "utf8")).trim() === "") await rmdir(d);
      } catch {}
    }
  }
}

/** A sandbox's cgroup(s): created before the jail starts, killed and removed with it. */
export class SandboxCgroup {
  readonly mode: CgroupMode;
  readonly dirs: string[];
  constructor(mode: CgroupMode, key: string) {
    this.mode = mode;
    if (mode === "v1") this.dirs = V1.map((c) => join(ROOT, c, "cairn", key));
    else if (mode === "v2") this.dirs = [join(v2Base() as string, `cairn-${key}`)];
    else this.dirs = [];
  }

  async create(limits: ResolvedLimits): Promise<void> {
    if (this.mode === "v1") await sweepStale();
    for (const d of this.dirs) await mkdir(d, { recursive: true });
    if (this.mode === "v1") {
      const [memory, pids, cpu] = this.dirs as [string, string, string];
      await writeFile(join(memory, "memory.limit_in_bytes"), String(limits.memory));
      if (existsSync(join(memory, "memory.memsw.limit_in_bytes")))
        await writeFile(join(memory, "memory.memsw.limit_in_bytes"), String(limits.memory)).catch(() => {});
      await writeFile(join(memory, "memory.swappiness"), "0").catch(() => {});
      await writeFile(join(pids, "pids.max"), String(limits.pids));
      await writeFile(join(cpu, "cpu.cfs_period_us"), "100000");
      await writeFile(join(cpu, "cpu.cfs_quota_us"), String(Math.max(1000, Math.round(limits.cpu * 100000))));
    } else if (this.mode === "v2") {
      const d = this.dirs[0] as string;
      await writeFile(join(d, "memory.max"), String(limits.memory));
      await writeFile(join(d, "memory.swap.max"), "0").catch(() => {});
      await writeFile(join(d, "pids.max"), String(limits.pids));
      await writeFile(join(d, "cpu.max"), `${Math.max(1000, Math.round(limits.cpu * 100000))} 100000`);
    }
  }

  /** The `cgroup.procs` files a starting process writes its own pid into. */
  procsFiles(): string[] {
    return this.dirs.map((d) => join(d, "cgroup.procs"));
  }

  /** Whether the kernel OOM-killed something in this cgroup. */
  async oomKills(): Promise<number> {
    try {
      if (this.mode === "v1") {
        const t = await readFile(join(this.dirs[0] as string, "memory.oom_control"), "utf8");
        return Number(/oom_kill (\d+)/.exec(t)?.[1] ?? 0);
      }
      if (this.mode === "v2") {
        const t = await readFile(join(this.dirs[0] as string, "memory.events"), "utf8");
        return Number(/oom_kill (\d+)/.exec(t)?.[1] ?? 0);
      }
    } catch {}
    return 0;
  }

  /** Kills every process left in the cgroup and removes it. */
  async destroy(): Promise<void> {
    for (const d of this.dirs) {
      for (let i = 0; i < 50; i++) {
        let pids: number[] = [];
        try {
          pids = (await readFile(join(d, "cgroup.procs"), "utf8")).split("\n").filter(Boolean).map(Number);
        } catch {
          break;
        }
        if (pids.length === 0) break;
        for (const p of pids) {
          try {
            process.kill(p, "SIGKILL");
          } catch {}
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      await rmdir(d).catch(() => {});
    }
  }
}
