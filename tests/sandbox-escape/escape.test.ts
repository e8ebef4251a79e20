// Every escape attempt of SPEC §14.5, each from inside a real bubblewrap jail: each must fail with
// a clear error, and the host must be unchanged.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { ControlClient, listJails, SandboxError, stopAllJails } from "@cairn/sandbox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSandboxes } from "../sandbox/helpers.ts";

let t: ReturnType<typeof openSandboxes>;
beforeAll(() => {
  t = openSandboxes({ memory: "192MiB", pids: 64, tmp: "10MiB" });
});
afterAll(async () => {
  await stopAllJails();
  await t.host.close();
});

type Sb = ReturnType<typeof t.get>;
/** Runs a Python script inside the sandbox; returns its stdout lines as `name=result`. */
async function py(sb: Sb, code: string): Promise<Record<string, string>> {
  await sb.writeFile("/tmp/t.py", code);
  const r = await sb.exec("python3 /tmp/t.py");
  expect(r.stderr).toBe("");
  return Object.fromEntries(
    r.stdout
      .trim()
      .split("\n")
      .map((l) => l.split("=", 2) as [string, string]),
  );
}

function hostPids(pattern: string): number[] {
  const r = spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" });
  return r.stdout.split("\n").filter(Boolean).map(Number);
}

