// A hosted project that closes (cairn dev/start shutting down) stops its sandboxes' jails and
// stores their last process records (SPEC §14.6); the next host of the project sees them.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostProject } from "@cairn/compat";
import { getSandbox } from "@cairn/sandbox";
import { createApi, startServer } from "@cairn/server";
import { afterAll, describe, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "cairn-sandbox-close-"));
cpSync(join(import.meta.dirname, "fixtures", "cloudflare-project"), dir, { recursive: true });
const closing: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closing) await c();
  rmSync(dir, { recursive: true, force: true });
});

const host = async () => {
  const hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
  closing.push(() => hosted.close());
  return hosted;
};
const pids = (pattern: string) =>
  spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);

describe("closing a hosted project", () => {
  it("stops its jails and keeps the records of the processes they ran", async () => {
    const first = await host();
    const sb = getSandbox((first.cairn.env as any).Sandbox, "hc");
    const p = await sb.startProcess("echo started; sleep 3456.7", { processId: "bg" });
    await p.waitForLog("started");
    expect(pids("sleep 3456.7").length).toBe(1);
    await first.close();
    expect(pids("sleep 3456.7")).toEqual([]);

    const second = await host();
    const again = getSandbox((second.cairn.env as any).Sandbox, "hc");
    expect((await again.listProcesses()).map((x) => [x.id, x.status])).toEqual([["bg", "killed"]]);
    expect((await again.getProcessLogs("bg")).stdout).toBe("started\n");
    await again.destroy();
  });
});
