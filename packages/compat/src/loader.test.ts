import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeProject, removeProject } from "../fixtures/helpers.ts";
import { CLOUDFLARE_MODULES, importProjectModule } from "./loader.ts";

const LOADER = new URL("./loader.ts", import.meta.url).href;
const dir = makeProject({
  "esm.mjs": `
    import { WorkflowEntrypoint, NonRetryableError as N1, WorkerEntrypoint, DurableObject, RpcTarget, env }
      from "cloudflare:workers";
    import { NonRetryableError } from "cloudflare:workflows";
    import { WorkflowEntrypoint as CairnEntrypoint } from "cairnjs";
    class W extends WorkflowEntrypoint { async run() {} }
    const w = new W({ waitUntil() {} }, { A: 1 });
    const e = new NonRetryableError("nope");
    export const report = {
      sameError: N1 === NonRetryableError,
      errorName: e.name, errorMessage: e.message, isError: e instanceof Error,
      env: w.env, ctx: typeof w.ctx.waitUntil,
      sameEntrypoint: WorkflowEntrypoint === CairnEntrypoint,
      others: [typeof WorkerEntrypoint, typeof DurableObject, typeof RpcTarget, typeof env],
    };
  `,
  "req.cjs": `
    const { WorkflowEntrypoint } = require("cloudflare:workers");
    const { NonRetryableError } = require("cloudflare:workflows");
    module.exports = { entry: typeof WorkflowEntrypoint, error: new NonRetryableError("x").name };
  `,
});
afterAll(() => removeProject(dir));

/** Runs `code` as an ES module in a fresh Node process (this Node) and returns what it printed. */
function runNode(code: string): string {
  const file = join(dir, `main-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, code);
  return execFileSync(process.execPath, [file], { encoding: "utf8", cwd: dir });
}

describe("cloudflare:* modules", () => {
  it("resolve to Cairn in a plain Node process once installed (import and require)", () => {
    const out = runNode(`
      import { createRequire } from "node:module";
      const { installCloudflareModules } = await import(${JSON.stringify(LOADER)});
      installCloudflareModules();
      const { report } = await import("./esm.mjs");
      const required = createRequire(import.meta.url)("./req.cjs");
      console.log(JSON.stringify({ report, required }));
    `);
    expect(JSON.parse(out)).toEqual({
      report: {
        sameError: true,
        errorName: "NonRetryableError",
        errorMessage: "nope",
        isError: true,
        env: { A: 1 },
        ctx: "function",
        sameEntrypoint: true,
        others: ["function", "function", "function", "object"],
      },
      required: { entry: "function", error: "NonRetryableError" },
    });
  });

  it("do not resolve without the hooks", () => {
    expect(() =>
      execFileSync(process.execPath, ["--input-type=module", "-e", 'await import("cloudflare:workers")'], {
        stdio: "pipe",
      }),
    ).toThrow(/ERR_UNSUPPORTED_ESM_URL_SCHEME|cloudflare:/);
  });

  it("map to this package's modules", () => {
    expect(Object.keys(CLOUDFLARE_MODULES)).toEqual(["cloudflare:workers", "cloudflare:workflows"]);
    for (const url of Object.values(CLOUDFLARE_MODULES))
      expect(url).toMatch(/^file:.*\/cloudflare-work(ers|flows)\.[jt]s$/);
  });

  it("importProjectModule loads a module afresh each time", async () => {
    const file = join(dir, "counter.ts");
    writeFileSync(file, "export const value: number = 1;");
    expect((await importProjectModule(file, dir)).value).toBe(1);
    writeFileSync(file, "export const value: number = 2;");
    expect((await importProjectModule(file, dir)).value).toBe(2);
  });
});
