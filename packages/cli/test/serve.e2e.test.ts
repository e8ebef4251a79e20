/**
 * End to end: `cairn start` and `cairn dev` as child processes serving a Worker project, driven by
 * other `cairn` processes, and stopped with SIGTERM.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@cairn/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli, cairn, cairnServer, waitFor } from "./helpers.ts";

const TOKEN = "serve-token";
let dir: string;
let stores: string;

beforeAll(async () => {
  await buildCli();
  dir = mkdtempSync(join(tmpdir(), "cairn-cli-"));
  stores = mkdtempSync(join(tmpdir(), "cairn-cli-stores-"));
  writeFileSync(
    join(dir, "wrangler.json"),
    JSON.stringify({
      name: "orders",
      main: "index.ts",
      workflows: [{ binding: "ORDERS", name: "orders", class_name: "Orders" }],
    }),
  );
  writeFileSync(
    join(dir, "index.ts"),
    `
      import { WorkflowEntrypoint, type WorkflowStep, type WorkflowEvent } from "cloudflare:workers";
      export class Orders extends WorkflowEntrypoint {
        async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
          const doubled = await step.do("double", async () => event.payload.n * 2);
          const ok = await step.waitForEvent("approval", { type: "approved", timeout: "1 hour" });
          return { doubled, by: (ok.payload as { by: string }).by };
        }
      }
      export default { async fetch() { return new Response("hello from the worker"); } };
    `,
  );
}, 180_000);

afterAll(() => {
  for (const d of [dir, stores]) if (d) rmSync(d, { recursive: true, force: true });
});

async function drive(url: string) {
  const env = { CAIRN_URL: url, CAIRN_TOKEN: TOKEN };
  const api = createClient({ url, token: TOKEN });
  const trigger = await cairn(["workflows", "trigger", "orders", '{"n":21}', "--id", "o-1"], env);
  expect(trigger.stdout, trigger.stderr).toBe('🚀 Workflow instance "o-1" has been queued successfully\n');
  await waitFor(async () => {
    const d = await api.getInstance("orders", "o-1");
    return d.steps.some((s) => s.type === "waitForEvent") ? d : undefined;
  }, "o-1 at its wait");
  const sent = await cairn(
    [
      "workflows",
      "instances",
      "send-event",
      "orders",
      "latest",
      "--type",
      "approved",
      "--payload",
      '{"by":"cli"}',
    ],
    env,
  );
  expect(sent.code, sent.stderr).toBe(0);
  const done = await waitFor(async () => {
    const d = await api.getInstance("orders", "o-1");
    return d.status === "complete" ? d : undefined;
  }, "o-1 complete");
  expect(done.output).toEqual({ doubled: 42, by: "cli" });
  const described = await cairn(["workflows", "instances", "describe", "orders", "o-1"], env);
  expect(described.stdout).toContain("Status:               ✅ Completed");
  expect(described.stdout).toContain('Output:               {"doubled":42,"by":"cli"}');
  // the project's own fetch handler is served beside the API
  expect(await (await fetch(url)).text()).toBe("hello from the worker");
}

/** The status of a GET sent with this `Host` header (which fetch cannot set). */
const statusFor = (url: string, host: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request(url, { headers: { host, authorization: `Bearer ${TOKEN}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });

/** Loopback names and the allowed hosts are answered on the API and the project's routes; others 403. */
async function checkHosts(url: string, allowed: string[]) {
  const port = new URL(url).port;
  for (const path of ["/api/v1/workflows", "/"]) {
    for (const host of [`localhost:${port}`, ...allowed])
      expect(await statusFor(url + path, host), host).toBe(200);
    expect(await statusFor(url + path, `evil.test:${port}`)).toBe(403);
  }
}

describe("cairn start", { timeout: 90_000 }, () => {
  it("serves a project until SIGTERM, then exits 0", async () => {
    const server = cairnServer(
      [
        "start",
        dir,
        "--port",
        "0",
        "--store",
        join(stores, "start.db"),
        "--json",
        "--host-allow",
        "cairn.test",
      ],
      { CAIRN_TOKEN: TOKEN },
    );
    try {
      const url = await server.ready;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await drive(url);
      await checkHosts(url, ["cairn.test"]);
      const bad = await cairn(["workflows", "list"], { CAIRN_URL: url, CAIRN_TOKEN: "nope" });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/unauthorized/);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    // the store kept the instance: a second start serves it again
    const again = cairnServer([
      "start",
      dir,
      "--port",
      "0",
      "--store",
      join(stores, "start.db"),
      "--json",
      "--token",
      TOKEN,
    ]);
    try {
      const url = await again.ready;
      const list = await cairn(["workflows", "instances", "list", "orders", "--json"], {
        CAIRN_URL: url,
        CAIRN_TOKEN: TOKEN,
      });
      expect(
        JSON.parse(list.stdout).instances.map((i: { id: string; status: string }) => [i.id, i.status]),
      ).toEqual([["o-1", "complete"]]);
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });

  it("fails with exit 1 when the project cannot be loaded", async () => {
    const r = await cairn(["start", join(dir, "missing"), "--port", "0"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^✘ /m);
  });
});

describe("cairn dev", { timeout: 90_000 }, () => {
  it("runs a project in a child process until SIGTERM", async () => {
    // the default store, <dir>/.cairn/cairn.db, is not watched (a store inside the project would reload it)
    const server = cairnServer(
      [
        "dev",
        dir,
        "--port",
        "0",
        "--json",
        "--host-allow",
        "cairn.test,*.cairn.test",
        "--host-allow",
        "b.test",
      ],
      { CAIRN_TOKEN: TOKEN, CAIRN_HOST_ALLOW: "env.test" },
    );
    try {
      const url = await server.ready;
      await drive(url);
      await checkHosts(url, ["cairn.test", "a.cairn.test:1", "b.test", "env.test"]);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
