// Bad input of SPEC §14.1/§14.6 (each a clear `sandbox.*` error, the sandbox unchanged), isolation
// that is not available (never a silent fallback), and the explicit `none` driver.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configureSandboxes, SandboxError, stopAllJails } from "@cairn/sandbox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSandboxes } from "./helpers.ts";

let t: ReturnType<typeof openSandboxes>;
beforeAll(() => {
  t = openSandboxes();
});
afterAll(async () => {
  await stopAllJails();
  await t.host.close();
});

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (!SandboxError.is(e)) throw e;
    return `${e.code}: ${e.text}`;
  }
  return "no error";
}

describe("bad input", () => {
  it("invalid ids are sandbox.invalid_id", async () => {
    const cases: [string, string][] = [
      ["", "sandbox.invalid_id: the sandbox id must be 1 to 63 characters (got 0)"],
      ["a".repeat(64), "sandbox.invalid_id: the sandbox id must be 1 to 63 characters (got 64)"],
      ["-abc", 'sandbox.invalid_id: the sandbox id must not start or end with "-": "-abc"'],
      ["abc-", 'sandbox.invalid_id: the sandbox id must not start or end with "-": "abc-"'],
      ["a_b", 'sandbox.invalid_id: the sandbox id may hold only letters, digits and "-": "a_b"'],
      [
        "www",
        'sandbox.invalid_id: the sandbox id "www" is reserved (www, api, admin, root, system, cloudflare, workers)',
      ],
      [
        "Workers",
        'sandbox.invalid_id: the sandbox id "Workers" is reserved (www, api, admin, root, system, cloudflare, workers)',
      ],
    ];
    for (const [id, message] of cases) expect(await code(() => t.get(id))).toBe(message);
    expect(t.get("MyBox", { normalizeId: true }).id).toBe("mybox");
  });

  it("paths with NUL, empty or over 4096 characters are sandbox.invalid_path", async () => {
    const sb = t.get("bad-paths");
    expect(await code(sb.readFile("a\0b"))).toBe(
      "sandbox.invalid_path: path must not contain a NUL character",
    );
    expect(await code(sb.writeFile("", "x"))).toBe("sandbox.invalid_path: path must not be empty");
    expect(await code(sb.mkdir("x".repeat(4097)))).toBe(
      "sandbox.invalid_path: path is 4097 characters; at most 4096 are allowed",
    );
    expect(await code(sb.renameFile("a", "b\0"))).toBe(
      "sandbox.invalid_path: newPath must not contain a NUL character",
    );
    expect(await code(sb.exec("pwd", { cwd: "\0" }))).toBe(
      "sandbox.invalid_path: cwd must not contain a NUL character",
    );
    expect(await code(sb.writeFile("b64.txt", "not base64!", { encoding: "base64" }))).toBe(
      "sandbox.invalid_argument: content is not valid base64",
    );
    expect((await sb.exists("b64.txt")).exists).toBe(false);
  });

  it("ports out of range or the control port are sandbox.port_invalid", async () => {
    const sb = t.get("bad-ports");
    expect(await code(sb.exposePort(80))).toBe(
      "sandbox.port_invalid: the port must be between 1024 and 65535 (got 80)",
    );
    expect(await code(sb.exposePort(70000))).toBe(
      "sandbox.port_invalid: the port must be between 1024 and 65535 (got 70000)",
    );
    expect(await code(sb.exposePort(3000))).toBe(
      "sandbox.port_invalid: port 3000 is reserved for the sandbox's control plane",
    );
    expect(await code(sb.exposePort(8080.5))).toBe(
      "sandbox.port_invalid: the port must be an integer (got 8080.5)",
    );
    expect(await sb.getExposedPorts()).toEqual([]);
  });

  it("unknown process ids are sandbox.process_not_found; bad ids and signals are refused", async () => {
    const sb = t.get("bad-procs");
    expect(await code(sb.killProcess("nope"))).toBe("sandbox.process_not_found: Process not found: nope");
    expect(await code(sb.getProcessLogs("nope"))).toBe("sandbox.process_not_found: Process not found: nope");
    expect(await sb.getProcess("nope")).toBeNull();
    expect(await code(sb.killProcess("a b"))).toMatch(/^sandbox.invalid_argument: a process id must be/);
    const p = await sb.startProcess("sleep 30", { processId: "p1" });
    expect(await code(sb.startProcess("true", { processId: "p1" }))).toBe(
      "sandbox.process_exists: a process with id p1 is already running",
    );
    expect(await code(p.kill("SIGNOPE; rm -rf /"))).toBe(
      'sandbox.invalid_argument: unknown signal "SIGNOPE; rm -rf /"',
    );
    await p.kill("SIGKILL");
    expect(await code(p.waitForLog("never", 200))).toMatch(
      /^sandbox.process_exited: process p1 exited before/,
    );
  });

  it("bad timeouts and commands are sandbox.invalid_argument; a timeout is sandbox.command_timeout", async () => {
    const sb = t.get("bad-cmds");
    expect(await code(sb.exec("true", { timeout: -1 }))).toBe(
      "sandbox.invalid_argument: timeout must be a positive number of milliseconds (got -1)",
    );
    expect(await code(sb.exec(""))).toBe("sandbox.invalid_argument: the command must be a non-empty string");
    expect(await code(sb.exec("echo", { env: { "BAD NAME": "x" } }))).toBe(
      'sandbox.invalid_argument: env: "BAD NAME" is not a valid variable name',
    );
    expect(
      await code(
        sb.execStream("sleep 10", { timeout: 100 }).then(async (s) => {
          const { parseSSEStream } = await import("@cairn/sandbox");
          for await (const e of parseSSEStream<{ type: string; error?: string }>(s))
            if (e.type === "error") throw new SandboxError("sandbox.command_timeout", e.error as string);
        }),
      ),
    ).toBe("sandbox.command_timeout: (sandbox.command_timeout) Command timeout after 100ms");
  });

  it("output floods: exec stops at its cap (sandbox.output_limit); process logs keep the last 1 MiB", async () => {
    const sb = t.get("bad-flood");
    expect(await code(sb.exec("yes abcdefghij | head -c 40000000"))).toBe(
      "sandbox.output_limit: the command wrote more than 16777216 bytes of output; it was stopped",
    );
    expect((await sb.exec("echo still-fine")).stdout).toBe("still-fine\n");
    const p = await sb.startProcess("head -c 5000000 /dev/zero | tr '\\0' a; echo END");
    await p.waitForExit();
    const logs = await p.getLogs();
    expect(Buffer.byteLength(logs.stdout)).toBeLessThanOrEqual(1024 * 1024);
    expect(logs.stdout.endsWith("aaaa\nEND\n") || logs.stdout.endsWith("aEND\n")).toBe(true);
  });
});

