/**
 * `GET /api/v1/sandboxes*`, `POST …/exec`, and `cairn sandbox exec|logs`, against a real server
 * (port 0) whose process runs real bubblewrap jails.
 */
import { spawn } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "@cairn/cli/main";
import { createApi, openApiDocument, type RunningServer, startServer } from "@cairn/server";
import { createCairn } from "cairnjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSandboxes } from "./helpers.ts";

let t: ReturnType<typeof openSandboxes>;
let server: RunningServer;
let close: () => Promise<void>;

beforeAll(async () => {
  t = openSandboxes();
  const cairn = await createCairn({ store: join(t.root, "cairn.db") });
  server = await startServer({ app: createApi({ runtime: cairn.runtime }), port: 0 });
  close = async () => {
    await server.close();
    await cairn.close();
  };
});
afterAll(async () => {
  await t.get("ops-live").destroy();
  await close();
  await t.host.close();
  rmSync(t.root, { recursive: true, force: true });
});

const api = async (path: string, init?: RequestInit) => {
  const r = await fetch(`${server.url}/api/v1${path}`, init);
  return { status: r.status, body: (await r.json()) as any };
};

async function cli(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    env: { CAIRN_URL: server.url },
    utc: true,
  });
  return { code, stdout, stderr };
}

describe("sandbox operations", () => {
  it("lists sandboxes with state, limits mode, processes, exposed ports and recent commands", async () => {
    const sb = t.get("ops-live");
    expect((await sb.exec("echo hi")).exitCode).toBe(0);
    expect((await sb.exec("exit 3")).exitCode).toBe(3);
    await sb.startProcess("sh -c 'echo started; echo oops >&2; sleep 300'", { processId: "srv" });
    await sb.exposePort(8080, { name: "web" });
    mkdirSync(join(t.dir, "ops-idle", "workspace"), { recursive: true });

    const { status, body } = await api("/sandboxes");
    expect(status).toBe(200);
    const ids = body.result.map((s: any) => s.id);
    expect(ids).toEqual(["ops-live", "ops-idle"]);
    const live = body.result[0];
    expect(live).toMatchObject({ id: "ops-live", state: "running", driver: "bwrap", network: "none" });
    expect(["v2", "v1", "rlimits"]).toContain(live.limits.mode);
    expect(live.exposedPorts).toEqual([{ port: 8080, name: "web" }]);
    expect(live.processes).toEqual([expect.objectContaining({ id: "srv", status: "running" })]);
    expect(live.recentCommands.map((c: any) => [c.command, c.exitCode])).toEqual([
      ["echo hi", 0],
      ["exit 3", 3],
    ]);
    expect(body.result[1]).toMatchObject({
      id: "ops-idle",
      state: "stopped",
      processes: [],
      exposedPorts: [],
      recentCommands: [],
      limits: { mode: "stopped" },
    });

    const one = await api("/sandboxes/ops-live");
    expect(one.body.result.id).toBe("ops-live");
    expect((await api("/sandboxes/ops-none")).status).toBe(404);
    const bad = await api("/sandboxes/Bad_Id!");
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].code).toBe("sandbox.invalid_id");
  });

  it("exec runs in a running sandbox; bad input and stopped sandboxes are clear errors", async () => {
    const post = (id: string, body: unknown) =>
      api(`/sandboxes/${id}/exec`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const ok = await post("ops-live", { command: "echo $((6 * 7)); echo err >&2; exit 4" });
    expect(ok.status).toBe(200);
    expect(ok.body.result).toMatchObject({ exitCode: 4, stdout: "42\n", stderr: "err\n", success: false });
    const stopped = await post("ops-idle", { command: "true" });
    expect(stopped.status).toBe(409);
    expect(stopped.body.errors[0].code).toBe("sandbox.not_running");
    const empty = await post("ops-live", { command: "" });
    expect(empty.status).toBe(400);
    expect(JSON.stringify(empty.body.errors)).toContain("command");
    const timeout = await post("ops-live", { command: "sleep 30", timeout: 300 });
    expect(timeout.status).toBe(504);
    expect(timeout.body.errors[0].message).toContain("Command timeout after 300ms");
    // The sandbox is unchanged by the errors: the last command with an exit code is still `exit 4`.
    const after = (await api("/sandboxes/ops-live")).body.result;
    expect(after.state).toBe("running");
    expect(after.recentCommands.map((c: any) => c.exitCode)).toContain(4);
  });

  it("cairn sandbox exec exits with the command's code; cairn sandbox logs shows processes and commands", async () => {
    const words = await cli(["sandbox", "exec", "ops-live", "--", "printf", "%s|", "a b", "it's"]);
    expect(words).toEqual({ code: 0, stdout: "a b|it's|", stderr: "" });
    const line = await cli(["sandbox", "exec", "ops-live", "--", "echo out; echo err >&2; exit 5"]);
    expect(line).toEqual({ code: 5, stdout: "out\n", stderr: "err\n" });
    const stopped = await cli(["sandbox", "exec", "ops-idle", "--", "true"]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain("(sandbox.not_running)");

    const logs = await cli(["sandbox", "logs", "ops-live", "srv"]);
    expect(logs).toEqual({ code: 0, stdout: "started\n", stderr: "oops\n" });
    const missing = await cli(["sandbox", "logs", "ops-live", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("sandbox.process_not_found");
    const summary = await cli(["sandbox", "logs", "ops-live"]);
    expect(summary.code).toBe(0);
    expect(summary.stdout).toContain("Sandbox ops-live: running");
    expect(summary.stdout).toMatch(/ 5 .*echo out; echo err >&2; exit 5/);
    expect(summary.stdout).toMatch(/srv\s+running/);
  });

  it("a jail run by another process of the project is listed running; exec says where it runs", async () => {
    const script = join(t.root, "other.ts");
    writeFileSync(
      script,
      `import { openSandboxes } from ${JSON.stringify(join(process.cwd(), "tests/sandbox/helpers.ts"))};
const t = openSandboxes(undefined, "bwrap", ${JSON.stringify(t.root)});
await t.get("ops-other").exec("true");
process.stdout.write("ready\\n");
setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, ["--conditions=source", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d) => String(d).includes("ready") && resolve());
        child.once("exit", (c) => reject(new Error(`the other process exited (${c})`)));
      });
      const other = (await api("/sandboxes/ops-other")).body.result;
      expect(other).toMatchObject({ id: "ops-other", state: "running", processes: [] });
      const exec = await api("/sandboxes/ops-other/exec", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ command: "true" }),
      });
      expect(exec.status).toBe(409);
      expect(exec.body.errors[0].message).toMatch(
        /runs in another process of this machine \(its jail is pid \d+\)/,
      );
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    }
    // Its jail went with it: stopped, and exec says so.
    for (let i = 0; i < 100 && (await api("/sandboxes/ops-other")).body.result.state === "running"; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect((await api("/sandboxes/ops-other")).body.result.state).toBe("stopped");
    const stopped = await api("/sandboxes/ops-other/exec", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: "true" }),
    });
    expect(stopped.body.errors[0].message).toMatch(
      /is stopped \(no jail runs it\): a call through getSandbox starts it again/,
    );
  });

  it("the routes are in the OpenAPI document", () => {
    const paths = (openApiDocument() as any).paths;
    expect(paths["/sandboxes"].get.operationId).toBe("listSandboxes");
    expect(paths["/sandboxes/{id}/exec"].post.operationId).toBe("execInSandbox");
  });
});
