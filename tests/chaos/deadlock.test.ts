/**
 * A control command that PostgreSQL aborts as one side of a deadlock runs again instead of failing.
 *
 * The deadlock is a real one: another connection locks the instance's step rows, the restart locks
 * the instance's row and waits for the step rows (its rewind deletes them), and the other connection
 * then asks for the instance's row. PostgreSQL aborts the restart's transaction (40P01); the store
 * reports `retry`, and the runtime runs the command again once the other connection is done.
 */
import { type Cairn, createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";

const PG_URL = process.env.CAIRN_TEST_POSTGRES_URL;
if (!PG_URL) {
  if (process.env.CAIRN_REQUIRE_POSTGRES === "1")
    throw new Error("CAIRN_TEST_POSTGRES_URL is not set, and CAIRN_REQUIRE_POSTGRES=1 requires it");
  console.warn("Skipping the PostgreSQL deadlock tests: CAIRN_TEST_POSTGRES_URL is not set");
}

/** A step (so the instance has a step row), then a long event wait. */
class Waits extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("a", async () => 1);
    await step.waitForEvent("go", { type: "go", timeout: "1 hour" });
    return "done";
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(): Promise<{ cairn: Cairn; schema: string }> {
  const schema = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const url = new URL(PG_URL!);
  url.searchParams.set("schema", schema);
  const cairn = await createCairn({
    store: url.toString(),
    workflows: [{ binding: "WAITS", name: "waits", class: Waits }],
    pollMs: 200,
  });
  cleanups.push(async () => {
    await cairn.close();
    const db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.end();
  });
  return { cairn, schema };
}

async function connect(): Promise<pg.Client> {
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  cleanups.push(() => db.end());
  return db;
}

async function waitingInstance(cairn: Cairn, id: string): Promise<void> {
  await cairn.runtime.create("waits", { id });
  const deadline = Date.now() + 10_000;
  while ((await cairn.runtime.status("waits", id)).status !== "waiting") {
    if (Date.now() > deadline) throw new Error(`instance ${id} never got to waiting`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Plays the other side of the deadlock against `command` (which locks the instance's row, then
 * deletes its steps): locks the steps, waits until `command` is blocked on them, then asks for the
 * instance's row (granted once PostgreSQL has aborted `command`'s transaction) and commits.
 */
async function deadlockWith(
  other: pg.Client,
  schema: string,
  id: string,
  command: () => Promise<unknown>,
): Promise<PromiseSettledResult<unknown>> {
  await other.query("BEGIN");
  // This side never runs the deadlock check first: the command's transaction is the one aborted.
  await other.query("SET LOCAL deadlock_timeout = '60s'");
  const locked = await other.query(
    `SELECT 1 FROM "${schema}".steps WHERE workflow = 'waits' AND instance_id = $1 FOR UPDATE`,
    [id],
  );
  expect(locked.rowCount).toBeGreaterThan(0);
  const outcome = command().then(
    (value) => ({ status: "fulfilled", value }) as const,
    (reason) => ({ status: "rejected", reason }) as const,
  );
  const me = (await other.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const blocked = await other.query(
      "SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
      [me],
    );
    if (blocked.rowCount) break;
    if (Date.now() > deadline) throw new Error("the command never waited for the locked steps");
    await new Promise((r) => setTimeout(r, 5));
  }
  await other.query(`SELECT 1 FROM "${schema}".instances WHERE workflow = 'waits' AND id = $1 FOR UPDATE`, [
    id,
  ]);
  await other.query("COMMIT");
  return outcome;
}

describe.skipIf(!PG_URL)("deadlocks on PostgreSQL", () => {
  it("the store reports a transaction aborted by a deadlock as `retry`", async () => {
    const { cairn, schema } = await open();
    await waitingInstance(cairn, "d1");
    const other = await connect();
    const store = cairn.runtime.store;
    const result = await deadlockWith(other, schema, "d1", () =>
      store.transaction(async (tx) => {
        await tx.instances.get("waits", "d1", { lock: true });
        await tx.instances.rewind("waits", "d1");
      }),
    );
    expect(result.status).toBe("rejected");
    const error = (result as PromiseRejectedResult).reason as { name: string; code: string; message: string };
    expect(error.name).toMatch(/StoreError$/);
    expect(error.code).toBe("retry");
    expect(error.message).toMatch(/concurrent/);
    // Nothing was rewound: the step is still there.
    expect((await store.steps.list("waits", "d1")).map((s) => s.name)).toContain("a");
  }, 30_000);

  it("a restart caught in a deadlock runs again and restarts the instance", async () => {
    const { cairn, schema } = await open();
    await waitingInstance(cairn, "d2");
    const other = await connect();
    const before = (await cairn.runtime.store.history.list("waits", "d2")).length;
    const result = await deadlockWith(other, schema, "d2", () => cairn.runtime.restart("waits", "d2"));
    expect(result).toEqual({ status: "fulfilled", value: undefined });
    // Restarted: the history was wiped and the run goes through its step to the event wait again.
    const deadline = Date.now() + 10_000;
    while ((await cairn.runtime.status("waits", "d2")).status !== "waiting") {
      if (Date.now() > deadline) throw new Error("the restarted instance never got to waiting");
      await new Promise((r) => setTimeout(r, 10));
    }
    const history = await cairn.runtime.store.history.list("waits", "d2");
    expect(history.filter((h) => h.type === "workflow_queued")).toHaveLength(1);
    expect(before).toBeGreaterThan(0);
    await cairn.runtime.sendEvent("waits", "d2", { type: "go" });
    const end = Date.now() + 10_000;
    while ((await cairn.runtime.status("waits", "d2")).status !== "complete") {
      if (Date.now() > end) throw new Error("the restarted instance never completed");
      await new Promise((r) => setTimeout(r, 10));
    }
  }, 30_000);
});
