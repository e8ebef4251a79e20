// The sandbox API (SPEC §14.1) against real bubblewrap jails.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type ExecEvent,
  type LegacyExecEvent,
  parseSSEStream,
  SandboxError,
  stopAllJails,
} from "@cairn/sandbox";
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

describe("sandbox API", () => {
  it("exec runs a shell command in the jail and returns its result", async () => {
    const sb = t.get("api-exec");
    expect(await sb.ping()).toBe("pong");
    const r = await sb.exec("echo out; echo err >&2; id -u; exit 3");
    expect(r).toMatchObject({
      success: false,
      exitCode: 3,
      stdout: "out\n1000\n",
      stderr: "err\n",
      command: "echo out; echo err >&2; id -u; exit 3",
    });
    expect(typeof r.duration).toBe("number");
    expect(new Date(r.timestamp).toString()).not.toBe("Invalid Date");
    expect(r.sessionId).toBe("sandbox-api-exec");
    const ok = await sb.exec("pwd");
    expect(ok).toMatchObject({ success: true, exitCode: 0, stdout: "/workspace\n" });
  });

  it("exec with options: env, cwd, callbacks; timeout is sandbox.command_timeout", async () => {
    const sb = t.get("api-opts");
    const seen: string[] = [];
    let completed: unknown;
    const r = await sb.exec('echo "$GREETING from $PWD"', {
      env: { GREETING: "hi" },
      cwd: "/tmp",
      onOutput: (s, d) => seen.push(`${s}:${d}`),
      onComplete: (res) => (completed = res),
    });
    expect(r.stdout).toBe("hi from /tmp\n");
    expect(seen.join("")).toBe("stdout:hi from /tmp\n");
    expect(completed).toEqual(r);
    const err = await sb.exec("sleep 30", { timeout: 300 }).catch((e) => e);
    expect(SandboxError.is(err, "sandbox.command_timeout")).toBe(true);
    expect(err.message).toBe("(sandbox.command_timeout) Command timeout after 300ms");
    // The session still works after a timeout.
    expect((await sb.exec("echo alive")).stdout).toBe("alive\n");
  });

  it("sessions are persistent shells: cwd and exports carry over; sessions are separate", async () => {
    const sb = t.get("api-sessions");
    await sb.exec("mkdir -p /workspace/sub && cd /workspace/sub && export FOO=bar && f() { echo fn; }");
    expect((await sb.exec('echo "$PWD $FOO"; f')).stdout).toBe("/workspace/sub bar\nfn\n");
    const other = await sb.createSession({ id: "other", env: { X: "1" }, cwd: "/tmp" });
    expect((await other.exec('echo "$PWD $FOO $X"')).stdout).toBe("/tmp  1\n");
    await sb.setEnvVars({ ADDED: "yes" });
    expect((await sb.exec('echo "$ADDED"')).stdout).toBe("yes\n");
    await sb.deleteSession("other");
    // A deleted session starts afresh when used again.
    const again = await sb.getSession("other");
    expect((await again.exec('echo "[$X]"')).stdout).toBe("[]\n");
  });

  it("the seed's exec(command, args) runs argv without a shell, and streams the old events", async () => {
    const sb = t.get("api-legacy");
    const r = (await sb.exec("echo", ["a b", "$HOME"])) as { stdout: string; exitCode: number };
    expect(r.stdout).toBe("a b $HOME\n");
    const events: LegacyExecEvent[] = [];
    for await (const e of (await sb.exec("sh", ["-c", "echo one; echo two >&2"], {
      stream: true,
    })) as AsyncIterable<LegacyExecEvent>)
      events.push(e);
    expect(events[0]?.type).toBe("command_start");
    expect(events.at(-1)).toMatchObject({
      type: "command_complete",
      exitCode: 0,
      success: true,
      stdout: "one\n",
      stderr: "two\n",
    });
    expect(
      events
        .filter((e) => e.type === "output")
        .map((e) => e.stream)
        .sort(),
    ).toEqual(["stderr", "stdout"]);
  });

  it("execStream yields start, output and complete in order (parseSSEStream)", async () => {
    const sb = t.get("api-stream");
    const stream = await sb.execStream("echo a; sleep 0.2; echo b >&2; exit 2");
    const events: ExecEvent[] = [];
    for await (const e of parseSSEStream<ExecEvent>(stream)) events.push(e);
    expect(events.map((e) => e.type)).toEqual(["start", "stdout", "stderr", "complete"]);
    expect(events[0]?.pid).toBeGreaterThan(0);
    expect(events[1]?.data).toBe("a\n");
    expect(events[2]?.data).toBe("b\n");
    expect(events[3]?.exitCode).toBe(2);
  });

  it("files: write/read utf-8 and base64, mkdir, list, exists, rename, move, delete", async () => {
    const sb = t.get("api-files");
    await sb.mkdir("dir/nested", { recursive: true });
    await sb.writeFile("dir/a.txt", "héllo");
    expect(await sb.readFile("/workspace/dir/a.txt")).toMatchObject({
      content: "héllo",
      encoding: "utf-8",
      isBinary: false,
      size: 6,
      mimeType: "text/plain",
    });
    const bin = Buffer.from([0, 1, 2, 255]);
    await sb.writeFile("dir/b.bin", bin.toString("base64"), { encoding: "base64" });
    expect(await sb.readFile("dir/b.bin")).toMatchObject({
      content: "AAEC/w==",
      encoding: "base64",
      isBinary: true,
      size: 4,
    });
    expect((await sb.readFile("dir/a.txt", { encoding: "base64" })).content).toBe(
      Buffer.from("héllo").toString("base64"),
    );
    const list = await sb.listFiles("dir", { recursive: true });
    expect(list.files.map((f) => [f.relativePath, f.type])).toEqual([
      ["a.txt", "file"],
      ["b.bin", "file"],
      ["nested", "directory"],
    ]);
    expect((await sb.exists("dir/a.txt")).exists).toBe(true);
    await sb.renameFile("dir/a.txt", "dir/c.txt");
    await sb.moveFile("dir/c.txt", "dir/nested/c.txt");
    expect((await sb.exists("dir/a.txt")).exists).toBe(false);
    expect((await sb.exec("cat dir/nested/c.txt")).stdout).toBe("héllo");
    await sb.deleteFile("dir/nested/c.txt");
    expect((await sb.exists("dir/nested/c.txt")).exists).toBe(false);
    const missing = await sb.readFile("nope.txt").catch((e) => e);
    expect(SandboxError.is(missing, "sandbox.file_not_found")).toBe(true);
    // The workspace is the sandbox's directory on the host.
    expect(readFileSync(join(t.dir, "api-files", "workspace", "dir", "b.bin"))).toEqual(bin);
  });

  it("startProcess: Process handles, waitForLog, waitForExit, logs, list, kill of the whole tree", async () => {
    const sb = t.get("api-proc");
    const p = await sb.startProcess("echo starting; sleep 0.3; echo ready-now; sleep 60", {
      processId: "web",
    });
    expect(p).toMatchObject({
      id: "web",
      status: "running",
      command: "echo starting; sleep 0.3; echo ready-now; sleep 60",
    });
    const hit = await p.waitForLog(/ready-(\w+)/);
    expect(hit.line).toBe("ready-now");
    expect(hit.match?.[1]).toBe("now");
    expect((await sb.listProcesses()).map((x) => x.id)).toContain("web");
    // A tree: the shell, a child and a grandchild.
    const tree = await sb.startProcess("sh -c 'sleep 100 & sleep 100 & wait' & wait", { processId: "tree" });
    await new Promise((r) => setTimeout(r, 200));
    expect(Number((await sb.exec("pgrep -c sleep")).stdout.trim())).toBeGreaterThanOrEqual(3);
    await tree.kill("SIGKILL");
    expect((await tree.waitForExit()).exitCode).toBe(137);
    expect(await tree.getStatus()).toBe("killed");
    await sb.killProcess("web");
    expect((await p.waitForExit()).exitCode).toBe(143);
    expect((await sb.exec("pgrep -c sleep || true")).stdout.trim()).toBe("0");
    expect((await p.getLogs()).stdout).toBe("starting\nready-now\n");
    const done = await sb.startProcess("exit 4");
    expect(await done.waitForExit()).toEqual({ exitCode: 4 });
    expect(await done.getStatus()).toBe("failed");
    const unknown = await sb.killProcess("nope").catch((e) => e);
    expect(SandboxError.is(unknown, "sandbox.process_not_found")).toBe(true);
  });

  it("waitForPort, exposePort and proxyToSandbox reach a server inside the jail", async () => {
    const { proxyToSandbox } = await import("@cairn/sandbox");
    const sb = t.get("api-ports");
    await sb.writeFile(
      "server.py",
      [
        "import http.server",
        "class H(http.server.BaseHTTPRequestHandler):",
        "    def do_GET(self):",
        "        b = ('hello ' + self.path).encode()",
        "        self.send_response(200); self.send_header('content-length', str(len(b))); self.end_headers(); self.wfile.write(b)",
        "http.server.HTTPServer(('127.0.0.1', 8080), H).serve_forever()",
      ].join("\n"),
    );
    const p = await sb.startProcess("python3 server.py");
    await p.waitForPort(8080, { mode: "http", path: "/", interval: 100, timeout: 15_000 });
    const { url, port } = await sb.exposePort(8080, { name: "web" });
    expect(port).toBe(8080);
    expect(url).toMatch(/^http:\/\/localhost\/_cairn\/sandbox\/api-ports\/ports\/8080\/[a-z0-9_-]{16}\/$/);
    const res = await proxyToSandbox(new Request(`${url}x?y=1`));
    expect(res?.status).toBe(200);
    expect(await res?.text()).toBe("hello /x?y=1");
    expect(await sb.isPortExposed(8080)).toBe(true);
    const bad = await proxyToSandbox(new Request(url.replace(/\/[a-z0-9_-]{16}\/$/, "/wrongtoken000000/")));
    expect(bad?.status).toBe(404);
    expect(await proxyToSandbox(new Request("http://localhost/other"))).toBeNull();
    await sb.unexposePort(8080);
    expect((await proxyToSandbox(new Request(url)))?.status).toBe(404);
  });

  it("sleepAfter stops an idle jail; the next call starts it again with the workspace kept", async () => {
    const sb = t.get("api-sleep", { sleepAfter: "1s" });
    await sb.writeFile("kept.txt", "kept");
    await sb.startProcess("sleep 1000");
    const pid = (await sb.info()).running;
    expect(pid).toBe(true);
    for (let i = 0; i < 200 && (await sb.info()).running; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await sb.info()).running).toBe(false);
    expect((await sb.readFile("kept.txt")).content).toBe("kept");
    // The process went with the jail; its record stays (SPEC §14.6).
    const procs = await sb.listProcesses();
    expect(procs.map((p) => [p.command, p.status])).toEqual([["sleep 1000", "killed"]]);
  });

  it("a command longer than sleepAfter is activity: the jail is not stopped under it", async () => {
    const sb = t.get("api-long", { sleepAfter: "300ms" });
    const r = await sb.exec("sleep 1.2; echo done");
    expect(r.stdout).toBe("done\n");
  });

  it("destroy() stops every process and removes the sandbox's directory", async () => {
    const sb = t.get("api-destroy");
    await sb.startProcess("sleep 1000");
    await sb.writeFile("f.txt", "x");
    const info = await sb.info();
    expect(info).toMatchObject({ running: true, driver: "bwrap" });
    expect(["v1", "v2", "rlimits"]).toContain(info.limits.mode);
    await sb.destroy();
    expect(existsSync(join(t.dir, "api-destroy"))).toBe(false);
    expect((await sb.info()).running).toBe(false);
  });
});
