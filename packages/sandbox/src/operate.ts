/**
 * Operating sandboxes from outside the process that runs them (`cairn sandbox list|destroy`):
 * the sandbox directories under a `dir`, and whether a jail of this machine runs each (a live
 * bwrap process whose command line binds its workspace).
 */
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { SandboxError } from "./errors.ts";
import { validateSandboxId } from "./validate.ts";

export interface SandboxDirectory {
  id: string;
  dir: string;
  /** Host pid of the jail's bwrap, when one runs. */
  pid?: number;
  running: boolean;
  modifiedAt: string;
}

function jailPids(): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      if (!argv[0]?.endsWith("bwrap")) continue;
      for (let i = 0; i < argv.length - 2; i++)
        if (argv[i] === "--bind" && argv[i + 2] === "/workspace") out.set(argv[i + 1] as string, Number(d));
    } catch {}
  }
  return out;
}

/** The sandboxes of `dir` (`.cairn/sandboxes`), most recently changed first. */
export function listSandboxDirectories(dir: string): SandboxDirectory[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const pids = process.platform === "linux" ? jailPids() : new Map<string, number>();
  return names
    .filter((n) => {
      try {
        return statSync(join(dir, n, "workspace")).isDirectory();
      } catch {
        return false;
      }
    })
    .map((id) => {
      const d = join(dir, id);
      const pid = pids.get(join(d, "workspace"));
      return {
        id,
        dir: d,
        ...(pid ? { pid } : {}),
        running: pid !== undefined,
        modifiedAt: statSync(d).mtime.toISOString(),
      };
    })
    .sort((a, b) => b.modifiedAt.localeCompare(a.modifiedAt));
}

/** Kills a sandbox's jail (if one runs on this machine) and removes its directory. */
export function destroySandboxDirectory(dir: string, id: string): SandboxDirectory {
  validateSandboxId(id);
  const found = listSandboxDirectories(dir).find((s) => s.id === id);
  if (!found) throw new SandboxError("sandbox.not_running", `no sandbox ${id} in ${dir}`);
  if (found.pid) {
    try {
      process.kill(found.pid, "SIGKILL");
    } catch {}
  }
  rmSync(found.dir, { recursive: true, force: true });
  return found;
}
