/**
 * End to end: `cairn dev` and `cairn start` as child processes: store validation, a port in use,
 * and a project that fails to load while the API and the dashboard (with its banner, in Chromium)
 * keep answering.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserMissing, CHROMIUM, CHROMIUM_FLAGS } from "../../../tests/dashboard/support.ts";
import { buildCli, cairn, cairnServer, waitFor } from "./helpers.ts";

let dir: string;
let blocker: Server;
let busyPort: number;

const WORKFLOW = `
import { WorkflowEntrypoint } from "cloudflare:workers";
export class Hello extends WorkflowEntrypoint {
  async run(event, step) { return await step.do("hi", async () => "hi"); }
}
export default { async fetch() { return new Response("hello"); } };
`;

beforeAll(async () => {
  await buildCli();
  dir = mkdtempSync(join(tmpdir(), "cairn-cli-dev-"));
  writeFileSync(
    join(dir, "wrangler.json"),
    JSON.stringify({
      name: "hello",
      main: "index.ts",
      workflows: [{ binding: "HELLO", name: "hello", class_name: "Hello" }],
    }),
  );
  writeFileSync(join(dir, "index.ts"), WORKFLOW);
  blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
  busyPort = (blocker.address() as { port: number }).port;
}, 180_000);

afterAll(async () => {
  await new Promise((r) => blocker?.close(() => r(undefined)));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("--store", () => {
  for (const command of ["dev", "start"])
    it(`${command} refuses a store of another scheme, and creates nothing`, async () => {
      const cwd = mkdtempSync(join(tmpdir(), "cairn-cli-store-"));
      try {
        const r = await cairn([command, dir, "--port", "0", "--store", "mysql://x"], {}, cwd);
        expect(r.code).toBe(2);
        expect(r.stderr).toBe(
          'error: --store: unsupported store "mysql://x": "mysql:" is not a store Cairn knows; use a SQLite file path (e.g. ./cairn.db), ":memory:" or postgres://user@host/db\n(run with --help for usage)\n',
        );
        expect(readdirSync(cwd)).toEqual([]);
        expect(existsSync(join(dir, ".cairn"))).toBe(false);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });
});

describe("a port in use", () => {
  for (const command of ["dev", "start"])
    it(`${command}: one line suggesting --port, exit 1`, async () => {
      const r = await cairn([command, dir, "--port", String(busyPort), "--store", ":memory:"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `✘ Port ${busyPort} on 127.0.0.1 is already in use (another cairn dev or start?); pick another with --port <n> (--port 0 picks a free one)\n`,
      );
    });
});

describe("cairn dev with a project that does not load", () => {
  it("keeps the API and the dashboard up, with the error in the API and a banner", async () => {
    const broken = mkdtempSync(join(tmpdir(), "cairn-cli-broken-"));
    writeFileSync(
      join(broken, "wrangler.json"),
      JSON.stringify({
        main: "index.ts",
        workflows: [{ binding: "HELLO", name: "hello", class_name: "Hello" }],
      }),
    );
    writeFileSync(join(broken, "index.ts"), `${WORKFLOW}\nconst oops = ;\n`);
    const server = cairnServer(["dev", broken, "--port", "0", "--json"]);
    try {
      const url = await server.ready;
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(500);
      expect(await page.text()).toContain('index.ts:8:14: Unexpected ";"');
      expect((await fetch(`${url}/api/v1/workflows`)).status).toBe(200);
      expect((await fetch(`${url}/_cairn/`)).status).toBe(200);
      const project = (await (await fetch(`${url}/api/v1/project`)).json()) as any;
      expect(project.result.error.message).toBe('index.ts:8:14: Unexpected ";"');
      const { stderr } = server.output();
      expect(stderr).toContain('✘ index.ts:8:14: Unexpected ";"\n');
      expect(stderr).not.toMatch(/\n\s+at /);

      if (!browserMissing()) {
        const { chromium } = await import("playwright-core");
        const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
        try {
          const tab = await browser.newPage();
          await tab.goto(`${url}/_cairn/`);
          const banner = tab.getByRole("alert");
          await banner.waitFor();
          expect(await banner.textContent()).toContain('index.ts:8:14: Unexpected ";"');
          // Fixing the file reloads: the banner goes away and the project answers.
          writeFileSync(join(broken, "index.ts"), WORKFLOW);
          await waitFor(async () => ((await fetch(`${url}/`)).status === 200 ? true : undefined), "the fix");
          await banner.waitFor({ state: "detached", timeout: 15_000 });
        } finally {
          await browser.close();
        }
      } else if (process.env.CI) throw new Error(browserMissing());
    } finally {
      await server.stop();
      rmSync(broken, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("cairn start logs", () => {
  it("--log-format json writes JSON lines; --log-level debug adds one per request", async () => {
    const server = cairnServer([
      "start",
      dir,
      "--port",
      "0",
      "--store",
      ":memory:",
      "--log-format",
      "json",
      "--log-level",
      "debug",
      "--json",
    ]);
    let stderr = "";
    try {
      const url = await server.ready;
      expect((await fetch(`${url}/`)).status).toBe(200);
      const health = await fetch(`${url}/api/v1/health`);
      expect(await health.json()).toMatchObject({ status: "ok", store: "sqlite" });
      await waitFor(
        () => (server.output().stderr.includes("/api/v1/health") ? true : undefined),
        "the request log",
      );
    } finally {
      await server.stop();
      stderr = server.output().stderr;
    }
    const records = stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records[0]).toMatchObject({
      level: "info",
      msg: expect.stringMatching(/^Cairn: hello listening on http/),
    });
    expect(records).toContainEqual(
      expect.objectContaining({ level: "debug", method: "GET", path: "/", status: 200, msg: "GET / 200" }),
    );
    expect(records).toContainEqual(expect.objectContaining({ level: "info", msg: "Cairn: stopped" }));
    for (const r of records) expect(r.time).toEqual(expect.any(String));
  }, 60_000);

  it("refuses an unknown --log-format", async () => {
    const r = await cairn(["start", dir, "--log-format", "xml"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: --log-format must be text or json, got "xml"');
  });
});
