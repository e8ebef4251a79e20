import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPython, compatibilityOf, runStart, type StartedProject } from "@cairn/compat";
import { createApi, startServer } from "@cairn/server";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "./support.ts";

const python = process.env.CAIRN_PYTHON ?? "python3";
const found = spawnSync(python, ["-c", "import sys; print(sys.version_info >= (3, 10))"], {
  encoding: "utf8",
});
const havePython = found.status === 0 && found.stdout.trim() === "True";
if (!havePython && process.env.CAIRN_REQUIRE_PYTHON === "1")
  throw new Error(`${python} ≥ 3.10 is required (CAIRN_REQUIRE_PYTHON=1)`);

const ENTRY = `
from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

class Checkout(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def load(ctx):
            print("loading", event["payload"]["orderId"])
            return {"id": event["payload"]["orderId"]}

        @step.do(concurrent=True)
        async def charge(load):
            return "charged " + load["id"]

        return await charge()

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        inst = await self.env.CHECKOUT.create(params={"orderId": "42"})
        return Response(inst.id)
`;

function project(entry = ENTRY, className = "Checkout", extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "cairn-py-project-"));
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src/entry.py"), entry);
  writeFileSync(
    join(dir, "wrangler.jsonc"),
    JSON.stringify({
      name: "hello-python",
      main: "src/entry.py",
      compatibility_date: "2026-05-08",
      compatibility_flags: ["python_workers", "python_workflows"],
      workflows: [{ name: "checkout", binding: "CHECKOUT", class_name: className, ...extra }],
    }),
  );
  return dir;
}

let started: StartedProject | undefined;
afterEach(async () => {
  await started?.shutdown();
  started = undefined;
});

describe.skipIf(!havePython)("cairn start with a .py main", () => {
  it("spawns the Python worker, routes HTTP to Default.fetch, shows print() with the instance id", async () => {
    const lines: string[] = [];
    started = await runStart({
      dir: project(),
      port: 0,
      createApi: createApi as never,
      startServer: startServer as never,
      handleSignals: false,
      log: (l) => lines.push(l),
    });
    const res = await fetch(`${started.url}/order`);
    expect(res.status).toBe(200);
    const id = await res.text();
    const st = await until(async () => {
      const s = (await started!.cairn.runtime.status("checkout", id)) as any;
      return s.status === "complete" ? s : undefined;
    });
    expect(st.output).toBe("charged 42");
    await until(() => lines.find((l) => l === `[checkout ${id}] loading 42`));
  });

  it("a Python workflow's wrangler schedules are the runtime's (each slot creates an instance)", async () => {
    started = await runStart({
      dir: project(ENTRY, "Checkout", { schedules: ["0 * * * *"] }),
      port: 0,
      createApi: createApi as never,
      startServer: startServer as never,
      handleSignals: false,
      log: () => {},
    });
    const [schedule, ...rest] = started.cairn.runtime.schedules("checkout");
    expect(rest).toEqual([]);
    expect(schedule!.cron).toBe("0 * * * *");
    const hour = 3_600_000;
    expect(schedule!.nextAt! % hour).toBe(0);
    expect(schedule!.nextAt! - Date.now()).toBeLessThanOrEqual(hour);
  });

  it("a class that is not in the module is a clear error in the log", async () => {
    const lines: string[] = [];
    started = await runStart({
      dir: project(ENTRY, "Missing"),
      port: 0,
      createApi: createApi as never,
      startServer: startServer as never,
      handleSignals: false,
      log: (l) => lines.push(l),
    });
    await until(() => lines.find((l) => l.includes("(workflow.not_found) class Missing not found in")));
  });
});

describe("compatibility settings of a Python project", () => {
  it("reads compatibility_date and compatibility_flags from jsonc and toml", () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-py-compat-"));
    writeFileSync(
      join(dir, "wrangler.jsonc"),
      '// c\n{ "main": "a.py", "compatibility_date": "2025-10-01", "compatibility_flags": ["python_workers", "no_python_workflows_implicit_dependencies"] }',
    );
    expect(compatibilityOf(join(dir, "wrangler.jsonc"))).toEqual({
      date: "2025-10-01",
      flags: ["python_workers", "no_python_workflows_implicit_dependencies"],
    });
    writeFileSync(join(dir, "wrangler.toml"), 'main = "a.py"\ncompatibility_date = "2026-03-01"\n');
    expect(compatibilityOf(join(dir, "wrangler.toml"))).toEqual({ date: "2026-03-01", flags: [] });
  });
});

describe("the Python interpreter check", () => {
  it("names a missing interpreter", () => {
    expect(() => checkPython("/nonexistent/python3")).toThrow(/\(python\.not_found\) No Python interpreter/);
  });
  it.skipIf(!havePython)("accepts python3 ≥ 3.10", () => {
    expect(checkPython(python).version).toMatch(/^3\.\d+$/);
  });
});
