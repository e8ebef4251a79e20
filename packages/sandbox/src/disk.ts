/**
 * The disk limit of a sandbox's files (SPEC §14.3: `limits.disk`, default 4 GiB): the workspace
 * and home directories are host directories, so without a project quota of the file system their
 * usage is measured (`du`, symlinks not followed, one file system) before each file write and after
 * each command and write, and a sandbox over its limit answers `sandbox.disk_full`. Commands still
 * run when it is over (so files can be deleted); a write that would cross the limit is refused
 * before anything is written. `/tmp` is a tmpfs of its own size (ENOSPC).
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { SandboxError } from "./errors.ts";
import type { JailEntry } from "./runtime.ts";

/** Bytes used by `dirs` (block usage, as `du -sk`). */
export function diskUsage(dirs: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile("du", ["-s", "-k", "-x", "--", ...dirs], { encoding: "utf8" }, (err, stdout) => {
      // du reports files that vanish while it walks and still prints the totals.
      if (err && !stdout) return reject(err);
      let kib = 0;
      for (const line of stdout.split("\n")) {
        const n = Number(line.split("\t")[0]);
        if (line && Number.isFinite(n)) kib += n;
      }
      resolve(kib * 1024);
    });
  });
}

function full(entry: JailEntry, used: number, adding = 0): SandboxError {
  const limit = entry.config.limits.disk;
  return new SandboxError(
    "sandbox.disk_full",
    adding
      ? `writing ${adding} bytes would take the sandbox's files (${used} bytes) over its disk limit of ${limit} bytes (limits.disk)`
      : `the sandbox's files use ${used} bytes, over its disk limit of ${limit} bytes (limits.disk): delete files to go on`,
  );
}

async function measure(entry: JailEntry): Promise<number> {
  const used = await diskUsage([join(entry.dir, "workspace"), join(entry.dir, "home")]);
  entry.diskUsed = used;
  return used;
}

/** Before a write of `bytes`: refused when the files would go over the limit. */
export async function checkBeforeWrite(entry: JailEntry, bytes: number): Promise<void> {
  const limit = entry.config.limits.disk;
  if (!limit) return;
  const used = await measure(entry);
  if (used + bytes > limit) throw full(entry, used, bytes);
}

/** After a command or a write: `sandbox.disk_full` when the files are over the limit. */
export async function checkAfter(entry: JailEntry): Promise<void> {
  const limit = entry.config.limits.disk;
  if (!limit) return;
  const used = await measure(entry);
  if (used > limit) throw full(entry, used);
}
