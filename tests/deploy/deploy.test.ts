/**
 * The deployment files in deploy/, run as far as this machine allows (no Docker engine, no
 * systemd here): the systemd unit's ExecStart, the image's ENTRYPOINT + CMD and HEALTHCHECK, and
 * the compose file's Cairn command against a real PostgreSQL, each in a plain shell as a real
 * process, answering the health check and stopping cleanly on SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, buildCli, NODE } from "../../packages/cli/test/helpers.ts";
import { postgresUrl } from "../scale/harness.ts";

const DEPLOY = fileURLToPath(new URL("../../deploy/", import.meta.url));
const read = (file: string) => readFileSync(join(DEPLOY, file), "utf8");
const CAIRN = `"${NODE}" "${BIN}"`;
const quote = (arg: string) => (/^[\w./:=@?,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`);

let project: string;
let state: string;

beforeAll(async () => {
  await buildCli();
  project = mkdtempSync(join(tmpdir(), "cairn-deploy-"));
  state = mkdtempSync(join(tmpdir(), "cairn-deploy-state-"));
  writeFileSync(
    join(project, "wrangler.json"),
    JSON.stringify({
      name: "my-worker",
      main: "index.ts",
      workflows: [{ binding: "W", name: "w", class_name: "W" }],
    }),
  );
  writeFileSync(
    join(project, "index.ts"),
    `import { WorkflowEntrypoint } from "cloudflare:workers";
     export class W extends WorkflowEntrypoint { async run(event, step) { return await step.do("one", async () => 1); } }`,
  );
}, 180_000);

afterAll(() => {
  for (const d of [project, state]) if (d) rmSync(d, { recursive: true, force: true });
});

interface Shell {
  child: ChildProcess;
  url: Promise<string>;
  output: () => { stdout: string; stderr: string };
  exited: Promise<number | null>;
}

/** Runs a command line in a plain shell (`bash -c "exec …"`), as systemd or a container would. */
function shell(command: string, env: Record<string, string> = {}): Shell {
  const child = spawn("bash", ["-c", `exec ${command}`], {
    cwd: project,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: state, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      stdout += d;
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`exited with ${code}:\n${stderr}`)));
  });
  url.catch(() => {}); // awaited by the tests that expect a server
  return { child, url, exited, output: () => ({ stdout, stderr }) };
}

async function health(url: string) {
  const res = await fetch(`${url}/api/v1/health`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function stop(s: Shell): Promise<number | null> {
  s.child.kill("SIGTERM");
  return s.exited;
}

describe("deploy/cairn.service", () => {
  it("its ExecStart serves the project with the store in the state directory, and stops on SIGTERM", async () => {
    const unit = read("cairn.service");
    const exec = /^ExecStart=(.+)$/m.exec(unit)![1]!;
    expect(/^KillSignal=SIGTERM$/m.test(unit)).toBe(true);
    const command = exec
      .replace("/srv/my-worker/node_modules/.bin/cairn", CAIRN)
      .replaceAll("/srv/my-worker", project)
      .replaceAll("/var/lib/cairn", state)
      .replace("--port 8787", "--port 0");
    const s = shell(command, { NODE_ENV: "production" });
    const url = await s.url;
    expect(await health(url)).toEqual({
      status: 200,
      body: { status: "ok", store: "sqlite", version: expect.any(String) },
    });
    expect(await stop(s)).toBe(0);
    // --log-format json: every line on stderr is a JSON record.
    for (const line of s.output().stderr.trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
    expect(readFileSync(join(state, "cairn.db")).subarray(0, 15).toString()).toBe("SQLite format 3");
  }, 60_000);
});

describe("deploy/Dockerfile", () => {
  const dockerfile = read("Dockerfile");
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.+\])$/m.exec(dockerfile)![1]!) as string[];
  const cmd = JSON.parse(/^CMD (\[.+\])$/m.exec(dockerfile)![1]!) as string[];
  const healthcheck = /^HEALTHCHECK .*? CMD (.+)$/m.exec(dockerfile)![1]!;
  const commandLine = (data: string) =>
    [...entrypoint, ...cmd]
      .map((a) =>
        a === "node_modules/.bin/cairn" ? CAIRN : quote(a.replace("/data", data).replace(/^8787$/, "0")),
      )
      .join(" ");

  it("its entry command serves on all interfaces with a token, and its health check passes, then fails once stopped", async () => {
    expect(entrypoint).toEqual(["node_modules/.bin/cairn"]);
    const s = shell(commandLine(state), { CAIRN_TOKEN: "deploy-token", NODE_ENV: "production" });
    const url = await s.url;
    const port = new URL(url).port;
    expect((await health(url)).status).toBe(200);
    expect((await fetch(`${url}/api/v1/workflows`)).status).toBe(401);
    const check = (cmdline: string) =>
      new Promise<number | null>((r) =>
        spawn("bash", ["-c", cmdline.replaceAll("8787", port).replace(/^node /, `"${NODE}" `)], {
          stdio: "ignore",
        }).on("exit", (code) => r(code)),
      );
    expect(await check(healthcheck)).toBe(0);
    expect(await stop(s)).toBe(0);
    expect(await check(healthcheck)).toBe(1);
  }, 60_000);

  it("without CAIRN_TOKEN the entry command refuses to listen on all interfaces", async () => {
    const s = shell(commandLine(state));
    expect(await s.exited).toBe(1);
    expect(s.output().stderr).toMatch(/Refusing to listen on 0\.0\.0\.0 without a token/);
  }, 30_000);
});

describe("deploy/compose.yaml", async () => {
  const base = postgresUrl("the compose file's Cairn command");
  it.runIf(base)(
    "the Cairn service's command runs against PostgreSQL and reports it in the health check",
    async () => {
      const compose = read("compose.yaml");
      const command = JSON.parse(
        /^\s+command:\s*(\[[^\]]*\])/m.exec(compose)![1]!.replace(/,\s*\]$/, "]"),
      ) as string[];
      const schema = `deploy_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
      const url = new URL(base!);
      url.searchParams.set("schema", schema);
      const line = [
        CAIRN,
        ...command.map((a) => quote(a.startsWith("postgres://") ? url.toString() : a === "8787" ? "0" : a)),
      ].join(" ");
      expect(command[0]).toBe("start");
      const s = shell(line, { CAIRN_TOKEN: "compose-token" });
      try {
        const served = await s.url;
        expect(await health(served)).toEqual({
          status: 200,
          body: { status: "ok", store: "postgres", version: expect.any(String) },
        });
      } finally {
        expect(await stop(s)).toBe(0);
        const db = new pg.Client({ connectionString: base });
        await db.connect();
        await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await db.end();
      }
    },
    60_000,
  );
});
