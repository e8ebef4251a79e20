/**
 * `cairn dev` on a Python project, with real processes and real files: the configuration's `vars`
 * and the `.dev.vars` secrets in the worker's `self.env`, the `pyproject.toml` warning, `print()`
 * in the dev output, and an edit of the `.py` file reloading the worker so that new instances run
 * the new code (in place and by rename, as editors save).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DevServer, runDev } from "@cairn/compat";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "./support.ts";

const python = process.env.CAIRN_PYTHON ?? "python3";
const found = spawnSync(python, ["-c", "import sys; print(sys.version_info >= (3, 10))"], {
  encoding: "utf8",
});
const havePython = found.status === 0 && found.stdout.trim() === "True";
if (!havePython) {
  if (process.env.CAIRN_REQUIRE_PYTHON === "1")
    throw new Error(`${python} ≥ 3.10 is required (CAIRN_REQUIRE_PYTHON=1)`);
  console.log(`Skipping the Python dev tests: no ${python} ≥ 3.10`);
}

const entry = (version: string) => `
from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

class Report(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def read_env():
            print("running ${version}")
            return {
                "version": "${version}",
                "greeting": self.env.GREETING,
                "limits": self.env.LIMITS,
                "api_key": self.env["API_KEY"],
                "has_missing": "MISSING" in self.env,
            }

        return await read_env()

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("${version} " + self.env.GREETING)
`;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function project() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-py-dev-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src/entry.py"), entry("v1"));
  writeFileSync(
    join(dir, "wrangler.jsonc"),
    `// a Python project
{
  "name": "py-dev",
  "main": "src/entry.py",
  "compatibility_date": "2026-05-08",
  "compatibility_flags": ["python_workers"],
  "vars": { "GREETING": "hello", "LIMITS": { "max": 3 } },
  "workflows": [{ "name": "report", "binding": "REPORT", "class_name": "Report" }]
}`,
  );
  writeFileSync(join(dir, ".dev.vars"), 'API_KEY="s3cret"\n');
  writeFileSync(
    join(dir, "pyproject.toml"),
    '[project]\nname = "py-dev"\nversion = "0.1.0"\ndependencies = ["requests>=2", "pydantic"]\n',
  );
  return dir;
}

describe.skipIf(!havePython)("cairn dev with a .py main (real processes)", () => {
  it("gives the worker vars and .dev.vars, warns about pyproject dependencies, reloads on .py edits", async () => {
    const dir = project();
    const lines: string[] = [];
    let output = "";
    const dev: DevServer = await runDev(dir, {
      port: 0,
      server: import.meta.resolve("@cairn/server"),
      log: (l) => lines.push(l),
      output: (c) => void (output += c),
      debounceMs: 50,
    });
    cleanup.push(() => dev.close());
    const api = async (path: string, init?: RequestInit) =>
      ((await (await fetch(`${dev.url}/api/v1${path}`, init)).json()) as any).result;
    // The server is down for a moment while it reloads: a refused connection is "not yet".
    const serves = (text: string) =>
      until(async () => {
        try {
          return (await (await fetch(`${dev.url}/`)).text()) === text || undefined;
        } catch {
          return undefined;
        }
      }, 3000);
    const run = async (id: string) => {
      await api("/workflows/report/instances", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ instance_id: id }),
      });
      return until(async () => {
        const st = await api(`/workflows/report/instances/${id}`);
        return st?.status === "complete" || st?.status === "errored" ? st : undefined;
      }, 3000);
    };

    expect(lines).toContainEqual(
      expect.stringMatching(
        /^⚠ pyproject\.toml: Cairn does not install Python packages.*requests>=2, pydantic$/,
      ),
    );
    const first = await run("r1");
    expect(first.output).toEqual({
      version: "v1",
      greeting: "hello",
      limits: { max: 3 },
      api_key: "s3cret",
      has_missing: false,
    });
    await until(() => output.includes("[report r1] running v1"), 3000);
    expect(await (await fetch(`${dev.url}/`)).text()).toBe("v1 hello");

    // An edit in place: the worker is restarted, new instances run the new code.
    writeFileSync(join(dir, "src/entry.py"), entry("v2"));
    await serves("v2 hello");
    expect((await run("r2")).output.version).toBe("v2");
    await until(() => output.includes("[report r2] running v2"), 3000);

    // A save that writes a new file and renames it over the old one.
    writeFileSync(join(dir, "src/entry.py.tmp"), entry("v3"));
    renameSync(join(dir, "src/entry.py.tmp"), join(dir, "src/entry.py"));
    await serves("v3 hello");
    expect((await run("r3")).output.version).toBe("v3");
    // The first instance keeps what it stored.
    expect((await api("/workflows/report/instances/r1")).output.version).toBe("v1");
    // The warning is printed once, not at every reload.
    expect(lines.filter((l) => l.startsWith("⚠ pyproject.toml"))).toHaveLength(1);

    // A host killed with SIGKILL leaves no Python worker behind (it would serve old code).
    const host = dev.pid!;
    const children = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(host)], { encoding: "utf8" })
      .stdout.split("\n")
      .filter((l) => l.includes("cairn_worker"))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
    expect(children).toHaveLength(1);
    process.kill(host, "SIGKILL");
    await until(() => {
      try {
        process.kill(children[0]!, 0);
        return undefined;
      } catch {
        return true;
      }
    }, 1000);
  }, 60_000);
});