describe("escape attempts (SPEC §14.5)", () => {
  it("cannot write under /usr or /", async () => {
    const sb = t.get("esc-ro");
    const r = await sb.exec(
      "touch /usr/cairn-escape; echo $?; touch /cairn-escape; echo $?; echo x > /etc/passwd; echo $?",
    );
    expect(r.stdout).toBe("1\n1\n1\n");
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(existsSync("/usr/cairn-escape")).toBe(false);
    expect(existsSync("/cairn-escape")).toBe(false);
  });

  it("cannot read host files: /etc/shadow, the store, the project directory", async () => {
    const sb = t.get("esc-read");
    expect(existsSync("/etc/shadow")).toBe(true);
    const r = await sb.exec(`cat /etc/shadow; ls ${t.root}; ls ${process.cwd()}`);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr.match(/No such file or directory/g)?.length).toBe(3);
  });

  it("cannot see host processes", async () => {
    const sb = t.get("esc-proc");
    const r = await sb.exec("cat /proc/[0-9]*/comm");
    const comms = r.stdout.trim().split("\n");
    expect(comms.length).toBeLessThan(10);
    expect(comms).not.toContain("vitest");
    for (const c of ["postgres", "systemd", "sshd"]) expect(comms).not.toContain(c);
    expect(comms.filter((c) => c === "init")).toEqual(["init"]);
    // pid 1 is Cairn's init (the jail's reaper).
    expect(comms[0]).toBe("init");
  });

  it("kill -9 1 reaches only the jail's own init", async () => {
    const sb = t.get("esc-kill");
    const r = await sb.exec("kill -9 1; echo rc=$?; echo done");
    expect(r.stdout).toContain("done");
    expect((await sb.exec("cat /proc/1/comm")).stdout).toBe("init\n");
    expect(await sb.ping()).toBe("pong");
    expect(existsSync("/proc/1")).toBe(true);
  });

  it("has no network: the internet, DNS and the host's 127.0.0.1 are unreachable", async () => {
    let hits = 0;
    const server = createServer((_q, s) => {
      hits++;
      s.end("host");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const sb = t.get("esc-net");
    const out = await py(
      sb,
      `import socket
def tcp(host, port):
    try:
        socket.create_connection((host, port), timeout=3); return "connected"
    except OSError as e: return type(e).__name__ + ":" + str(e.errno)
print("host=" + tcp("127.0.0.1", ${port}))
print("internet=" + tcp("1.1.1.1", 80))
try:
    socket.getaddrinfo("example.com", 80); print("dns=resolved")
except OSError as e: print("dns=" + type(e).__name__)
`,
    );
    server.close();
    expect(out.host).toBe("ConnectionRefusedError:111");
    expect(out.internet).toBe("OSError:101");
    expect(out.dns).toBe("gaierror");
    expect(hits).toBe(0);
  });

  it("raw sockets, mknod, mount, chroot, sethostname are refused (EPERM)", async () => {
    const sb = t.get("esc-priv");
    const out = await py(
      sb,
      `import os, socket, stat
def attempt(name, f):
    try:
        f(); print(name + "=allowed")
    except OSError as e: print(name + "=" + str(e.errno))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("mknod", lambda: os.mknod("/tmp/null", stat.S_IFCHR | 0o600, os.makedev(1, 3)))
attempt("chroot", lambda: os.chroot("/tmp"))
attempt("sethostname", lambda: socket.sethostname("escaped"))
`,
    );
    expect(out).toEqual({ raw: "1", mknod: "1", chroot: "1", sethostname: "1" });
    const m = await sb.exec("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m");
    expect(m.exitCode).not.toBe(0);
    expect(m.stderr).toMatch(/permission denied|not permitted|must be superuser/i);
  });

  it("nested user namespaces (unshare -Ur) are refused", async () => {
    const sb = t.get("esc-userns");
    const r = await sb.exec("unshare -Ur id");
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
    expect(r.stdout).toBe("");
  });

  it("ptrace of a process and reading /proc/1/mem are refused; keyctl and bpf too", async () => {
    const sb = t.get("esc-ptrace");
    const nr = process.arch === "arm64" ? { keyctl: 219, bpf: 280 } : { keyctl: 250, bpf: 321 };
    const out = await py(
      sb,
      `import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
child = subprocess.Popen(["sleep", "30"])
rc = libc.ptrace(16, child.pid, 0, 0)
print("ptrace=%d:%d" % (rc, ctypes.get_errno()))
child.kill()
try:
    open("/proc/1/mem", "rb").read(1); print("mem=read")
except OSError as e: print("mem=%d" % e.errno)
for name, n in (("keyctl", ${nr.keyctl}), ("bpf", ${nr.bpf})):
    rc = libc.syscall(n, 0, 0, 0, 0, 0)
    print("%s=%d:%d" % (name, rc, ctypes.get_errno()))
`,
    );
    expect(out.ptrace).toBe("-1:1");
    // The jail's init is not dumpable: its /proc/1/mem cannot even be opened (EACCES).
    expect(out.mem).toBe("13");
    expect(out.keyctl).toBe("-1:1");
    expect(out.bpf).toBe("-1:1");
  });

  it("the jail's init and the supervisor refuse /proc/<pid>/mem, environ, maps, fd, cwd and ptrace", async () => {
    const sb = t.get("esc-procmem");
    const out = await py(
      sb,
      `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
sup = [p for p in os.listdir("/proc") if p.isdigit() and p != "1" and b"supervisor.mjs" in open("/proc/%s/cmdline" % p, "rb").read()]
print("supervisors=%d" % len(sup))
for name, pid in (("init", "1"), ("sup", sup[0])):
    for f in ("mem", "environ", "maps", "auxv", "stack"):
        try:
            with open("/proc/%s/%s" % (pid, f), "rb") as h: h.read(64); print("%s_%s=read" % (name, f))
        except OSError as e: print("%s_%s=%d" % (name, f, e.errno))
    try: os.readlink("/proc/%s/fd/0" % pid); print("%s_fd=read" % name)
    except OSError as e: print("%s_fd=%d" % (name, e.errno))
    try: os.readlink("/proc/%s/cwd" % pid); print("%s_cwd=read" % name)
    except OSError as e: print("%s_cwd=%d" % (name, e.errno))
    rc = libc.ptrace(16, int(pid), 0, 0)
    print("%s_ptrace=%d:%d" % (name, rc, ctypes.get_errno()))
# A command's own /proc stays readable (same trust domain): only init and the supervisor refuse.
with open("/proc/self/environ", "rb") as h: print("self_environ=%s" % ("read" if h.read() else "empty"))
`,
    );
    expect(out.supervisors).toBe("1");
    for (const name of ["init", "sup"]) {
      for (const f of ["mem", "environ", "maps", "auxv", "stack", "fd", "cwd"])
        expect({ [`${name}_${f}`]: out[`${name}_${f}`] }).toEqual({ [`${name}_${f}`]: "13" });
      expect(out[`${name}_ptrace`]).toBe("-1:1");
    }
    expect(out.self_environ).toBe("read");
    expect(await sb.ping()).toBe("pong");
  });

  it("a symlink in the workspace to a host file reads the jail's view, never the host file", async () => {
    const sb = t.get("esc-link");
    const secret = join(t.root, "secret.txt");
    writeFileSync(secret, "host secret");
    await sb.exec("ln -s /etc/shadow /workspace/x");
    // Planted from the host side as well: the link's target is a host path.
    symlinkSync(secret, join(t.dir, "esc-link", "workspace", "y"));
    for (const p of ["/workspace/x", "y"]) {
      const e = await sb.readFile(p).catch((err) => err);
      expect(SandboxError.is(e, "sandbox.file_not_found")).toBe(true);
    }
    const w = await sb.writeFile("y", "overwritten").catch((e) => e);
    expect(SandboxError.is(w, "sandbox.file_not_found")).toBe(true);
    expect(readFileSync(secret, "utf8")).toBe("host secret");
  });

  it("../ and absolute paths in the API resolve inside the jail", async () => {
    const sb = t.get("esc-dots");
    const passwd = await sb.readFile("../../../etc/passwd");
    expect(passwd.content).toContain("user:x:1000:1000:sandbox:/home/user:/bin/bash");
    expect(passwd.content).not.toBe(readFileSync("/etc/passwd", "utf8"));
    await sb.writeFile("../../../tmp/cairn-dots-escape", "x");
    expect(existsSync("/tmp/cairn-dots-escape")).toBe(false);
    expect((await sb.exec("cat /tmp/cairn-dots-escape")).stdout).toBe("x");
  });

  it("a fork bomb stops at the pids limit; other sandboxes and Cairn are unaffected", async () => {
    const sb = t.get("esc-fork");
    const other = t.get("esc-fork-other");
    await other.ping();
    const mode = (await sb.info()).limits.mode;
    const out = await py(
      sb,
      `import os, time
n = 0
try:
    while n < 2000:
        pid = os.fork()
        if pid == 0:
            time.sleep(5); os._exit(0)
        n += 1
    print("forks=%d" % n)
except OSError as e:
    print("forks=%d" % n)
    print("error=%d" % e.errno)
`,
    );
    if (mode === "rlimits") {
      // No per-sandbox pids cap without cgroups (reported by info().limits.mode).
      expect(Number(out.forks)).toBeGreaterThan(0);
    } else {
      expect(out.error).toBe("11");
      expect(Number(out.forks)).toBeLessThan(64);
    }
    expect((await other.exec("echo fine")).stdout).toBe("fine\n");
    await sb.exec("pkill sleep || true");
  });

  it("allocating past the memory limit kills that command (exit 137), not the sandbox or Cairn", async () => {
    const sb = t.get("esc-mem");
    const other = t.get("esc-mem-other");
    await other.ping();
    const r = await sb.exec("python3 -c \"b = b'x' * (600 * 1024 * 1024); import time; time.sleep(3)\"");
    expect(r.exitCode).toBe(137);
    expect(await sb.ping()).toBe("pong");
    expect((await other.exec("echo fine")).stdout).toBe("fine\n");
  });

  it("filling /tmp stops at its size (ENOSPC)", async () => {
    const sb = t.get("esc-tmp");
    const r = await sb.exec("dd if=/dev/zero of=/tmp/fill bs=1M count=50; stat -c %s /tmp/fill");
    expect(r.stderr).toMatch(/No space left on device/);
    expect(Number(r.stdout.trim().split("\n").pop())).toBeLessThanOrEqual(10 * 1024 * 1024);
  });

  it("filling the workspace stops at the disk limit (sandbox.disk_full); deleting files goes on", async () => {
    const sb = t.get("esc-disk", { limits: { disk: "2MiB" } });
    await sb.writeFile("/workspace/half", "x".repeat(512 * 1024));
    // A command that goes over the limit ran, and answers sandbox.disk_full.
    await expect(sb.exec("head -c 3000000 /dev/zero > /workspace/big")).rejects.toMatchObject({
      code: "sandbox.disk_full",
      message: expect.stringMatching(/over its disk limit of 2097152 bytes/),
    });
    // Writes are refused before anything is written; home counts too.
    await expect(sb.writeFile("/home/user/more", "y")).rejects.toMatchObject({ code: "sandbox.disk_full" });
    await expect(sb.exists("/home/user/more")).resolves.toMatchObject({ exists: false });
    // A write that would cross the limit is refused while under it.
    await sb.exec("rm /workspace/big");
    await expect(sb.writeFile("/workspace/huge", "z".repeat(2 * 1024 * 1024))).rejects.toMatchObject({
      code: "sandbox.disk_full",
      message: expect.stringMatching(/would take/),
    });
    await expect(sb.exists("/workspace/huge")).resolves.toMatchObject({ exists: false });
    await sb.writeFile("/workspace/small", "ok");
    expect((await sb.exec("cat /workspace/small")).stdout).toBe("ok");
    expect((await sb.info()).limits.disk).toBe(2 * 1024 * 1024);
  });

  it("another sandbox's control socket is not mounted", async () => {
    const a = t.get("esc-sock-a");
    const b = t.get("esc-sock-b");
    await a.ping();
    await b.ping();
    const jails = listJails().filter((j) => j.id === "esc-sock-a" || j.id === "esc-sock-b");
    const bSocket = jails.find((j) => j.id === "esc-sock-b")?.jail.client.socketPath as string;
    expect(existsSync(bSocket)).toBe(true);
    const r = await a.exec(`ls /run/cairn; ls ${bSocket}`);
    expect(r.stdout.trim().split("\n")).toEqual(["ctl.sock", "etc"]);
    expect(r.stderr).toMatch(/No such file or directory/);
  });

  it("the control API refuses calls without the token (401), from the host and from inside", async () => {
    const sb = t.get("esc-token");
    await sb.ping();
    const jail = listJails().find((j) => j.id === "esc-token")?.jail;
    const intruder = new ControlClient(jail?.client.socketPath as string, "wrong");
    expect(await intruder.status("GET", "/ping", "wrong")).toBe(401);
    intruder.close();
    const out = await py(
      sb,
      `import socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/cairn/ctl.sock")
s.sendall(b"POST /exec HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
print("status=" + s.recv(100).decode().split(" ")[1])
`,
    );
    expect(out.status).toBe("401");
  });

  it("nothing outlives destroy(), even after setsid and a double fork", async () => {
    const sb = t.get("esc-destroy");
    await sb.exec("setsid sh -c '(sleep 1234.5 &) ; sleep 1234.5 &' ; nohup sleep 1234.5 >/dev/null 2>&1 &");
    await sb.startProcess("sh -c 'setsid sleep 1234.5 & sleep 1234.5'");
    await new Promise((r) => setTimeout(r, 300));
    expect(hostPids("sleep 1234.5").length).toBeGreaterThanOrEqual(4);
    await sb.destroy();
    expect(hostPids("sleep 1234.5")).toEqual([]);
  });

  it("nothing outlives a SIGKILL of the Cairn process", async () => {
    const script = join(t.root, "crash.ts");
    writeFileSync(
      script,
      `import { openSandboxes } from ${JSON.stringify(join(process.cwd(), "tests/sandbox/helpers.ts"))};
const t = openSandboxes();
const sb = t.get("esc-crash");
await sb.exec("setsid sh -c '(sleep 2345.5 &)'; nohup sleep 2345.5 >/dev/null 2>&1 &");
await sb.startProcess("sleep 2345.5");
process.stdout.write("ready\\n");
setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, ["--conditions=source", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => String(d).includes("ready") && resolve());
      child.once("exit", (c) => reject(new Error(`child exited ${c}`)));
    });
    expect(hostPids("sleep 2345.5").length).toBeGreaterThanOrEqual(3);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    // The kernel tears the jail down (--die-with-parent, pid namespace): wait for it, then check.
    for (let i = 0; i < 100 && hostPids("sleep 2345.5").length > 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(hostPids("sleep 2345.5")).toEqual([]);
  });
});

describe("limits", () => {
  it("CPU time per command (RLIMIT_CPU) stops a busy loop", async () => {
    const sb = t.get("lim-cpu");
    const r = await sb.exec("while :; do :; done", { cpuSeconds: 1 });
    expect([137, 152]).toContain(r.exitCode);
  });
});
