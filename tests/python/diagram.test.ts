import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { run } from "@cairn/cli";
import { describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname;
const python = process.env.CAIRN_PYTHON ?? "python3";
const found = spawnSync(python, ["-c", "import sys; print(sys.version_info >= (3, 10))"], {
  encoding: "utf8",
});
const havePython = found.status === 0 && found.stdout.trim() === "True";
if (!havePython && process.env.CAIRN_REQUIRE_PYTHON === "1")
  throw new Error(`${python} ≥ 3.10 is required (CAIRN_REQUIRE_PYTHON=1)`);

async function cli(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    stdout: (t: string) => void (stdout += t),
    stderr: (t: string) => void (stderr += t),
    env: {},
    cwd: ROOT,
  } as never);
  return { code, stdout, stderr };
}

describe.skipIf(!havePython)("cairn diagram on a .py workflow", () => {
  it("emits the graph JSON with depends and renders Mermaid", async () => {
    const json = await cli([
      "diagram",
      "tests/python/fixtures/flows.py",
      "--class",
      "Diamond",
      "--format",
      "json",
    ]);
    expect(json.stderr).toBe("");
    const graph = JSON.parse(json.stdout);
    expect(graph.workflow.class_name).toBe("Diamond");
    const names = graph.workflow.nodes.map((n: any) => n.name);
    expect(names).toEqual(["b", "a", "c", "d"]);
    expect(graph.workflow.nodes[3].depends).toEqual(["b", "c"]);
    const mermaid = await cli([
      "diagram",
      join(ROOT, "tests/python/fixtures/flows.py"),
      "--class",
      "Timing",
      "--format",
      "mermaid",
    ]);
    expect(mermaid.code).toBe(0);
    expect(mermaid.stdout).toContain("slow_a");
  });
});
