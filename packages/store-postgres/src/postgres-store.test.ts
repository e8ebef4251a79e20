import { randomUUID } from "node:crypto";
import type { InstancePatch, StepCommit, StepRow } from "@cairn/store";
import { storeConformance } from "@cairn/store/conformance";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { PostgresStoreError } from "./errors.ts";
import { LATEST_VERSION, MIGRATIONS } from "./migrations.ts";
import { openPostgresStore, PostgresStore } from "./postgres-store.ts";

/**
 * The server to test against, from `CAIRN_TEST_POSTGRES_URL`. Without one the suite is skipped with a
 * printed reason, unless `CAIRN_REQUIRE_POSTGRES=1`, where a missing server is a failure.
 */
function postgresUrl(): string | undefined {
  const url = process.env.CAIRN_TEST_POSTGRES_URL;
  if (url) return url;
  const reason = "CAIRN_TEST_POSTGRES_URL is not set";
  if (process.env.CAIRN_REQUIRE_POSTGRES === "1")
    throw new Error(`${reason}, and CAIRN_REQUIRE_POSTGRES=1 requires the PostgreSQL tests to run`);
  console.warn(`Skipping the PostgreSQL store tests: ${reason}`);
  return undefined;
}

const url = postgresUrl();
/** Every schema the tests create, dropped at the end. */
const schemas: string[] = [];
const newSchema = () => {
  const name = `cairn_test_${randomUUID().replaceAll("-", "").slice(0, 16)}`;
  schemas.push(name);
  return name;
};

afterAll(async () => {
  if (!url || schemas.length === 0) return;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await admin.end();
}, 120_000); // dropping a couple of hundred schemas takes a while on a loaded machine

const W = "orders";
const T0 = 1_767_225_600_000;

/** A succeeded `do` step row of `instanceId`, with `over` applied. */
function doneStep(instanceId: string, name: string, over: Partial<StepRow> = {}): StepRow {
  return {
    workflow: W,
    instanceId,
    kind: "do",
    name,
    count: 1,
    seq: 1,
    status: "succeeded",
    config: null,
    attempts: 1,
    result: null,
    error: null,
    startedAt: T0,
    endedAt: T0,
    wakeAt: null,
    eventType: null,
    ...over,
  };
}

/** A pool that records the text of every statement sent through `pool.query`. */
function spyPool(): { pool: pg.Pool; texts: string[] } {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const texts: string[] = [];
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  (pool as unknown as { query: unknown }).query = (config: unknown, ...rest: unknown[]) => {
    texts.push(typeof config === "string" ? config : (config as { text: string }).text);
    return query(config, ...rest);
  };
  return { pool, texts };
}

