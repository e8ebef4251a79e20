import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createObjectHost, type ObjectHost } from "@cairn/objects";
import { configureSandboxes, getSandbox, Sandbox, type SandboxOptions } from "@cairn/sandbox";

/** An object host with a `Sandbox` binding and sandboxes under a fresh directory. */
export function openSandboxes(
  limits?: SandboxOptions["limits"],
  isolation: "bwrap" | "none" = "bwrap",
  /** An existing directory (a second run of the same project); default a fresh one. */
  at?: string,
) {
  const root = at ?? mkdtempSync(join(tmpdir(), "cairn-sbtest-"));
  const dir = join(root, "sandboxes");
  configureSandboxes({
    dir,
    isolation,
    network: "none",
    allow: [],
    limits: limits ?? {},
    ...(isolation === "none" ? { warn: () => {} } : {}),
  });
  const host: ObjectHost = createObjectHost({
    dir: join(root, "do"),
    objects: [{ binding: "Sandbox", class: Sandbox }],
  });
  const ns = host.namespaces.Sandbox as never;
  return { root, dir, host, get: (id: string, o?: SandboxOptions) => getSandbox(ns, id, o) };
}

/** Whether `pid` is alive on the host. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
