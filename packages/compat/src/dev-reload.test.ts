/**
 * `cairn dev`'s reloads and load errors, with real child processes and real files: saves that
 * write in place and saves that write a new file and rename it over the old one (as many editors
 * do), several in a row; syntax errors, missing imports and unknown `cloudflare:*` modules served
 * as a 500 naming file:line:col until they are fixed; a port in use.
 */
import { renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeProject, removeProject, STUB_SERVER, waitFor } from "../fixtures/helpers.ts";
import { runDev } from "./dev.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const WORKFLOW = `
import { WorkflowEntrypoint } from "cloudflare:workers";
export class Hello extends WorkflowEntrypoint {
  async run(event, step) { return await step.do("hi", async () => "hi"); }
}
`;
const source = (text: string) =>
  `${WORKFLOW}\nexport default { async fetch(request, env) { return new Response(${JSON.stringify(text)} + (env.API_KEY ? " " + env.API_KEY : "")); } };\n`;

function project(files: Record<string, string> = {}) {
  const dir = makeProject({
    "wrangler.json": JSON.stringify({
      name: "hello",
      main: "src/index.ts",
      workflows: [{ binding: "HELLO", name: "hello", class_name: "Hello" }],
    }),
    "src/index.ts": source("v0"),
    ...files,
  });
  cleanup.push(() => removeProject(dir));
  return dir;
}

async function dev(dir: string, extra: { env?: string; port?: number } = {}) {
  const lines: string[] = [];
  const output: string[] = [];
  const server = await runDev(dir, {
    port: extra.port ?? 0,
    server: STUB_SERVER,
    log: (l) => lines.push(l),
    output: (c) => output.push(c),
    debounceMs: 50,
    ...(extra.env ? { env: extra.env } : {}),
  });
  cleanup.push(() => server.close());
  const body = async () => {
    const res = await fetch(`${server.url}/`);
    return { status: res.status, text: await res.text() };
  };
  const serves = (text: string) =>
    waitFor(async () => ((await body()).text === text ? true : undefined), `the server to answer "${text}"`);
  return { server, lines, output, body, serves };
}

/** Saves like editors that write a temporary file and rename it over the original. */
function renameSave(file: string, text: string) {
  writeFileSync(`${file}.tmp-save`, text);
  renameSync(`${file}.tmp-save`, file);
}

describe("cairn dev reloads", () => {
  it("sees every rename-save, several in a row, and in-place saves after them", async () => {
    const dir = project();
    const d = await dev(dir);
    await d.serves("v0");
    const file = join(dir, "src/index.ts");
    for (const v of ["v1", "v2", "v3"]) {
      renameSave(file, source(v));
      await d.serves(v);
    }
    // Two saves back to back: the last one wins.
    renameSave(file, source("v4"));
    renameSave(file, source("v5"));
    await d.serves("v5");
    writeFileSync(file, source("v6"));
    await d.serves("v6");
  }, 60_000);
});

describe("cairn dev load errors", () => {
  it("a syntax error answers 500 with file:line:col, is logged once without a stack, and a fix reloads", async () => {
    const dir = project();
    const d = await dev(dir);
    const file = join(dir, "src/index.ts");
    renameSave(file, `${source("v0")}\nconst broken = ;\n`);
    const notice = await waitFor(() => d.lines.find((l) => l.startsWith("✘ ")), "the error notice");
    const line = source("v0").split("\n").length + 1;
    expect(notice).toBe(`✘ src/index.ts:${line}:16: Unexpected ";"`);
    expect(d.lines.filter((l) => l.startsWith("✘ "))).toHaveLength(1);
    expect(d.output.join("")).not.toMatch(/\n\s+at /);
    const res = await d.body();
    expect(res.status).toBe(500);
    expect(res.text).toContain(`src/index.ts:${line}:16: Unexpected ";"`);
    // The API still answers (the stub's API answers 404 JSON for unknown routes, not a dead socket).
    const api = await fetch(`${d.server.url}/api/v1/workflows`);
    expect(api.headers.get("content-type")).toContain("json");

    renameSave(file, source("fixed"));
    await d.serves("fixed");
  }, 60_000);

  it("a missing import names the import's file, line and column", async () => {
    const dir = project({
      "src/index.ts": `import { helper } from "./helpers/missing";\nconsole.log(helper);\n${source("v0")}`,
    });
    const d = await dev(dir);
    expect(d.lines[0]).toBe('✘ src/index.ts:1:24: cannot find module "./helpers/missing"');
    expect((await d.body()).status).toBe(500);
  }, 30_000);

  it("an unknown cloudflare: module says it is not provided", async () => {
    const dir = project({
      "src/index.ts": `import { EmailMessage } from "cloudflare:email";\nconsole.log(EmailMessage);\n${source("v0")}`,
    });
    const d = await dev(dir);
    expect(d.lines[0]).toMatch(
      /^✘ src\/index\.ts:1:30: "cloudflare:email" is not provided by Cairn \(it provides cloudflare:workers, cloudflare:workflows/,
    );
  }, 30_000);

  it("an error thrown while the module runs points at the user's line", async () => {
    const dir = project({ "src/index.ts": `${source("v0")}\nthrow new TypeError("no config");\n` });
    const d = await dev(dir);
    const line = source("v0").split("\n").length + 1;
    expect(d.lines[0]).toBe(`✘ src/index.ts:${line}:7: TypeError: no config`);
  }, 30_000);

  it("a port in use is one line and no false 'waiting for changes'", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    cleanup.push(() => new Promise((r) => blocker.close(() => r(undefined))));
    const port = (blocker.address() as { port: number }).port;
    const lines: string[] = [];
    await expect(
      runDev(project(), { port, server: STUB_SERVER, log: (l) => lines.push(l), output: () => {} }),
    ).rejects.toThrow(
      new Error(
        `Port ${port} on 127.0.0.1 is already in use (another cairn dev or start?); pick another with --port <n> (--port 0 picks a free one)`,
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(lines).toEqual([]);
  }, 30_000);
});

describe("cairn dev configuration", () => {
  it("reads secrets from .dev.vars, selects --env, and warns about unsupported sections and a missing tsconfig base", async () => {
    const dir = project({
      "wrangler.json": JSON.stringify({
        name: "hello",
        main: "src/index.ts",
        workflows: [{ binding: "HELLO", name: "hello", class_name: "Hello" }],
        kv_namespaces: [{ binding: "CACHE", id: "x" }],
        env: {
          staging: { workflows: [{ binding: "HELLO", name: "hello-staging", class_name: "Hello" }] },
        },
      }),
      ".dev.vars": "API_KEY=dev-secret\n",
      ".dev.vars.staging": "API_KEY=staging-secret\n",
      "tsconfig.json": JSON.stringify({ extends: "./config/missing-base.json", compilerOptions: {} }),
    });
    const d = await dev(dir);
    await d.serves("v0 dev-secret");
    expect(d.lines).toContain("  secrets    env.API_KEY (from .dev.vars)");
    expect(d.lines).toContain(
      "⚠ wrangler.json: kv_namespaces (KV namespaces) is not supported by Cairn; env.CACHE will be undefined",
    );
    expect(d.lines).toContain(
      '⚠ tsconfig.json: "extends" "./config/missing-base.json" not found; loading the project without its tsconfig.json (its paths and JSX settings do not apply)',
    );
    await d.server.close();

    const staging = await dev(dir, { env: "staging" });
    await staging.serves("v0 staging-secret");
    expect(staging.lines[0]).toMatch(
      /^Cairn dev: hello-staging \(hello-staging\) ready on .* \(env staging\)$/,
    );
    expect(staging.lines).toContain("  secrets    env.API_KEY (from .dev.vars.staging)");
  }, 60_000);
});

describe("cairn dev output", () => {
  it("prints failed attempts and errored instances, and console output with its instance", async () => {
    const dir = project({
      "wrangler.json": JSON.stringify({
        name: "noisy",
        main: "src/index.ts",
        workflows: [
          { binding: "FLAKY", name: "flaky", class_name: "Flaky" },
          { binding: "BROKEN", name: "broken", class_name: "Broken" },
        ],
      }),
      "src/index.ts": `
