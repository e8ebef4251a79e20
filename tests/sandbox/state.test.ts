// SPEC §14.6 stored state: sessions (id, env, cwd), exposed ports and tokens, and process records
// (status, exit code, times, logs) are kept in the Sandbox object's SQLite, so a Cairn process that
// starts after another one was SIGKILLed knows them.
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stopAllJails } from "@cairn/sandbox";
import { afterAll, describe, expect, it } from "vitest";
import { openSandboxes } from "./helpers.ts";

let second: ReturnType<typeof openSandboxes> | undefined;
afterAll(async () => {
  await stopAllJails();
  await second?.host.close();
});

function hostPids(pattern: string): number[] {
  const r = spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean).map(Number);
}

/** Runs `body` in a separate Cairn process on the project at `root`; returns what it printed, then kills it. */
async function firstRun(root: string, body: string): Promise<Record<string, unknown>> {
  const script = join(root, "first.ts");
  writeFileSync(
    script,
    `import { openSandboxes } from ${JSON.stringify(join(process.cwd(), "tests/sandbox/helpers.ts"))};
const t = openSandboxes(undefined, "bwrap", ${JSON.stringify(root)});
const out: Record<string, unknown> = {};
${body}
process.stdout.write(JSON.stringify(out) + "\\n");
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, ["--conditions=source", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const out = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let text = "";
    child.stdout.on("data", (d) => {
      text += d;
      if (text.includes("\n")) resolve(JSON.parse(text.slice(0, text.indexOf("\n"))));
    });
    child.once("exit", (c) => reject(new Error(`the first Cairn process exited (${c})`)));
  });
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  return out;
}

describe("stored state across a restart of Cairn (SPEC §14.6)", () => {
  it("sessions, exposed ports and process records survive a SIGKILL of Cairn", async () => {
    const root = openSandboxes().root;
    const first = await firstRun(
      root,
      `const sb = t.get("st-restart");
const work = await sb.createSession({ id: "work", env: { FOO: "bar baz" } });
await work.exec("mkdir -p /workspace/sub && cd /workspace/sub");
await sb.setEnvVars({ TOP: "1" });
out.url = (await sb.exposePort(8080, { name: "web" })).url;
const done = await sb.startProcess("echo finished; echo oops >&2; exit 3", { processId: "done" });
await done.waitForExit();
const long = await sb.startProcess("echo started; sleep 3456.5", { processId: "long" });
await long.waitForLog("started");
// Its output is stored while it runs (at once, then at most once a second): give the write a second.
await new Promise((r) => setTimeout(r, 1000));
out.ok = true;`,
    );
    expect(first.ok).toBe(true);
    // The kernel tears the first process's jail down (--die-with-parent).
    for (let i = 0; i < 100 && hostPids("sleep 3456.5").length > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(hostPids("sleep 3456.5")).toEqual([]);

    second = openSandboxes(undefined, "bwrap", root);
    const sb = second.get("st-restart");
    // The session comes back: a new shell in its last directory, with its env.
    const work = await sb.getSession("work");
    expect((await work.exec('pwd; echo "$FOO"')).stdout).toBe("/workspace/sub\nbar baz\n");
    // The default session keeps what setEnvVars gave it.
    expect((await sb.exec("echo $TOP")).stdout).toBe("1\n");
    // The port keeps its URL (and token).
    const ports = await sb.getExposedPorts();
    expect(ports).toEqual([{ url: first.url, port: 8080, name: "web" }]);
    expect(await sb.isPortExposed(8080)).toBe(true);
    // Process records: the finished one as it ended, the running one killed by the restart.
    const procs = await sb.listProcesses();
    const done = procs.find((p) => p.id === "done");
    const long = procs.find((p) => p.id === "long");
    expect(done).toMatchObject({
      status: "failed",
      exitCode: 3,
      command: "echo finished; echo oops >&2; exit 3",
    });
    expect(done?.endTime).toBeTruthy();
    expect(long).toMatchObject({ status: "killed" });
    expect(long?.endTime).toBeTruthy();
    expect(await sb.getProcessLogs("done")).toEqual({
      stdout: "finished\n",
      stderr: "oops\n",
      processId: "done",
    });
    expect((await sb.getProcess("long"))?.status).toBe("killed");
    // What the running process wrote before Cairn was killed is kept.
    expect(await sb.getProcessLogs("long")).toEqual({ stdout: "started\n", stderr: "", processId: "long" });
    // Killing a record of an earlier run is a no-op; an unknown id is still an error.
    await sb.killProcess("long");
    await expect(sb.killProcess("nope")).rejects.toMatchObject({ code: "sandbox.process_not_found" });
  });

  it("a jail stopped on purpose stores its running processes' last logs; destroy() forgets everything", async () => {
    const t = second ?? openSandboxes();
    const sb = t.get("st-stop");
    const p = await sb.startProcess("echo hello; sleep 3456.6", { processId: "srv" });
    await p.waitForLog("hello");
    await sb.exposePort(9000);
    await stopAllJails();
    expect(hostPids("sleep 3456.6")).toEqual([]);
    // The next call starts the jail again, with the record.
    const rec = (await sb.listProcesses()).find((x) => x.id === "srv");
    expect(rec).toMatchObject({ status: "killed" });
    expect((await sb.getProcessLogs("srv")).stdout).toBe("hello\n");
    expect(await sb.cleanupCompletedProcesses()).toBe(1);
    expect(await sb.listProcesses()).toEqual([]);
    await sb.destroy();
    expect(await sb.getExposedPorts()).toEqual([]);
    expect(await sb.listProcesses()).toEqual([]);
  });
});