describe("isolation", () => {
  it("a place for the jail's execute-only binaries that cannot be written is sandbox.isolation_unavailable", async () => {
    const file = join(t.root, "not-a-dir");
    writeFileSync(file, "");
    const before = process.env.CAIRN_JAIL_BIN_DIR;
    process.env.CAIRN_JAIL_BIN_DIR = join(file, "bin");
    try {
      expect(await code(t.get("err-bindir").exec("true"))).toMatch(
        /^sandbox.isolation_unavailable: cannot keep the jail's execute-only copy of .* \(set CAIRN_JAIL_BIN_DIR to a directory of this user\): ENOTDIR/,
      );
    } finally {
      if (before === undefined) delete process.env.CAIRN_JAIL_BIN_DIR;
      else process.env.CAIRN_JAIL_BIN_DIR = before;
    }
    expect((await t.get("err-bindir").exec("echo ok")).stdout).toBe("ok\n");
  });

  it("getSandbox fails with sandbox.isolation_unavailable and the reason; never a silent fallback", async () => {
    const fake = join(t.root, "fake-bwrap");
    writeFileSync(fake, "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n");
    chmodSync(fake, 0o755);
    try {
      configureSandboxes({ bwrap: join(t.root, "missing-bwrap") });
      expect(await code(t.get("no-bwrap").exec("true"))).toBe(
        `sandbox.isolation_unavailable: bwrap (bubblewrap) is not installed at ${join(t.root, "missing-bwrap")}: apt-get install bubblewrap`,
      );
      configureSandboxes({ bwrap: fake });
      expect(await code(t.get("broken-bwrap").exec("true"))).toMatch(
        /^sandbox.isolation_unavailable: a trial jail failed \(exit 1\): bwrap: setting up uid map: Permission denied/,
      );
      expect((await t.get("broken-bwrap").info()).running).toBe(false);
    } finally {
      configureSandboxes({ bwrap: undefined });
    }
  });

  it('isolation "none" runs without a jail, with a warning on every start', async () => {
    const warnings: string[] = [];
    try {
      configureSandboxes({ isolation: "none", warn: (m) => warnings.push(m) });
      const a = t.get("none-a");
      const b = t.get("none-b");
      const r = await a.exec("pwd");
      expect(r.stdout).toBe(`${join(t.dir, "none-a", "workspace")}\n`);
      await b.ping();
      expect((await a.info()).driver).toBe("none");
      expect(warnings).toEqual([
        'sandbox none-a: isolation "none": commands run as this user on this machine, with no jail (development only)',
        'sandbox none-b: isolation "none": commands run as this user on this machine, with no jail (development only)',
      ]);
      await a.destroy();
      await b.destroy();
    } finally {
      configureSandboxes({ isolation: "bwrap", warn: (m) => console.warn(m) });
    }
  });

  it('isolation "none": nothing outlives a SIGKILL of the Cairn process', async () => {
    const script = join(t.root, "none-crash.ts");
    writeFileSync(
      script,
      `import { openSandboxes } from ${JSON.stringify(join(import.meta.dirname, "helpers.ts"))};
const t = openSandboxes(undefined, "none");
const sb = t.get("none-crash");
await sb.startProcess("sleep 3456.5");
process.stdout.write("ready\\n");
setInterval(() => {}, 1000);
`,
    );
    const pids = (p: string) =>
      spawnSync("pgrep", ["-f", p], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    const child = spawn(process.execPath, ["--conditions=source", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => String(d).includes("ready") && resolve());
      child.once("exit", (c) => reject(new Error(`child exited ${c}`)));
    });
    expect(pids("sleep 3456.5")).toHaveLength(1);
    child.kill("SIGKILL");
    for (let i = 0; i < 100 && pids("sleep 3456.5").length > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(pids("sleep 3456.5")).toEqual([]);
    expect(pids(`${join(t.dir, "none-crash")}`)).toEqual([]);
  });
});
