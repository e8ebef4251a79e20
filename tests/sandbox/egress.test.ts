// Network egress: off by default; with network "egress" only the allowed destinations, through
// Cairn's allow-list proxy. gitCheckout of a repository served on the host's 127.0.0.1.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";
import { configureSandboxes, egressAllowed, SandboxError, stopAllJails } from "@cairn/sandbox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSandboxes } from "./helpers.ts";

let t: ReturnType<typeof openSandboxes>;
let server: Server;
let other: Server;
let port: number;
let otherPort: number;
let requests = 0;

/** A static server of a directory: git's "dumb" HTTP protocol. */
function serve(root: string, count: () => void): Promise<Server> {
  const s = createServer((req, res) => {
    count();
    const file = normalize(join(root, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)));
    if (!file.startsWith(root)) return void res.writeHead(403).end();
    try {
      res.end(readFileSync(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((r) => s.listen(0, "127.0.0.1", () => r(s)));
}

beforeAll(async () => {
  const root = mkdtempSync(join(tmpdir(), "cairn-git-"));
  const git = (...args: string[]) => execFileSync("git", args, { cwd: root, stdio: "pipe" });
  git("init", "-q", "-b", "main", "work");
  execFileSync(
    "sh",
    ["-c", "echo hello > README && git add README && git -c user.email=a@b -c user.name=a commit -qm first"],
    { cwd: join(root, "work") },
  );
  git("clone", "-q", "--bare", "work", "repo.git");
  execFileSync("git", ["update-server-info"], { cwd: join(root, "repo.git") });
  server = await serve(root, () => requests++);
  other = await serve(root, () => {});
  port = (server.address() as AddressInfo).port;
  otherPort = (other.address() as AddressInfo).port;
  t = openSandboxes();
});

afterAll(async () => {
  await stopAllJails();
  configureSandboxes({ network: "none", allow: [] });
  server?.close();
  other?.close();
  await t.host.close();
});

describe("egress", () => {
  it("the allow-list matches host:port (or host:*)", () => {
    expect(egressAllowed("127.0.0.1:80", ["127.0.0.1:80"])).toBe(true);
    expect(egressAllowed("127.0.0.1:81", ["127.0.0.1:80"])).toBe(false);
    expect(egressAllowed("Example.com:443", ["example.com:*"])).toBe(true);
    expect(egressAllowed("example.org:443", ["example.com:*"])).toBe(false);
  });

  it("without egress, gitCheckout cannot reach the host (sandbox.git_failed)", async () => {
    const sb = t.get("git-none");
    const e = await sb.gitCheckout(`http://127.0.0.1:${port}/repo.git`).catch((x) => x);
    expect(SandboxError.is(e, "sandbox.git_failed")).toBe(true);
    expect(requests).toBe(0);
  });

  it("with egress and an allow-list, gitCheckout clones from 127.0.0.1; other destinations are refused", async () => {
    configureSandboxes({ network: "egress", allow: [`127.0.0.1:${port}`] });
    const sb = t.get("git-egress");
    const r = await sb.gitCheckout(`http://127.0.0.1:${port}/repo.git`, { targetDir: "/workspace/repo" });
    expect(r).toMatchObject({ success: true, branch: "main", targetDir: "/workspace/repo" });
    expect((await sb.readFile("repo/README")).content).toBe("hello\n");
    expect(requests).toBeGreaterThan(0);
    const denied = await sb
      .gitCheckout(`http://127.0.0.1:${otherPort}/repo.git`, { targetDir: "/workspace/denied" })
      .catch((x) => x);
    expect(SandboxError.is(denied, "sandbox.git_failed")).toBe(true);
    expect(denied.message).toMatch(/403/);
    const direct = await sb.exec(
      `python3 -c "import socket; socket.create_connection(('127.0.0.1', ${port}), timeout=3)"`,
    );
    expect(direct.stderr).toMatch(/ConnectionRefusedError/);
  });

  it("bad allow entries are refused", async () => {
    configureSandboxes({ network: "egress", allow: ["not a host"] });
    const e = await t
      .get("git-bad")
      .exec("true")
      .catch((x) => x);
    expect(e.message).toMatch(/allow: "not a host" is not host:port/);
    configureSandboxes({ network: "none", allow: [] });
  });
});