import { WorkflowEntrypoint } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";
export class Flaky extends WorkflowEntrypoint {
  async run(event, step) {
    console.log("starting", event.payload.n);
    return await step.do("fetch rate", { retries: { limit: 2, delay: 10 } }, async (ctx) => {
      console.log("attempt", ctx.attempt);
      if (ctx.attempt < 2) throw new Error("rate service down");
      return 1.5;
    });
  }
}
export class Broken extends WorkflowEntrypoint {
  async run(event, step) {
    await step.do("charge", async () => { throw new NonRetryableError("card declined"); });
  }
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const binding = url.pathname === "/broken" ? env.BROKEN : env.FLAKY;
    const instance = await binding.create({ id: url.searchParams.get("id"), params: { n: 7 } });
    return new Response(instance.id);
  },
};
`,
    });
    const d = await dev(dir);
    await fetch(`${d.server.url}/flaky?id=f-1`);
    await fetch(`${d.server.url}/broken?id=b-1`);
    const text = () => d.output.join("");
    await waitFor(
      () => (text().includes("errored in step") && text().includes("attempt 2") ? true : undefined),
      "the lines",
    );
    const lines = text().split("\n");
    expect(lines).toContain("[flaky f-1] starting 7");
    expect(lines).toContain('[flaky f-1 step "fetch rate"] attempt 1');
    expect(lines).toContain('[flaky f-1 step "fetch rate"] attempt 2');
    expect(lines).toContain(
      '⚠ step "fetch rate" attempt 1 of 3 failed (will retry): rate service down  workflow=flaky instance=f-1 step="fetch rate" attempt=1',
    );
    expect(lines).toContain(
      '⚠ step "charge" attempt 1 of 6 failed: NonRetryableError: card declined  workflow=broken instance=b-1 step=charge attempt=1',
    );
    expect(lines).toContain(
      '✘ instance b-1 of broken errored in step "charge": NonRetryableError: card declined  workflow=broken instance=b-1 step=charge',
    );
  }, 30_000);
});
