/**
 * Cloudflare's own examples, unchanged except the `cloudflareTest` import line of their
 * `vitest.config.ts`, run by vitest in a child process with `cairnjs/vitest` (copies and their origin:
 * tests/cloudflare-fixtures/README.md). Each project's tests must all pass, by name.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const FIXTURES = join(ROOT, "tests/cloudflare-fixtures");
const VITEST = join(ROOT, "node_modules/vitest/vitest.mjs");

interface JsonReport {
  numPassedTests: number;
  numFailedTests: number;
  testResults: {
    name: string;
    assertionResults: { fullName: string; status: string; failureMessages: string[] }[];
  }[];
}

const scratch = mkdtempSync(join(tmpdir(), "cairn-cf-examples-"));
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs `vitest run` in `dir` (a child process; Cairn's packages from their sources) and reads its JSON report. */
async function runVitest(dir: string): Promise<{ code: number | null; output: string; report: JsonReport }> {
  const outputFile = join(scratch, `${dir.replace(/[\\/]/g, "_")}.json`);
  const child = spawn(
    process.execPath,
    [VITEST, "run", "--reporter=json", `--outputFile=${outputFile}`, "--retry=0"],
    {
      cwd: dir,
      env: childEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  let report: JsonReport;
  try {
    report = JSON.parse(readFileSync(outputFile, "utf8")) as JsonReport;
  } catch {
    throw new Error(`vitest in ${dir} wrote no report (exit ${code}):\n${output}`);
  }
  return { code, output, report };
}

/** This process's environment without vitest's own variables, loading Cairn from its sources. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("VITEST") || key === "TEST") delete env[key];
  // Tests never run stale builds: Cairn's packages load from their TypeScript sources.
  env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --conditions=source`.trim();
  env.VITE_CONFIG_NATIVE_IGNORE_WARNING = "true";
  return env;
}

function outcomes(report: JsonReport): Record<string, string> {
  const out: Record<string, string> = {};
  for (const file of report.testResults) for (const t of file.assertionResults) out[t.fullName] = t.status;
  return out;
}

function failures(report: JsonReport): string {
  return report.testResults
    .flatMap((f) => f.assertionResults.filter((t) => t.status !== "passed"))
    .map((t) => `${t.fullName}: ${t.failureMessages.join("\n")}`)
    .join("\n\n");
}

describe("Cloudflare's examples run unchanged on cairnjs/vitest", () => {
  test("workers-sdk fixtures/vitest-plugin-examples/workflows: all 11 tests pass", async () => {
    const dir = join(FIXTURES, "workers-sdk/fixtures/vitest-plugin-examples/workflows");
    const { code, output, report } = await runVitest(dir);
    expect(failures(report), output).toBe("");
    expect(outcomes(report)).toEqual({
      "should mock a non-violation score and complete": "passed",
      "should mock the violation score calculation to fail 2 times and then complete": "passed",
      "should mock a violation score and complete": "passed",
      "should be reviewed, accepted and complete": "passed",
      "should disable retry delays when mocking step errors": "passed",
      "should force human review to timeout and error": "passed",
      "workflow should be able to reach the end and be successful": "passed",
      "workflow batch should be able to reach the end and be successful": "passed",
      "workflow instance lifecycle methods should terminate a workflow instance": "passed",
      "workflow instance lifecycle methods should restart a workflow instance": "passed",
      "workflow instance lifecycle methods should pause a workflow instance": "passed",
    });
    expect(code).toBe(0);
  }, 120_000);

  test("templates workflows-starter-template: its test passes", async () => {
    const dir = join(FIXTURES, "templates/workflows-starter-template");
    const { code, output, report } = await runVitest(dir);
    expect(failures(report), output).toBe("");
    expect(outcomes(report)).toEqual({
      "MyWorkflow completes and returns expected step result": "passed",
      "MyWorkflow errors when approval event times out": "passed",
    });
    expect(code).toBe(0);
  }, 120_000);

  test("defineWorkersConfig (the pool-workers shape): env with vars and bindings, SELF, exports, waitOnExecutionContext", async () => {
    const dir = fileURLToPath(new URL("./fixtures/pool-workers", import.meta.url));
    const { code, output, report } = await runVitest(dir);
    expect(failures(report), output).toBe("");
    expect(outcomes(report)).toEqual({
      "env has the wrangler vars and miniflare.bindings, in both modules": "passed",
      "SELF and exports.default call the Worker's fetch handler": "passed",
      "waitOnExecutionContext waits for ctx.waitUntil work": "passed",
      "a workflow started through SELF can be introspected": "passed",
    });
    expect(code).toBe(0);
  }, 120_000);
});
