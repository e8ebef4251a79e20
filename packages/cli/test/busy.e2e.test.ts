/**
 * End to end: while a step's callback keeps its thread busy, `cairn start` and `cairn dev` still
 * answer the HTTP API (the project's code runs in a worker thread), and the overrunning attempt is
 * stored as a timeout failure.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@cairn/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli, cairnServer, waitFor } from "./helpers.ts";

let dir: string;
let stores: string;
const BUSY_MS = 4000;

beforeAll(async () => {
  await buildCli();
  dir = mkdtempSync(join(tmpdir(), "cairn-busy-"));
  stores = mkdtempSync(join(tmpdir(), "cairn-busy-stores-"));
  writeFileSync(
    join(dir, "wrangler.json"),
    JSON.stringify({
      name: "busy",
      main: "index.ts",
      workflows: [{ binding: "BUSY", name: "busy", class_name: "Busy" }],
    }),
  );
  writeFileSync(
    join(dir, "index.ts"),
    `
      import { appendFileSync } from "node:fs";
      import { WorkflowEntrypoint, type WorkflowStep } from "cloudflare:workers";
      const trace = (line: string) => appendFileSync(${JSON.stringify(join(stores, "trace.log"))}, line + "\\n");
      export class Busy extends WorkflowEntrypoint {
        async run(_event: unknown, step: WorkflowStep) {
          return step.do("spin", { timeout: "2 seconds", retries: { limit: 0, delay: 0 } }, async () => {
            trace("start");
            const end = Date.now() + ${BUSY_MS};
            while (Date.now() < end) {}
            trace("end");
            return "spun";
          });
        }
      }
    `,
  );
}, 180_000);

afterAll(() => {
  for (const d of [dir, stores]) if (d) rmSync(d, { recursive: true, force: true });
});

const trace = () => {
  try {
    return readFileSync(join(stores, "trace.log"), "utf8").trim().split("\n");
  } catch {
    return [];
  }
};

async function answersWhileBusy(url: string, id: string) {
  rmSync(join(stores, "trace.log"), { force: true });
  const api = createClient({ url });
  await api.createInstance("busy", { instance_id: id });
  await waitFor(() => (trace().includes("start") ? true : undefined), "the busy step to start");
  // Reads, a create and a control command answer while the step still spins.
  const detail = await api.getInstance("busy", id);
  const list = await api.listInstances("busy");
  const other = await api.createInstance("busy", { instance_id: `${id}-later` });
  await api.pause("busy", other.id);
  const graph = await fetch(`${url}/api/v1/workflows/busy/graph`);
  const dashboard = await fetch(`${url}/_cairn/`);
  expect(trace()).toEqual(["start"]);
  expect(graph.status).toBe(200);
  expect(
    ((await graph.json()) as { result: { workflow: { class_name: string } } }).result.workflow.class_name,
  ).toBe("Busy");
  expect(dashboard.status).toBe(200);
  expect(detail.status).toBe("running");
  expect(list.instances.map((i) => i.id)).toContain(id);
  // The attempt overran its timeout: it is stored as a timeout failure, its result discarded.
  const done = await waitFor(async () => {
    const d = await api.getInstance("busy", id);
    return d.status === "errored" ? d : undefined;
  }, "the busy instance to fail");
  expect(trace()).toEqual(["start", "end"]);
  expect(done.error).toMatchObject({
    name: "WorkflowTimeoutError",
    message: "Execution timed out after 2000ms",
    where: "step",
  });
}

describe("a busy step", { timeout: 90_000 }, () => {
  it("does not hold up the API of cairn start", async () => {
    const server = cairnServer(["start", dir, "--port", "0", "--store", join(stores, "start.db"), "--json"]);
    try {
      await answersWhileBusy(await server.ready, "s-1");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  const postgres = process.env.CAIRN_TEST_POSTGRES_URL;
  if (!postgres) {
    if (process.env.CAIRN_REQUIRE_POSTGRES === "1")
      throw new Error("CAIRN_TEST_POSTGRES_URL is not set, and CAIRN_REQUIRE_POSTGRES=1 requires it");
    console.warn("Skipping the PostgreSQL busy-step test: CAIRN_TEST_POSTGRES_URL is not set");
  }
  it.skipIf(!postgres)("does not hold up the API of cairn start on PostgreSQL", async () => {
    const schema = `t_busy_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const url = new URL(postgres!);
    url.searchParams.set("schema", schema);
    const server = cairnServer(["start", dir, "--port", "0", "--store", url.toString(), "--json"]);
    try {
      await answersWhileBusy(await server.ready, "p-1");
    } finally {
      expect(await server.stop()).toBe(0);
      const { default: pg } = await import("pg");
      const db = new pg.Client({ connectionString: postgres });
      await db.connect();
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.end();
    }
  });

  it("does not hold up the API of cairn dev", async () => {
    const server = cairnServer(["dev", dir, "--port", "0", "--store", join(stores, "dev.db"), "--json"]);
    try {
      await answersWhileBusy(await server.ready, "d-1");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
