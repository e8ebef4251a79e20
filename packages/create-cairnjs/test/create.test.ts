/**
 * The starter's command, run as a child process (its built bin) into fresh folders under the OS's
 * temporary directory. What the scaffolded projects do when installed is proven by tests/pack.
 */
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";

const BIN = fileURLToPath(new URL("../bin/create-cairnjs.js", import.meta.url));
const VERSION = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
const work = mkdtempSync(join(tmpdir(), "create-cairnjs-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function create(args: string[], cwd = work): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Every file under `dir`, relative, sorted. */
function tree(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? tree(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
    )
    .sort();
}

describe("npm create cairnjs", () => {
  test("the default template: a workflow, a fetch handler, a test, scripts dev/start/test", async () => {
    const r = await create(["my-app"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("✔ Created my-app in my-app (template default)");
    expect(r.stdout).toContain("  cd my-app\n  npm install\n");
    const dir = join(work, "my-app");
    expect(tree(dir)).toEqual([
      ".gitignore",
      "README.md",
      "cairn.config.ts",
      "package.json",
      "src/workflow.ts",
      "test/workflow.test.ts",
      "tsconfig.json",
    ]);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    expect(pkg.name).toBe("my-app");
    expect(pkg.scripts).toEqual({ dev: "cairn dev", start: "cairn start", test: "vitest run" });
    expect(pkg.dependencies).toEqual({ cairnjs: `^${VERSION}` });
    expect(pkg.devDependencies["@cairn/cli"]).toBe(`^${VERSION}`);
    const workflow = readFileSync(join(dir, "src/workflow.ts"), "utf8");
    for (const call of ["step.do(", "retries:", "step.sleep(", "step.waitForEvent<"])
      expect(workflow).toContain(call);
    expect(readFileSync(join(dir, "cairn.config.ts"), "utf8")).toContain("async fetch(");
    expect(readFileSync(join(dir, "test/workflow.test.ts"), "utf8")).toContain('from "cairnjs/testing"');
    const readme = readFileSync(join(dir, "README.md"), "utf8");
    expect(readme).toMatch(/^# my-app\n/);
    expect(readme).toContain("npm install");
    expect(readme).toContain("npm run dev");
    expect(readme).toContain("npm test");
  });

  test("--template cloudflare: a plain Cloudflare Workflows project on cairnjs/vitest", async () => {
    const r = await create(["cf-app", "--template", "cloudflare"]);
    expect(r.code).toBe(0);
    const dir = join(work, "cf-app");
    expect(tree(dir)).toEqual([
      ".gitignore",
      "README.md",
      "package.json",
      "test/workflow.test.ts",
      "tsconfig.json",
      "vitest.config.ts",
      "worker/durable-object.ts",
      "worker/index.ts",
      "worker/workflow.ts",
      "wrangler.jsonc",
    ]);
    expect(readFileSync(join(dir, "wrangler.jsonc"), "utf8")).toContain('"name": "cf-app"');
    expect(readFileSync(join(dir, "worker/workflow.ts"), "utf8")).toContain('from "cloudflare:workers"');
    expect(readFileSync(join(dir, "vitest.config.ts"), "utf8")).toContain('from "cairnjs/vitest"');
    expect(readFileSync(join(dir, "test/workflow.test.ts"), "utf8")).toContain('from "cloudflare:test"');
    // The same files as the repository's copy of Cloudflare's starter.
    const shared = fileURLToPath(
      new URL("../../../tests/cloudflare-fixtures/templates/workflows-starter-template/", import.meta.url),
    );
    for (const f of ["worker/index.ts", "worker/workflow.ts", "test/workflow.test.ts"])
      expect(readFileSync(join(dir, f), "utf8")).toBe(readFileSync(join(shared, f), "utf8"));
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    expect(Object.keys(pkg.devDependencies)).toEqual(
      expect.arrayContaining(["@cairn/cli", "@cairn/vitest", "cairnjs", "vitest"]),
    );
  });

  test("an existing empty directory is filled", async () => {
    mkdirSync(join(work, "empty"));
    const r = await create(["empty"]);
    expect(r.code).toBe(0);
    expect(existsSync(join(work, "empty", "cairn.config.ts"))).toBe(true);
  });

  test("a directory that is not empty: one line, exit 2, nothing written", async () => {
    const dir = join(work, "taken");
    mkdirSync(dir);
    writeFileSync(join(dir, "notes.txt"), "mine");
    const r = await create(["taken"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("✘ taken is not empty (1 entries): choose a new directory\n");
    expect(readdirSync(dir)).toEqual(["notes.txt"]);
  });

  test("a file where the directory would go", async () => {
    writeFileSync(join(work, "a-file"), "x");
    const r = await create(["a-file"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("✘ a-file exists and is not a directory\n");
  });

  test("a name npm refuses: one line naming why, nothing created", async () => {
    const r = await create(["My App"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^✘ "My App" is not a valid package name \(.*\): choose another directory name or pass --name\n$/,
    );
    expect(existsSync(join(work, "My App"))).toBe(false);

    const named = await create(["ok-dir", "--name", "Bad_Name!"]);
    expect(named.code).toBe(2);
    expect(named.stderr).toMatch(/^✘ "Bad_Name!" is not a valid package name \(/);
    expect(existsSync(join(work, "ok-dir"))).toBe(false);
  });

  test("an unknown template: names the ones there are, nothing created", async () => {
    const r = await create(["t-app", "--template", "react"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('✘ unknown template "react": use one of default, cloudflare\n');
    expect(existsSync(join(work, "t-app"))).toBe(false);
  });

  test("no directory, two directories, an unknown option: usage, exit 2", async () => {
    const none = await create([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("✘ which directory? e.g. npm create cairnjs my-app");
    const two = await create(["a1", "b1"]);
    expect(two.code).toBe(2);
    expect(two.stderr).toBe("✘ one directory only (got also b1)\n");
    const unknown = await create(["a2", "--force"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("✘ Unknown option '--force'");
    expect(unknown.stderr).toContain("Usage: npm create cairnjs <directory>");
    for (const d of ["a1", "b1", "a2"]) expect(existsSync(join(work, d))).toBe(false);
  });

  test("--help prints the templates", async () => {
    const r = await create(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("cloudflare  a plain Cloudflare Workflows project");
  });
});
