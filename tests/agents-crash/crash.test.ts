/**
 * SIGKILL of a process whose agent drives a workflow: after the restart the agent's state,
 * schedules and tracking rows are intact and the workflow completes and reports to the agent. A
 * crash between the tracking row and the instance's creation never leaves an untracked instance.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { cleanUp, tempDir as makeTempDir, startChild } from "../support/children.ts";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "child.ts");
/** A Cairn process with the agent: on `dir`'s SQLite store, or on `store` (a postgres:// URL). */
const start = (dir: string, store?: string) => startChild(CHILD, store ? [dir, store] : [dir]);
const tempDir = () => makeTempDir("cairn-agents-crash-");

afterEach(cleanUp);

async function until<T>(check: () => Promise<T>, what: string): Promise<T> {
  for (let i = 0; i < 1500; i++) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The agent's tracking rows, read from its SQLite file while no process runs. */
function trackingRows(dir: string): unknown[] {
  const folder = join(dir, "do", "Keeper");
  const file = readdirSync(folder).find((f) => f.endsWith(".sqlite"))!;
  const db = new DatabaseSync(join(folder, file));
  try {
    return db
      .prepare("SELECT workflow_id, status FROM cf_agents_workflows")
      .all()
      .map((r) => ({ ...r }));
  } finally {
    db.close();
  }
}

const POSTGRES = process.env.CAIRN_TEST_POSTGRES_URL;
if (!POSTGRES)
  console.warn("Skipping the agents crash test on PostgreSQL: CAIRN_TEST_POSTGRES_URL is not set");

/** Each test's own schema of the test server, dropped after it. */
const schemas: string[] = [];
afterEach(async () => {
  if (!POSTGRES || schemas.length === 0) return;
  await cleanUp(); // no process may still use the schema

  const client = new pg.Client(POSTGRES);
  await client.connect();
  for (const s of schemas.splice(0)) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await client.end();
});
function postgresStore(): string {
  const schema = `agents_crash_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  schemas.push(schema);
  const url = new URL(POSTGRES!);
  url.searchParams.set("schema", schema);
  return url.toString();
}

for (const kind of ["SQLite", "PostgreSQL"] as const)
  describe.skipIf(kind === "PostgreSQL" && !POSTGRES)(
    `SIGKILL of an agent driving a workflow (${kind} store)`,
    () => {
      /** The store of one test: the SQLite file in its dir, or a new schema (the next process's lease takes over). */
      const storeFor = () => (kind === "PostgreSQL" ? postgresStore() : undefined);

      it("keeps state, schedules and tracking rows; the workflow completes and reports after the restart", async () => {
        const dir = tempDir();
        const store = storeFor();
        const first = await start(dir, store);
        expect(await (await first.post("/setup?id=wf_crash")).json()).toBe("wf_crash");
        await until(
          async () => (await first.get("/inspect")).workflows[0]?.status === "running",
          "the first progress report",
        );
        await first.kill();

        // On PostgreSQL the next worker has objects directory of its own: the agent is restored
        // from what the first shipped, once the first's hold on it runs out.
        const second = await start(kind === "PostgreSQL" ? tempDir() : dir, store);
        const after = await second.get("/inspect");
        expect(after.state).toEqual({ phase: "started" });
        expect(after.schedules.sort((a: any, b: any) => a.type.localeCompare(b.type))).toEqual([
          { type: "cron", callback: "nightly" },
          { type: "interval", callback: "hourly" },
        ]);
        expect(after.workflows).toEqual([{ id: "wf_crash", status: "running", metadata: { by: "test" } }]);
        expect(after.completions).toEqual([]);
        const done = await until(async () => {
          const s = await second.get("/inspect");
          return s.completions.length > 0 ? s : undefined;
        }, "the completion report");
        expect(done.completions).toEqual([{ workflow_id: "wf_crash", result: '"crash-1-2"' }]);
        expect(done.workflows).toEqual([{ id: "wf_crash", status: "complete", metadata: { by: "test" } }]);
        expect(done.state).toEqual({ phase: "done" });
      }, 60_000);

      it("a crash after the tracking row but before the instance exists leaves no row; after it, the row is kept", async () => {
        const dir = tempDir();
        const store = storeFor();
        const first = await start(dir, store);
        await first.post("/crash-before-create?id=wf_never").catch(() => {});
        await first.exited;
        // The row was committed before the instance was to be created.
        expect(trackingRows(dir)).toEqual([{ workflow_id: "wf_never", status: "pending" }]);
        const second = await start(dir, store);
        // Reconciled at load: no instance wf_never, so no row (and no instance either).
        expect((await second.get("/inspect")).workflows).toEqual([]);
        await second.post("/crash-after-create?id=wf_made").catch(() => {});
        await second.exited;
        const third = await start(dir, store);
        const rows = (await third.get("/inspect")).workflows;
        expect(rows.map((r: any) => r.id)).toEqual(["wf_made"]);
        expect(rows[0].status).not.toBe("pending");
        await until(async () => (await third.get("/inspect")).completions.length === 1, "wf_made completing");
      }, 60_000);
    },
  );
