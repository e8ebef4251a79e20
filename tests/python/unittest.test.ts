import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname;
const PY = join(ROOT, "python");
const python = process.env.CAIRN_PYTHON ?? "python3";
const found = spawnSync(python, ["-c", "import sys; print(sys.version_info >= (3, 10))"], {
  encoding: "utf8",
});
const havePython = found.status === 0 && found.stdout.trim() === "True";
if (!havePython) {
  if (process.env.CAIRN_REQUIRE_PYTHON === "1")
    throw new Error(`${python} ≥ 3.10 is required (CAIRN_REQUIRE_PYTHON=1)`);
  console.log(`Skipping the Python SDK's unittest suite: no ${python} ≥ 3.10`);
}

const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? e.name === "__pycache__"
        ? []
        : sources(join(dir, e.name))
      : e.name.endsWith(".py")
        ? [join(dir, e.name)]
        : [],
  );

describe.skipIf(!havePython)("the Python SDK (python/)", () => {
  it("compiles (py_compile)", () => {
    const files = sources(PY);
    expect(files.length).toBeGreaterThan(5);
    const r = spawnSync(python, ["-m", "py_compile", ...files], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("passes its unittest suite", () => {
    const r = spawnSync(python, ["-m", "unittest", "discover", "-s", "tests", "-t", "."], {
      cwd: PY,
      encoding: "utf8",
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    });
    expect(r.stderr).toMatch(/\nOK\n?$/);
    expect(r.status).toBe(0);
  });
});
