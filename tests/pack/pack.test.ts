/**
 * Cairn as people get it from the registry: every public workspace package is packed with `npm pack`,
 * the tarballs are installed into empty folders under the OS's temporary directory (outside the
 * repository; third-party dependencies come from the npm registry or npm's cache), and then:
 * - a library user's folder installs `cairnjs` alone: no CLI, dashboard, esbuild, oxc or pg comes
 *   with it; a workflow runs; a `postgres://` store names the package to install, and runs once it is;
 * - the starter's bin (`npm exec create-cairnjs`, what `npm create cairnjs` runs) scaffolds each
 *   template into another empty folder, whose `npm test` passes and whose `npm run dev` answers HTTP.
 *
 * The unpublished versions are pinned to the tarballs with npm `overrides` (file: specs), so no
 * `@cairn/*` or `cairnjs` package is ever looked up in the registry. Takes about a minute with a warm
 * npm cache (CI installs the same third-party packages first), several on a cold one.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MINUTES = 60_000;
const work = mkdtempSync(join(tmpdir(), "cairn-pack-"));
const TARBALLS = join(work, "tarballs");

// Children run on this Node.js (the repository's 24) and see none of vitest's, npm's or Cairn's own
// environment (`npm test` sets npm_config_*; vitest sets VITEST_*).
const childEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(npm_|vitest|cairn_|node_options$|node_env$|test$)/i.test(k),
    ),
  ),
  PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
  NO_COLOR: "1",
  FORCE_COLOR: "0",
  npm_config_audit: "false",
  npm_config_fund: "false",
  npm_config_update_notifier: "false",
  npm_config_prefer_offline: "true",
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd, env: { ...childEnv, ...env }, timeout: 10 * MINUTES, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** Runs and fails with the command's output when it exits non-zero. */
async function ok(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): Promise<Run> {
  const r = await run(cmd, args, cwd, env);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

interface Workspace {
  name: string;
  dir: string;
  json: Record<string, any>;
}

const rootJson = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const workspaces: Workspace[] = (rootJson.workspaces as string[]).map((dir) => ({
  name: JSON.parse(readFileSync(join(ROOT, dir, "package.json"), "utf8")).name,
  dir,
  json: JSON.parse(readFileSync(join(ROOT, dir, "package.json"), "utf8")),
}));
const publicPackages = workspaces.filter((w) => w.json.private !== true);
const workspaceNames = new Set(workspaces.map((w) => w.name));

/** Package name → `file:` spec of its tarball. */
const tarballOf = new Map<string, string>();
let packed: { name: string; files: { path: string }[] }[] = [];

/** A package.json pinning every Cairn package to its tarball (`overrides` reach transitive ones). */
function pinToTarballs(pkg: Record<string, any>): Record<string, any> {
  for (const field of ["dependencies", "devDependencies"])
    for (const dep of Object.keys(pkg[field] ?? {})) {
      const spec = tarballOf.get(dep);
      if (spec) pkg[field][dep] = spec;
    }
  return { ...pkg, overrides: Object.fromEntries(tarballOf) };
}

beforeAll(async () => {
  mkdirSync(TARBALLS);
  const args = [
    "pack",
    "--json",
    "--pack-destination",
    TARBALLS,
    ...publicPackages.flatMap((p) => ["-w", p.dir]),
  ];
  const r = await ok("npm", args, ROOT);
  packed = JSON.parse(r.stdout);
  for (const p of packed) tarballOf.set(p.name, `file:${join(TARBALLS, (p as any).filename)}`);
}, 5 * MINUTES);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("npm pack", () => {
  test("packs every public package, with README, repository, license, keywords and engines", () => {
    expect(packed.map((p) => p.name).sort()).toEqual(publicPackages.map((p) => p.name).sort());
    expect(publicPackages.map((p) => p.name)).toEqual(expect.arrayContaining(["cairnjs", "create-cairnjs"]));
    for (const { name, json } of publicPackages) {
      const files = packed.find((p) => p.name === name)!.files.map((f) => f.path);
      expect(files, name).toContain("README.md");
      expect(json.repository?.url, name).toMatch(/^git\+https:\/\//);
      expect(json.license, name).toBe("MIT");
      expect(json.keywords?.length, name).toBeGreaterThan(0);
      expect(json.engines?.node, name).toBe(">=22.13");
    }
  });

  test("packs no tests and no build leftovers", () => {
    for (const p of packed) {
      // The starter's templates hold the scaffolded projects' own tests: those are meant.
      const files = p.files.map((f) => f.path).filter((f) => !f.startsWith("templates/"));
      const unwanted = files.filter((f) =>
        /(\.test\.|\.cases\.|\.bench\.|tsbuildinfo|(^|\/)(test|fixtures)\/)/.test(f),
      );
      expect(unwanted, p.name).toEqual([]);
    }
  });

  test("internal dependencies are real versions, not *", () => {
    for (const { name, json } of workspaces)
      for (const field of ["dependencies", "devDependencies", "peerDependencies"])
        for (const [dep, range] of Object.entries<string>(json[field] ?? {}))
          if (workspaceNames.has(dep))
            expect(`${name} ${field} ${dep}@${range}`).toMatch(/@\^?\d+\.\d+\.\d+$/);
  });
});

describe("a library user: npm install cairnjs", () => {
  const dir = join(work, "library-user");

  test(
    "installs without the CLI, the dashboard, esbuild, oxc or pg, and runs a workflow",
    async () => {
      mkdirSync(dir);
      const pkg = { name: "library-user", private: true, type: "module", dependencies: { cairnjs: "*" } };
      writeFileSync(join(dir, "package.json"), JSON.stringify(pinToTarballs(pkg), null, 2));
      await ok("npm", ["install"], dir);

      const installed = await ok("npm", ["ls", "--all", "--parseable"], dir);
      const names = installed.stdout
        .split("\n")
        .filter(Boolean)
        .map((p) => p.slice(p.lastIndexOf("node_modules/") + "node_modules/".length));
      expect(names).toContain("cairnjs");
      expect(names).toContain("@cairn/engine");
      for (const unwanted of [
        "@cairn/cli",
        "@cairn/dashboard",
        "@cairn/compat",
        "esbuild",
        "oxc-parser",
        "pg",
      ])
        expect(names, unwanted).not.toContain(unwanted);

      writeFileSync(
        join(dir, "run.mjs"),
        `import { createCairn, WorkflowEntrypoint } from "cairnjs";
import { createTestCairn, introspectWorkflowInstance } from "cairnjs/testing";

class Hello extends WorkflowEntrypoint {
  async run(event, step) {
    const greeting = await step.do("greet", { retries: { limit: 2, delay: 1 } }, async (ctx) => {
      if (ctx.attempt === 1) throw new Error("not yet");
      return "hello " + event.payload.name;
    });
    await step.sleep("nap", 5);
    return { greeting };
  }
}
const workflows = [{ binding: "HELLO", name: "hello", class: Hello }];

const cairn = await createCairn({ store: "./state/cairn.db", workflows });
const instance = await cairn.env.HELLO.create({ id: "one", params: { name: "ana" } });
let status;
while (!["complete", "errored"].includes((status = await instance.status()).status))
  await new Promise((r) => setTimeout(r, 20));
await cairn.close();

const test = await createTestCairn({ workflows });
const inspected = await introspectWorkflowInstance(test.env.HELLO, "two");
await test.env.HELLO.create({ id: "two", params: { name: "bo" } });
await inspected.waitForStatus("complete");
const tested = await inspected.getOutput();
await inspected.dispose();
await test.close();

let postgres;
try {
  await createCairn({ store: "postgres://nobody@127.0.0.1:1/none" });
} catch (e) {
  postgres = e.message;
}
console.log(JSON.stringify({ status, tested, postgres }));
`,
      );
      const r = await ok(process.execPath, ["run.mjs"], dir);
      expect(JSON.parse(r.stdout)).toEqual({
        status: { status: "complete", output: { greeting: "hello ana" } },
        tested: { greeting: "hello bo" },
        postgres:
          "createCairn: a postgres:// store needs the package @cairn/store-postgres, which is not installed; " +
          "install it next to cairnjs: npm install @cairn/store-postgres",
      });
    },
    10 * MINUTES,
  );

  test.runIf(process.env.CAIRN_TEST_POSTGRES_URL)(
    "with @cairn/store-postgres installed, a postgres:// store works",
    async () => {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      pkg.dependencies["@cairn/store-postgres"] = tarballOf.get("@cairn/store-postgres");
      writeFileSync(join(dir, "package.json"), JSON.stringify(pkg, null, 2));
      await ok("npm", ["install"], dir);
      const schema = `pack_test_${process.pid}`;
      const url = new URL(process.env.CAIRN_TEST_POSTGRES_URL!);
      url.searchParams.set("schema", schema);
      writeFileSync(
        join(dir, "postgres.mjs"),
        `import { createCairn, WorkflowEntrypoint } from "cairnjs";
import pg from "pg";
class Once extends WorkflowEntrypoint {
  async run(event, step) { return step.do("one", async () => event.payload.n + 1); }
}
const cairn = await createCairn({ store: ${JSON.stringify(url.toString())}, workflows: [{ binding: "ONCE", name: "once", class: Once }] });
try {
  const instance = await cairn.env.ONCE.create({ params: { n: 41 } });
  let status;
  while (!["complete", "errored"].includes((status = await instance.status()).status))
    await new Promise((r) => setTimeout(r, 20));
  console.log(JSON.stringify(status));
} finally {
  await cairn.close();
  const client = new pg.Client(${JSON.stringify(process.env.CAIRN_TEST_POSTGRES_URL)});
  await client.connect();
  await client.query('DROP SCHEMA IF EXISTS "${schema}" CASCADE');
  await client.end();
}
`,
      );
      // pg comes with @cairn/store-postgres; the script uses it only to drop its own schema.
      const r = await ok(process.execPath, ["postgres.mjs"], dir);
      expect(JSON.parse(r.stdout)).toEqual({ status: "complete", output: 42 });
    },
    10 * MINUTES,
  );
});

/** `npm run dev -- --port 0 --json` in `dir`: resolves with its URL once it listens. */
function devServer(dir: string) {
  const child: ChildProcess = spawn("npm", ["run", "dev", "--", "--port", "0", "--json"], {
    cwd: dir,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: npm, the shell and cairn are stopped together.
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      stdout += d;
      const m = /"url":\s*"([^"]+)"/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`npm run dev exited:\n${stdout}\n${stderr}`)));
  });
  return {
    url,
    output: () => `${stdout}\n${stderr}`,
    async stop() {
      const group = -child.pid!;
      try {
        process.kill(group, "SIGTERM");
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(group, "SIGKILL");
        } catch {}
      }, 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls until `check` returns a value (no time limit of its own: the test's timeout bounds it). */
async function eventually<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Scaffolds with the packed starter, as `npm create cairnjs <name> -- …args` does. */
async function scaffold(name: string, args: string[] = []): Promise<string> {
  const parent = join(work, `starter-${name}`);
  mkdirSync(parent);
  const r = await ok(
    "npm",
    ["exec", "--yes", "--package", tarballOf.get("create-cairnjs")!, "--", "create-cairnjs", name, ...args],
    parent,
  );
  expect(r.stdout).toContain(`✔ Created ${name} in ${name}`);
  const dir = join(parent, name);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  // The scaffolded ranges are the released ones (^0.1.0); here they point at the tarballs.
  for (const field of ["dependencies", "devDependencies"])
    for (const [dep, range] of Object.entries<string>(pkg[field] ?? {}))
      if (tarballOf.has(dep)) expect(range).toBe(`^${rootVersion(dep)}`);
  writeFileSync(join(dir, "package.json"), JSON.stringify(pinToTarballs(pkg), null, 2));
  return dir;
}

const rootVersion = (name: string) => workspaces.find((w) => w.name === name)!.json.version as string;

describe("npm create cairnjs", () => {
  test(
    "the default template: its tests pass and its dev server serves the fetch handler and the dashboard",
    async () => {
      const dir = await scaffold("my-app");
      expect(readdirSync(join(dir, "src"))).toEqual(["workflow.ts"]);
      await ok("npm", ["install"], dir);

      const tests = await ok("npm", ["test"], dir);
      expect(tests.stdout).toMatch(/Tests\s+3 passed/);

      const dev = devServer(dir);
      try {
        const url = await dev.url;
        const created = await fetch(`${url}/orders`, { method: "POST", body: '{"orderId":"7","amount":3}' });
        expect(created.status).toBe(201);
        const { id } = (await created.json()) as { id: string };
        // The approval may arrive before the wait: it is buffered for it.
        const approved = await fetch(`${url}/orders/${id}/approve`, { method: "POST", body: '{"by":"ana"}' });
        expect(await approved.json()).toEqual({ id, sent: "approval" });
        // A retried charge and a 10 s sleep later, it ships.
        const done = await eventually(async () => {
          const body = (await (await fetch(`${url}/orders/${id}`)).json()) as { status: string };
          return body.status === "complete" ? body : undefined;
        });
        expect(done).toEqual({
          id,
          status: "complete",
          output: { orderId: "7", chargeId: "ch_7", approvedBy: "ana" },
        });
        const dashboard = await fetch(`${url}/_cairn/`);
        expect(dashboard.status).toBe(200);
        expect(await dashboard.text()).toContain("<html");
      } finally {
        await dev.stop();
      }
    },
    15 * MINUTES,
  );

  test(
    "--template cloudflare: Cloudflare's tests pass on cairnjs/vitest and its dev server starts workflows",
    async () => {
      const dir = await scaffold("cf-app", ["--template", "cloudflare"]);
      await ok("npm", ["install"], dir);

      const tests = await ok("npm", ["test"], dir);
      expect(tests.stdout).toMatch(/Tests\s+2 passed/);

      const dev = devServer(dir);
      try {
        const url = await dev.url;
        const started = await fetch(`${url}/api/workflow/start`, { method: "POST" });
        expect(started.status).toBe(200);
        const { instanceId } = (await started.json()) as { instanceId: string };
        const status = (await (await fetch(`${url}/api/workflow/status/${instanceId}`)).json()) as {
          status: string;
        };
        expect(["queued", "running", "waiting", "complete"]).toContain(status.status);
      } finally {
        await dev.stop();
      }
    },
    15 * MINUTES,
  );
});
