/**
 * On a Node.js older than 22.13 (this machine's system Node, when it is one), the CLI and the
 * library say which version they need in one line instead of "No such built-in module: node:sqlite".
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildCli } from "../../packages/cli/test/helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** An old Node.js to run things with: the system one, if it is older than 22.13. */
const OLD_NODE = ["/usr/bin/node", "/usr/local/bin/node"].find(existsSync);

function run(
  node: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string; version: string }> {
  return new Promise((resolve) =>
    execFile(node, ["-p", "process.versions.node"], (_e, version) =>
      execFile(node, args, { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
          stdout,
          stderr,
          version: version.trim(),
        }),
      ),
    ),
  );
}

const expected = (version: string) =>
  `Cairn needs Node.js 22.13 or newer (for node:sqlite); this is Node.js ${version}. Install Node.js 24 from https://nodejs.org or with a version manager (nvm install 24), then run this again.`;

describe.runIf(OLD_NODE)(`on an old Node.js (${OLD_NODE})`, async () => {
  const probe = OLD_NODE ? await run(OLD_NODE, ["-e", ""]) : undefined;
  const [major = 0, minor = 0] = (probe?.version ?? "0.0").split(".").map(Number);
  const old = major < 22 || (major === 22 && minor < 13);
  if (!old)
    console.log(`${OLD_NODE} is Node.js ${probe?.version}: not old enough to show the check; skipped`);

  it.runIf(old)(
    "the cairn command prints one line and exits 1",
    async () => {
      await buildCli();
      // The `cairn` command comes from @cairn/cli (cairnjs, the library, has none).
      for (const bin of ["packages/cli/bin/cairn.js"]) {
        const r = await run(OLD_NODE!, [bin, "workflows", "list"]);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr).toBe(`✘ ${expected(r.version)}\n`);
      }
    },
    180_000,
  );

  it.runIf(old)(
    'import("cairnjs") fails with that line, not "No such built-in module"',
    async () => {
      await buildCli();
      const r = await run(OLD_NODE!, ["--input-type=module", "-e", 'await import("cairnjs")']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(expected(r.version));
      expect(r.stderr).not.toContain("No such built-in module");
    },
    180_000,
  );
});
