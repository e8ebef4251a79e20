import { getAgentByName } from "@cairn/agents";
import { afterEach, describe, expect, it } from "vitest";
import { SqlAgent } from "./agents.ts";
import { Client, closeAll, serve, until } from "./helpers.ts";

// this.sql, queue() and destroy() (upstream's sql, queue and destroy tests).

const objects = [{ binding: "SqlAgent", class: SqlAgent }];
afterEach(closeAll);

describe("this.sql, queue, destroy", () => {
  it("binds interpolations as parameters (no injection) and returns rows", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/sql-agent/q`);
    expect((await c.call("addNote", ["a'); DROP TABLE notes; --"])).result).toBe(1);
    expect((await c.call("addNote", ["plain"])).result).toBe(2);
    expect((await c.call("find", ["a'); DROP TABLE notes; --"])).result).toEqual([
      { body: "a'); DROP TABLE notes; --" },
    ]);
  });

  it("a failing query throws SqlError with the query text", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/sql-agent/e`);
    const r = (await c.call("bad")).result;
    expect(r.name).toBe("SqlError");
    expect(r.query).toBe("SELECT * FROM missing_table WHERE x = ?");
    expect(r.message).toMatch(/^SQL query failed: no such table: missing_table/);
  });

  it("queue() runs callbacks in FIFO order, one at a time", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/sql-agent/fifo`);
    await c.call("enqueue", [[5, 3, 9, 1, 7]]);
    await until(async () => (await c.call("seen")).result.length === 5, "the queue drained");
    expect((await c.call("seen")).result).toEqual([5, 3, 9, 1, 7]);
  });

  it("destroy() drops the framework tables and storage; the next use starts empty", async () => {
    const s = await serve(objects);
    const c = await Client.open(`${s.wsUrl}/agents/sql-agent/gone`);
    await c.call("addNote", ["x"]);
    expect((await c.call("tables")).result).toEqual([
      "cf_agents_queues",
      "cf_agents_schedules",
      "cf_agents_state",
      "cf_agents_workflows",
    ]);
    await c.call("selfDestruct");
    await until(async () => {
      try {
        // getAgentByName runs onStart (which creates the notes table) on the fresh instance.
        return (await (await getAgentByName<SqlAgent>(s.env.SqlAgent, "gone")).addNote("fresh")) === 1;
      } catch {
        return false;
      }
    }, "a fresh agent");
  }, 60_000);
});