describe.skipIf(!url)("PostgresStore", () => {
  let schema = "";
  storeConformance("postgres", () => openPostgresStore({ url: url!, schema: (schema = newSchema()) }), {
    reopen: () => openPostgresStore({ url: url!, schema }),
  });

  // One pg.Client (no pool): every operation runs on it, one at a time.
  storeConformance("postgres (one client)", async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const store = new PostgresStore({ db: client, schema: newSchema(), ownsDb: true });
    await store.migrate();
    return store;
  });

  describe("postgres-specific", () => {
    it("never gives one instance to two stores claiming concurrently from one schema", async () => {
      const s = newSchema();
      const stores = await Promise.all([1, 2, 3, 4].map(() => openPostgresStore({ url: url!, schema: s })));
      try {
        const n = 500;
        await stores[0]!.transaction(async (tx) => {
          for (let i = 0; i < n; i++)
            await tx.instances.insertMany([
              {
                workflow: W,
                id: `i-${i}`,
                params: new Uint8Array([i % 256]),
                createdAt: T0,
                readyAt: T0 + (i % 7),
                priority: i % 2,
              },
            ]);
        });
        const got = await Promise.all(
          stores.map(async (store, w) => {
            const mine: string[] = [];
            for (;;) {
              const rows = await store.queue.claim({
                owner: `w${w}`,
                now: T0 + 10,
                limit: 7,
                leaseMs: 60_000,
              });
              if (rows.length === 0) {
                // Another claimer may have held rows locked for a moment: look once more.
                const again = await store.queue.claim({
                  owner: `w${w}`,
                  now: T0 + 10,
                  limit: 7,
                  leaseMs: 60_000,
                });
                if (again.length === 0) return mine;
                mine.push(...again.map((r) => r.id));
                continue;
              }
              mine.push(...rows.map((r) => r.id));
            }
          }),
        );
        const all = got.flat();
        expect(all).toHaveLength(n);
        expect(new Set(all).size).toBe(n);
        for (const [w, ids] of got.entries())
          for (const id of ids.slice(0, 20))
            expect((await stores[0]!.instances.get(W, id))!.owner).toBe(`w${w}`);
        expect(got.filter((ids) => ids.length > 0).length, "more than one store got work").toBeGreaterThan(1);
      } finally {
        await Promise.all(stores.map((store) => store.close()));
      }
    });

    it("gives each buffered event to one of several concurrent consumers", async () => {
      const store = await openPostgresStore({ url: url!, schema: newSchema(), poolSize: 8 });
      try {
        for (let i = 0; i < 30; i++)
          await store.events.insert({
            workflow: W,
            instanceId: "a",
            type: "t",
            payload: new Uint8Array([i]),
            timestamp: T0,
          });
        const got = await Promise.all(
          Array.from({ length: 40 }, (_, i) => store.events.consume(W, "a", "t", `waitForEvent:${i}:t`)),
        );
        const seqs = got.filter((e) => e !== undefined).map((e) => e.seq);
        expect(seqs).toHaveLength(30);
        expect(new Set(seqs).size).toBe(30);
      } finally {
        await store.close();
      }
    });

    it("migrates once when three stores migrate one schema at the same time", async () => {
      const s = newSchema();
      const pools = [1, 2, 3].map(() => new pg.Pool({ connectionString: url, max: 2 }));
      try {
        const stores = pools.map((pool) => new PostgresStore({ db: pool, schema: s }));
        await Promise.all(stores.map((store) => store.migrate()));
        const { rows } = await pools[0]!.query(
          `SELECT version FROM "${s}".cairn_migrations ORDER BY version`,
        );
        expect(rows.map((r) => r.version)).toEqual(Array.from({ length: LATEST_VERSION }, (_, i) => i + 1));
        expect(
          await stores[1]!.instances.insertMany([
            {
              workflow: W,
              id: "a",
              params: new Uint8Array(),
              createdAt: T0,
            },
          ]),
        ).toEqual([true]);
      } finally {
        await Promise.all(pools.map((pool) => pool.end()));
      }
    });

    it("ends a transaction left idle by a stalled worker, so its claim lock and row locks free up", async () => {
      const s = newSchema();
      const stalled = await openPostgresStore({ url: url!, schema: s, transactionIdleTimeoutMs: 300 });
      const other = await openPostgresStore({ url: url!, schema: s });
      try {
        for (const id of ["a", "b"])
          await other.instances.insertMany([
            {
              workflow: W,
              id,
              params: new Uint8Array(),
              createdAt: T0,
              readyAt: T0,
            },
          ]);
        const claim = { now: T0 + 1, limit: 1, leaseMs: 60_000, maxRunning: 10 };
        let release!: () => void;
        const stall = new Promise<void>((r) => (release = r));
        // A claim that takes the claimers' lock and a row, then stalls before committing.
        const held = stalled.transaction(async (tx) => {
          expect((await tx.queue.claim({ ...claim, owner: "stalled" })).map((i) => i.id)).toEqual(["a"]);
          await stall;
          await tx.instances.get(W, "a");
        });
        const heldError = held.catch((e: unknown) => e);
        await new Promise((r) => setTimeout(r, 50));
        // The other worker waits for the claimers' lock until the server ends the stalled session.
        const startedAt = Date.now();
        const got = await other.transaction((tx) => tx.queue.claim({ ...claim, owner: "other" }));
        expect(got.map((i) => i.id)).toEqual(["a"]);
        expect(Date.now() - startedAt).toBeGreaterThanOrEqual(150);
        release();
        const error = await heldError;
        expect(PostgresStoreError.is(error), String(error)).toBe(true);
        expect((await other.instances.get(W, "a"))?.owner).toBe("other");
        // The stalled store recovers: its next transaction runs on a fresh connection.
        expect(await stalled.transaction((tx) => tx.instances.get(W, "b"))).toMatchObject({ id: "b" });
      } finally {
        await Promise.all([stalled.close(), other.close()]);
      }
    });

    it("rejects a transaction idle timeout that is not a positive whole number of ms", async () => {
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      try {
        for (const bad of [0, -1, 1.5, Number.NaN])
          expect(() => new PostgresStore({ db: pool, transactionIdleTimeoutMs: bad })).toThrow(
            `transactionIdleTimeoutMs must be a positive whole number of ms, got ${bad}`,
          );
      } finally {
        await pool.end();
      }
    });

    it("writes concurrent step commits together, each fenced and failing on its own", async () => {
      const { pool, texts } = spyPool();
      const store = await openPostgresStore({ pool, schema: newSchema() });
      try {
        const n = 60;
        await store.instances.insertMany(
          Array.from({ length: n }, (_, i) => ({
            workflow: W,
            id: `c${i}`,
            params: new Uint8Array(),
            createdAt: T0,
          })),
        );
        const claimed = await store.queue.claim({ owner: "w", now: T0 + 1, limit: n, leaseMs: 60_000 });
        expect(claimed).toHaveLength(n);
        const byId = new Map(claimed.map((r) => [r.id, r]));
        // c0–c9 were taken over (new epoch), c10 is pausing; every third commit changes the status.
        for (let i = 0; i < 10; i++) await store.instances.update(W, `c${i}`, { epoch: 99 });
        await store.instances.update(W, "c10", { status: "waitingForPause" });
        const commit = (i: number, name: string, over: Partial<StepRow> = {}): StepCommit => ({
          workflow: W,
          instanceId: `c${i}`,
          epoch: byId.get(`c${i}`)!.epoch,
          status: i % 3 === 0 ? "waiting" : "running",
          now: T0 + 5,
          step: doneStep(`c${i}`, name, {
            result: new Uint8Array([i, 0, 255]),
            error: i % 2 ? { name: "Error", message: `first try ${i}` } : null,
            startedAt: T0 + 2,
            endedAt: T0 + 5,
            wakeAt: i % 4 ? null : T0 + 1000,
            ...over,
          }),
          history: [
            {
              workflow: W,
              instanceId: `c${i}`,
              type: "step_completed",
              timestamp: T0 + 5,
              step: { kind: "do", name, count: 1 },
              data: { i },
            },
          ],
          statusEntry: { workflow: W, instanceId: `c${i}`, type: "workflow_waiting", timestamp: T0 + 5 },
        });
        const commits = Array.from({ length: n }, (_, i) => commit(i, "a"));
        // Second commits of some instances (kept in order after the first), and one bad value
        // (a NUL in a name), which fails alone.
        commits.push(commit(20, "b"), commit(21, "b"), commit(22, "bad\u0000name"));
        texts.length = 0;
        const results = await Promise.allSettled(commits.map((c) => store.steps.commit(c)));
        // The first commit finds the batcher idle and goes alone; then two batches (the second
        // commits cannot join the first), the failed one retried one by one.
        const batched = texts.filter((t) => t.includes("WITH c AS")).length;
        expect(batched).toBe(2);
        expect(texts.length).toBe(1 + 2 + 3);
        const value = (i: number) => (results[i] as PromiseFulfilledResult<unknown>).value;
        for (let i = 0; i < 10; i++) expect(value(i), `c${i}`).toBeUndefined();
        expect(value(10)).toBe("waitingForPause");
        for (let i = 11; i < n; i++) expect(value(i), `c${i}`).toBe("running");
        expect(value(n)).toBe("running"); // c20: 20 % 3 !== 0
        expect(value(n + 1)).toBe("waiting");
        expect(results[n + 2]!.status).toBe("rejected");
        for (let i = 0; i < n; i++) {
          const steps = await store.steps.list(W, `c${i}`);
          const history = (await store.history.list(W, `c${i}`)).map((e) => e.type);
          const row = await store.instances.get(W, `c${i}`);
          if (i < 10) {
            expect(steps, `c${i}`).toEqual([]);
            expect(history, `c${i}`).toEqual([]);
            continue;
          }
          expect(steps[0], `c${i}`).toEqual(commit(i, "a").step);
          const waiting = i % 3 === 0 && i !== 10;
          expect(row?.status, `c${i}`).toBe(i === 10 ? "waitingForPause" : waiting ? "waiting" : "running");
          expect(row?.updatedAt, `c${i}`).toBe(waiting ? T0 + 5 : byId.get(`c${i}`)!.updatedAt);
          // The second commits of c20 and c21 carry the status the first one stored: no status entry.
          expect(history, `c${i}`).toEqual([
            "step_completed",
            ...(waiting ? ["workflow_waiting"] : []),
            ...(i === 20 || i === 21 ? ["step_completed"] : []),
          ]);
        }
      } finally {
        await store.close();
        await pool.end();
      }
    });

    it("answers concurrent loads of many instances' steps and events with one statement each", async () => {
      const { pool, texts } = spyPool();
      const store = await openPostgresStore({ pool, schema: newSchema() });
      try {
        const n = 40;
        for (let i = 0; i < n; i++) {
          if (i % 4 !== 0)
            await store.instances.insertMany([
              { workflow: W, id: `l${i}`, params: new Uint8Array(), createdAt: T0, status: "running" },
            ]);
          for (let k = 3; k >= 1; k--)
            if (i % 4 !== 0) {
              const step = doneStep(`l${i}`, `s${k}`, { seq: k, result: new Uint8Array([i, k]) });
              const commit = { workflow: W, instanceId: `l${i}`, epoch: 0, status: "running" as const };
              expect(await store.steps.commit({ ...commit, now: T0, step, history: [] })).toBe("running");
            }
          for (let k = 0; k < i % 3; k++)
            await store.events.insert({
              workflow: W,
              instanceId: `l${i}`,
              type: `t${k}`,
              payload: new Uint8Array([k]),
              timestamp: T0,
            });
        }
        texts.length = 0;
        const ids = Array.from({ length: n }, (_, i) => `l${i}`);
        const [steps, events] = await Promise.all([
          Promise.all(ids.map((id) => store.steps.list(W, id))),
          Promise.all(ids.map((id) => store.events.list(W, id))),
        ]);
        expect(texts).toHaveLength(2);
        for (let i = 0; i < n; i++) {
          expect(steps[i]!.map((s) => `${s.instanceId}/${s.name}`)).toEqual(
            i % 4 === 0 ? [] : [`l${i}/s1`, `l${i}/s2`, `l${i}/s3`],
          );
          expect(events[i]!.map((e) => `${e.instanceId}/${e.type}`)).toEqual(
            Array.from({ length: i % 3 }, (_, k) => `l${i}/t${k}`),
          );
          expect(steps[i], `l${i}`).toEqual(await store.transaction((tx) => tx.steps.list(W, `l${i}`)));
        }
      } finally {
        await store.close();
        await pool.end();
      }
    });

    it("rewinds an instance in one statement, from given steps or all of it", async () => {
      const { pool, texts } = spyPool();
      const store = await openPostgresStore({ pool, schema: newSchema() });
      try {
        await store.instances.insertMany([
          { workflow: W, id: "a", params: new Uint8Array(), createdAt: T0, status: "running" },
        ]);
        const wait = { kind: "waitForEvent" as const, name: "w", count: 1 };
        for (const [seq, step] of [doneStep("a", "s1"), { ...doneStep("a", "w"), ...wait }].entries()) {
          const commit = { workflow: W, instanceId: "a", epoch: 0, status: "running" as const, now: T0 };
          await store.steps.commit({ ...commit, step: { ...step, seq: seq + 1 }, history: [] });
        }
        await store.events.insert({
          workflow: W,
          instanceId: "a",
          type: "t",
          payload: new Uint8Array(),
          timestamp: T0,
        });
        await store.events.consume(W, "a", "t", "waitForEvent:1:w");
        texts.length = 0;
        await store.instances.rewind(W, "a", { steps: [wait], afterEventId: 0 });
        expect(texts).toHaveLength(1);
        expect((await store.steps.list(W, "a")).map((s) => s.name)).toEqual(["s1"]);
        expect(await store.events.list(W, "a")).toEqual([]);
        texts.length = 0;
        await store.instances.rewind(W, "a");
        expect(texts).toHaveLength(1);
        expect(await store.steps.list(W, "a")).toEqual([]);
      } finally {
        await store.close();
        await pool.end();
      }
    });

    it("writes concurrent logged updates (runs ending) together, each fenced and failing on its own", async () => {
      const { pool, texts } = spyPool();
      const store = await openPostgresStore({ pool, schema: newSchema() });
      try {
        const n = 30;
        await store.instances.insertMany(
          Array.from({ length: n }, (_, i) => ({
            workflow: W,
            id: `u${i}`,
            params: new Uint8Array(),
            createdAt: T0,
            status: "running" as const,
            epoch: 1,
          })),
        );
        await store.instances.update(W, "u3", { epoch: 2 });
        const end = (i: number, over: Partial<InstancePatch> = {}) => {
          const patch: InstancePatch =
            i % 2
              ? { status: "complete", output: new Uint8Array([i, 0]), endedAt: T0 + i, owner: null, ...over }
              : {
                  status: "errored",
                  error: { name: "Error", message: `no ${i}` },
                  endedAt: T0 + i,
                  owner: null,
                  ...over,
                };
          const history = [
            {
              workflow: W,
              instanceId: `u${i}`,
              type: i % 2 ? "workflow_completed" : "workflow_errored",
              timestamp: T0 + i,
            },
          ] as const;
          return store.instances.update(W, `u${i}`, patch, { epoch: 1, statusIn: ["running", "waiting"] }, [
            ...history,
          ]);
        };
        texts.length = 0;
        const results = await Promise.allSettled([
          ...Array.from({ length: n }, (_, i) => end(i)),
          end(5, { status: "bad\u0000status" as never }),
        ]);
        const value = (i: number) => (results[i] as PromiseFulfilledResult<boolean>).value;
        // Two shapes (complete, errored) in two statements, then the repeat of u5 alone, which fails.
        expect(texts.filter((t) => t.includes("WITH v AS"))).toHaveLength(2);
        for (let i = 0; i < n; i++) expect(value(i), `u${i}`).toBe(i !== 3);
        expect(results[n]!.status).toBe("rejected");
        for (let i = 0; i < n; i++) {
          const row = await store.instances.get(W, `u${i}`);
          const history = (await store.history.list(W, `u${i}`)).map((e) => e.type);
          if (i === 3) {
            expect(row?.status).toBe("running");
            expect(history).toEqual([]);
            continue;
          }
          expect(row, `u${i}`).toMatchObject({
            status: i % 2 ? "complete" : "errored",
            endedAt: T0 + i,
            owner: null,
            error: i % 2 ? null : { name: "Error", message: `no ${i}` },
          });
          if (i % 2) expect([...row!.output!]).toEqual([i, 0]);
          expect(history).toEqual([i % 2 ? "workflow_completed" : "workflow_errored"]);
        }
      } finally {
        await store.close();
        await pool.end();
      }
    });

    it("object replica: leases with epochs, fenced changesets, snapshots that compact, alarms of free objects", async () => {
      const store = await openPostgresStore({ url: url!, schema: newSchema() });
      try {
        const r = store.objectReplica();
        const b = (...v: number[]) => new Uint8Array(v);
        const take = (owner: string, now: number) =>
          r.acquire({ className: "Counter", id: "o1", owner, now, leaseMs: 1000 });
        expect(await take("w1", T0)).toEqual({ acquired: true, epoch: 1, log: [], alarm: null });
        expect(await take("w2", T0 + 500)).toEqual({ acquired: false, owner: "w1", leaseUntil: T0 + 1000 });
        // The holder's forwarding address goes to whoever finds it held.
        const other = { className: "Counter", id: "o2", leaseMs: 1000 };
        await r.acquire({ ...other, owner: "x1", now: T0, url: "http://127.0.0.1:9001" });
        expect(await r.acquire({ ...other, owner: "x2", now: T0 + 1 })).toEqual({
          acquired: false,
          owner: "x1",
          leaseUntil: T0 + 1000,
          ownerUrl: "http://127.0.0.1:9001",
        });
        // Listing from any worker: names, times and the holder while its lease runs.
        await r.acquire({ ...other, id: "o3", owner: "x1", now: T0 + 5, name: "third" });
        expect(await r.list("Counter", { limit: 2, offset: 0 })).toMatchObject([
          { id: "o3", name: "third", createdAt: T0 + 5, lastAccess: T0 + 5 },
          { id: "o1", name: null, createdAt: T0 }, // o1 and o2 were both taken at T0: by id
        ]);
        expect(await r.get("Counter", "o3")).toMatchObject({ id: "o3", name: "third", alarm: null });
        expect(await r.get("Counter", "nope")).toBeUndefined();
        expect(await r.count(["Counter", "Other"])).toEqual({ Counter: 3, Other: 0 });
        expect(await r.log("Counter", "o3")).toEqual([]);
        const append = (epoch: number, seq: number, kind: "changeset" | "snapshot", alarm?: number | null) =>
          r.append({
            className: "Counter",
            id: "o1",
            owner: "w1",
            epoch,
            entry: { seq, kind, bytes: b(seq, 0, 255) },
            ...(alarm === undefined ? {} : { alarm }),
          });
        expect(await append(1, 1, "changeset")).toBe(true);
        expect(await append(1, 2, "changeset", T0 + 2000)).toBe(true);
        // The lease is renewed, so another worker still cannot take it.
        expect(await r.renew("w1", T0 + 3000)).toBe(1);
        expect(await take("w2", T0 + 2000)).toMatchObject({ acquired: false, leaseUntil: T0 + 3000 });
        // Its alarm waits for the lease to run out: the owner may still be alive.
        expect(await r.dueAlarms("w2", T0 + 2500, 10)).toEqual([]);
        expect(await r.nextAlarm("w2", T0 + 2500)).toBe(T0 + 3001);
        const due = [{ className: "Counter", id: "o1", time: T0 + 2000 }];
        expect(await r.dueAlarms("w1", T0 + 2500, 10)).toEqual(due);
        expect(await r.dueAlarms("w2", T0 + 3001, 10)).toEqual(due);
        // After the lease: w2 takes it over with everything w1 shipped, and w1 is fenced.
        const taken = await take("w2", T0 + 3001);
        expect(taken).toMatchObject({ acquired: true, epoch: 2, alarm: T0 + 2000 });
        const log = (taken as { log: { seq: number; kind: string; bytes: Uint8Array }[] }).log;
        expect(log.map((e) => [e.seq, e.kind, [...e.bytes]])).toEqual([
          [1, "changeset", [1, 0, 255]],
          [2, "changeset", [2, 0, 255]],
        ]);
        expect(await append(1, 3, "changeset")).toBe(false);
        const w2 = (seq: number, kind: "changeset" | "snapshot", alarm?: number | null) =>
          r.append({
            className: "Counter",
            id: "o1",
            owner: "w2",
            epoch: 2,
            entry: { seq, kind, bytes: b(seq) },
            ...(alarm === undefined ? {} : { alarm }),
          });
        expect(await w2(3, "snapshot", null)).toBe(true);
        expect(await w2(4, "changeset")).toBe(true);
        await r.release("Counter", "o1", "w2", 2);
        const again = await take("w1", T0 + 3002);
        expect(again).toMatchObject({ acquired: true, epoch: 3, alarm: null });
        expect((again as { log: { seq: number; kind: string }[] }).log.map((e) => [e.seq, e.kind])).toEqual([
          [3, "snapshot"],
          [4, "changeset"],
        ]);
        expect(await r.nextAlarm("w2", T0)).toBeNull();
      } finally {
        await store.close();
      }
    });

    it("concurrent creates share statements and still notify listeners of the queued ones", async () => {
      const schema = newSchema();
      // Counts the statements that create instances (one create, or several).
      const pool = new pg.Pool({ connectionString: url, max: 4 });
      let creates = 0;
      const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
      (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: string })?.text;
        if (text?.includes(`INSERT INTO "${schema}".instances`)) creates++;
        return query(...args);
      };
      const store = new PostgresStore({ db: pool, schema, ownsDb: true });
      await store.migrate();
      const other = await openPostgresStore({ url: url!, schema });
      const messages: unknown[] = [];
      const stop = await other.listen((m) => messages.push(m));
      try {
        const create = (id: string) => ({
          row: { workflow: W, id, params: new Uint8Array([1]), createdAt: T0 },
          history: [{ workflow: W, instanceId: id, type: "workflow_queued" as const, timestamp: T0 }],
          notify: { kind: "ready" as const, sender: "w1" },
        });
        const queued = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.instances.create(create(`q${i}`))),
        );
        expect(new Set(queued)).toEqual(new Set(["queued"]));
        for (let i = 0; messages.length === 0; i++) {
          if (i > 100) throw new Error("no notification of the queued instances");
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(messages[0]).toEqual({ kind: "ready", sender: "w1" });
        const start = { owner: "w1", leaseUntil: T0 + 1000, maxRunning: 1000 };
        const started = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.instances.create({ ...create(`s${i}`), start })),
        );
        expect(new Set(started)).toEqual(new Set(["started"]));
        expect(await store.queue.countRunning()).toBe(50);
        // The first of each burst goes alone; the others wait for it and go together.
        expect(creates).toBeGreaterThan(0);
        expect(creates).toBeLessThan(20);
      } finally {
        await stop();
        await other.close();
        await store.close();
      }
    });

    it("a create whose statement fails leaves nothing behind, and the connection stays usable", async () => {
      const store = await openPostgresStore({ url: url!, schema: newSchema(), poolSize: 1 });
      try {
        const create = (id: string) => ({
          row: { workflow: W, id, params: new Uint8Array([1]), createdAt: T0 },
          history: [{ workflow: W, instanceId: id, type: "workflow_queued" as const, timestamp: T0 }],
          start: { owner: "w1", leaseUntil: T0 + 1000, maxRunning: 5 },
        });
        const error = await store.instances.create(create("bad\u0000id")).catch((e: unknown) => e);
        expect(PostgresStoreError.is(error), String(error)).toBe(true);
        // The one pooled connection is not left inside the failed transaction or holding the lock.
        expect(await store.instances.create(create("good"))).toBe("started");
        expect(
          await store.queue.claim({ owner: "w2", now: T0, limit: 5, leaseMs: 1000, maxRunning: 5 }),
        ).toEqual([]);
        expect((await store.history.list(W, "good")).map((e) => e.type)).toEqual(["workflow_queued"]);
      } finally {
        await store.close();
      }
    });

    it("never deadlocks: lease renewals and batched writes of many instances lock rows in one order", async () => {
      const store = await openPostgresStore({ url: url!, schema: newSchema() });
      try {
        const n = 120;
        await store.instances.insertMany(
          Array.from({ length: n }, (_, i) => ({
            workflow: W,
            // Ids whose key order differs from the order they are written in.
            id: `d${(i * 37) % n}`,
            params: new Uint8Array(),
            createdAt: T0,
            readyAt: T0,
          })),
        );
        const claimed = await store.queue.claim({ owner: "w", now: T0 + 1, limit: n, leaseMs: 60_000 });
        expect(claimed).toHaveLength(n);
        const errors: unknown[] = [];
        const until = Date.now() + 1500;
        const renewals = (async () => {
          while (Date.now() < until)
            await store.queue.renewLeases("w", T0 + 120_000).catch((e) => errors.push(e));
        })();
        let wave = 0;
        while (Date.now() < until) {
          wave++;
          // Each wave in a different order, so concurrent batches hold rows in different orders.
          const rows = wave % 2 ? claimed : [...claimed].reverse();
          await Promise.all(
            rows.map((r, i) =>
              store.steps
                .commit({
                  workflow: W,
                  instanceId: r.id,
                  epoch: r.epoch,
                  status: (wave + i) % 2 ? "running" : "waiting",
                  now: T0 + wave,
                  step: doneStep(r.id, `s${wave}`, { seq: wave }),
                  history: [],
                })
                .catch((e) => errors.push(e)),
            ),
          );
        }
        await renewals;
        expect(errors.map(String)).toEqual([]);
        expect(wave).toBeGreaterThan(2);
      } finally {
        await store.close();
      }
    });

    it("refuses a schema newer than the code", async () => {
      const s = newSchema();
      const store = await openPostgresStore({ url: url!, schema: s });
      await store.close();
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      try {
        await pool.query(
          `INSERT INTO "${s}".cairn_migrations (version, name, applied_at) VALUES ($1, 'future', 0)`,
          [LATEST_VERSION + 1],
        );
        const error = await openPostgresStore({ url: url!, schema: s }).catch((e: unknown) => e);
        expect(PostgresStoreError.is(error, "schema_too_new")).toBe(true);
        expect((error as Error).message).toMatch(`schema version ${LATEST_VERSION + 1}, newer than`);
      } finally {
        await pool.end();
      }
    });

    it("keeps the history of a version 8 schema and numbers new entries after it", async () => {
      const s = newSchema();
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      try {
        await pool.query(`CREATE SCHEMA "${s}"`);
        await pool.query(
          `CREATE TABLE "${s}".cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
        );
        for (const m of MIGRATIONS.filter((x) => x.version <= 8)) {
          await pool.query(m.sql(`"${s}"`));
          await pool.query(`INSERT INTO "${s}".cairn_migrations VALUES ($1, $2, 0)`, [m.version, m.name]);
        }
        for (const [type, step] of [
          ["workflow_running", null],
          ["step_started", "x"],
          ["step_completed", "x"],
        ] as const)
          await pool.query(
            `INSERT INTO "${s}".history (workflow, instance_id, type, timestamp, step_kind, step_name, step_count)
             VALUES ('w', 'a', $1, $2, $3, $4, $5)`,
            [type, T0, step && "do", step, step && 1],
          );
      } finally {
        await pool.end();
      }
      const store = await openPostgresStore({ url: url!, schema: s });
      try {
        const y = { kind: "do" as const, name: "y", count: 1 };
        await store.history.append([
          {
            workflow: "w",
            instanceId: "a",
            type: "attempt_started",
            timestamp: T0 + 1,
            step: y,
            data: { attempt: 1 },
          },
          { workflow: "w", instanceId: "a", type: "step_completed", timestamp: T0 + 2, step: y },
          { workflow: "w", instanceId: "a", type: "workflow_completed", timestamp: T0 + 2 },
        ]);
        const all = await store.history.list("w", "a");
        expect(all.map((e) => e.type)).toEqual([
          "workflow_running",
          "step_started",
          "step_completed",
          "attempt_started",
          "step_completed",
          "workflow_completed",
        ]);
        expect(all.slice(0, 3).map((e) => e.eventId)).toEqual([1, 2, 3]);
        for (let i = 1; i < all.length; i++) expect(all[i]!.eventId).toBeGreaterThan(all[i - 1]!.eventId);
        expect(await store.history.list("w", "a", { afterEventId: all[3]!.eventId })).toEqual(all.slice(4));
      } finally {
        await store.close();
      }
    });

    it("works inside a transaction the caller owns, committing nothing itself", async () => {
      const s = newSchema();
      await (await openPostgresStore({ url: url!, schema: s })).close();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query("BEGIN");
        const store = new PostgresStore({ db: client, schema: s, inTransaction: true });
        await store.instances.insertMany([
          { workflow: W, id: "kept", params: new Uint8Array([1]), createdAt: T0 },
        ]);
        await expect(
          store.transaction(async (tx) => {
            await tx.instances.insertMany([
              {
                workflow: W,
                id: "undone",
                params: new Uint8Array([1]),
                createdAt: T0,
              },
            ]);
            throw new Error("no");
          }),
        ).rejects.toThrow("no");
        expect(await store.instances.get(W, "kept")).toBeDefined();
        expect(await store.instances.get(W, "undone")).toBeUndefined();
        await client.query("ROLLBACK");
        expect(await store.instances.get(W, "kept")).toBeUndefined();
      } finally {
        await client.end();
      }
    });

    it("maps driver errors: a store whose schema was never migrated", async () => {
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      try {
        const store = new PostgresStore({ db: pool, schema: newSchema() });
        const error = await store.instances.get(W, "a").catch((e: unknown) => e);
        expect(PostgresStoreError.is(error, "not_migrated")).toBe(true);
      } finally {
        await pool.end();
      }
    });

    it("refuses to commit a transaction in which a statement failed and the error was caught", async () => {
      const store = await openPostgresStore({ url: url!, schema: newSchema() });
      try {
        const error = await store
          .transaction(async (tx) => {
            await tx.instances.insertMany([
              { workflow: W, id: "a", params: new Uint8Array(), createdAt: T0 },
            ]);
            // PostgreSQL cannot store a NUL character in text: the statement fails.
            await tx.events
              .insert({
                workflow: W,
                instanceId: "a",
                type: "x\u0000y",
                payload: new Uint8Array(),
                timestamp: T0,
              })
              .catch(() => {});
          })
          .catch((e: unknown) => e);
        expect(PostgresStoreError.is(error)).toBe(true);
        expect(await store.instances.get(W, "a")).toBeUndefined();
      } finally {
        await store.close();
      }
    });
  });
});
