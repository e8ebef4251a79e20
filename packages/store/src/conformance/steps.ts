/** Steps: fenced commits, reads, rewinds, timers and waiters. */
import type { StepKey, StepKind } from "@cairn/core";
import { describe, expect, it } from "vitest";
import type { InstanceRow, StepCommit } from "../types.ts";
import {
  bytes,
  type Ctx,
  entry,
  eventIds,
  expectBytes,
  expectIncreasing,
  insert,
  instance,
  OTHER,
  putStep,
  step,
  T0,
  W,
} from "./support.ts";

export function stepTests(ctx: Ctx): void {
  it("puts a step and reads it back exactly", async () => {
    const row = step("a", {
      kind: "do",
      name: "charge: card ✓",
      count: 2,
      status: "succeeded",
      attempts: 3,
      result: bytes(0, 1, 254, 255),
      error: { name: "Error", message: "first attempts failed" },
      endedAt: T0 + 50,
      wakeAt: T0 + 60,
    });
    await putStep(ctx.store, row);
    const got = await ctx.store.steps.get(W, "a", "do", "charge: card ✓", 2);
    expect(got).toEqual({ ...row, result: expect.any(Uint8Array) });
    expectBytes(got!.result, row.result!);
  });

  it("keeps a step's rollback flag and config, and a rollback step (SPEC §9.1)", async () => {
    const rollbackConfig = {
      retries: { limit: 3, delay: "15 seconds", backoff: "linear" as const },
      timeout: "2 minutes",
    };
    const forward = step("a", { status: "succeeded", hasRollback: true, rollbackConfig, endedAt: T0 + 5 });
    const compensation = step("a", { kind: "rollback", status: "retrying", attempts: 1, wakeAt: T0 + 9 });
    await putStep(ctx.store, forward);
    await putStep(ctx.store, compensation);
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toEqual(forward);
    expect(await ctx.store.steps.get(W, "a", "rollback", "load order", 1)).toEqual(compensation);
    const plain = await ctx.store.steps.get(W, "a", "rollback", "load order", 1);
    expect(plain && "hasRollback" in plain).toBe(false);
  });

  it("commits a step with a rollback config through steps.commit", async () => {
    await insert(ctx.store, instance("a", { readyAt: T0 }));
    const [row] = await ctx.store.queue.claim({ owner: "w1", now: T0 + 1, limit: 1, leaseMs: 30_000 });
    const rollbackConfig = { retries: { limit: 1, delay: 5, backoff: "constant" as const }, timeout: 1000 };
    const s = step("a", { status: "succeeded", hasRollback: true, rollbackConfig, endedAt: T0 + 5 });
    await ctx.store.steps.commit({
      workflow: W,
      instanceId: "a",
      epoch: row!.epoch,
      status: "running",
      now: T0 + 5,
      step: s,
      history: [],
    });
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toEqual(s);
    const rollback = { trigger: "error" as const, triggerError: { name: "Error", message: "boom" } };
    expect(await ctx.store.instances.update(W, "a", { rollback }, { epoch: row!.epoch })).toBe(true);
    expect((await ctx.store.instances.get(W, "a"))?.rollback).toEqual(rollback);
    expect(await ctx.store.instances.update(W, "a", { rollback: null })).toBe(true);
    expect((await ctx.store.instances.get(W, "a"))?.rollback ?? null).toBeNull();
  });

  describe("commit (a run's fenced step outcome)", () => {
    /** An instance claimed by w1 (epoch 1), running. */
    async function owned(id: string): Promise<InstanceRow> {
      await insert(ctx.store, instance(id, { readyAt: T0 }));
      const [row] = await ctx.store.queue.claim({ owner: "w1", now: T0 + 1, limit: 1, leaseMs: 30_000 });
      expect(row?.id).toBe(id);
      return row!;
    }
    const commit = (row: InstanceRow, over: Partial<StepCommit> = {}): StepCommit => ({
      workflow: W,
      instanceId: row.id,
      epoch: row.epoch,
      status: "running",
      now: T0 + 10,
      step: step(row.id, { status: "succeeded", result: bytes(7), endedAt: T0 + 10 }),
      history: [
        entry(row.id, { type: "step_completed", step: { kind: "do", name: "load order", count: 1 } }),
      ],
      statusEntry: entry(row.id, { type: "workflow_waiting", timestamp: T0 + 10 }),
      ...over,
    });

    it("puts the step and appends the history when the run owns the instance", async () => {
      const row = await owned("a");
      expect(await ctx.store.steps.commit(commit(row))).toBe("running");
      const stored = await ctx.store.steps.get(W, "a", "do", "load order", 1);
      expect(stored?.status).toBe("succeeded");
      expectBytes(stored!.result, bytes(7));
      // The status did not change, so the status entry is left out and updatedAt is kept.
      expect((await ctx.store.history.list(W, "a")).map((e) => e.type)).toEqual(["step_completed"]);
      expect(await ctx.store.instances.get(W, "a")).toEqual(row);
    });

    it("stores a status change with its entry after the others", async () => {
      const row = await owned("a");
      const first = commit(row, {
        status: "waiting",
        step: step("a", { status: "sleeping", wakeAt: T0 + 99 }),
      });
      expect(await ctx.store.steps.commit(first)).toBe("running");
      const after = await ctx.store.instances.get(W, "a");
      expect(after).toEqual({ ...row, status: "waiting", updatedAt: T0 + 10 });
      const history = await ctx.store.history.list(W, "a");
      expect(history.map((e) => e.type)).toEqual(["step_completed", "workflow_waiting"]);
      expectIncreasing(eventIds(history));
      expect(await ctx.store.steps.commit(commit(row, { now: T0 + 20, statusEntry: undefined }))).toBe(
        "waiting",
      );
      expect((await ctx.store.instances.get(W, "a"))?.status).toBe("running");
    });

    it("keeps a pending pause: waitingForPause stays, and the step is stored", async () => {
      const row = await owned("a");
      await ctx.store.instances.update(W, "a", { status: "waitingForPause" });
      expect(await ctx.store.steps.commit(commit(row, { status: "waiting" }))).toBe("waitingForPause");
      expect((await ctx.store.instances.get(W, "a"))?.status).toBe("waitingForPause");
      expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toBeDefined();
      expect((await ctx.store.history.list(W, "a")).map((e) => e.type)).toEqual(["step_completed"]);
    });

    it("writes nothing for a run that lost the instance (new epoch, or no longer active)", async () => {
      const row = await owned("a");
      expect(await ctx.store.steps.commit(commit(row, { epoch: row.epoch - 1 }))).toBeUndefined();
      for (const status of ["paused", "terminated", "queued", "complete"] as const) {
        await ctx.store.instances.update(W, "a", { status });
        expect(await ctx.store.steps.commit(commit(row)), status).toBeUndefined();
      }
      expect(await ctx.store.steps.commit(commit({ ...row, id: "missing" }))).toBeUndefined();
      expect(await ctx.store.steps.list(W, "a")).toEqual([]);
      expect(await ctx.store.history.list(W, "a")).toEqual([]);
      expect(await ctx.store.steps.list(W, "missing")).toEqual([]);
    });

    it("is refused after another worker took the instance over", async () => {
      const row = await owned("a");
      const [taken] = await ctx.store.queue.claim({
        owner: "w2",
        now: T0 + 60_000,
        limit: 1,
        leaseMs: 30_000,
      });
      expect(taken?.epoch).toBe(row.epoch + 1);
      expect(await ctx.store.steps.commit(commit(row))).toBeUndefined();
      expect(await ctx.store.steps.commit(commit(taken!))).toBe("running");
    });

    it("rolls back with the transaction it is part of", async () => {
      const row = await owned("a");
      await expect(
        ctx.store.transaction(async (tx) => {
          expect(await tx.steps.commit(commit(row, { status: "waiting" }))).toBe("running");
          throw new Error("undo");
        }),
      ).rejects.toThrow("undo");
      expect(await ctx.store.instances.get(W, "a")).toEqual(row);
      expect(await ctx.store.steps.list(W, "a")).toEqual([]);
      expect(await ctx.store.history.list(W, "a")).toEqual([]);
    });

    describe("with a stream result's chunk rows (SPEC §9.3)", () => {
      const KEY = { kind: "do", name: "load order", count: 1 } as const;
      /** `n` chunks of distinct bytes; the first is 256 KiB, the others 1 KiB. */
      const chunksOf = (n: number, seed = 0) =>
        Array.from({ length: n }, (_, i) => {
          const c = new Uint8Array(i === 0 ? 256 * 1024 : 1024);
          for (let j = 0; j < c.length; j++) c[j] = (j * 31 + i * 7 + seed) & 0xff;
          return c;
        });
      const readAll = async (id: string, key: StepKey = KEY) => {
        const out: Uint8Array[] = [];
        for (let i = 0; ; i++) {
          const c = await ctx.store.steps.chunk(W, id, key, i);
          if (!c) return out;
          out.push(c);
        }
      };
      const expectChunks = (got: Uint8Array[], want: Uint8Array[]) => {
        expect(got.map((c) => c.byteLength)).toEqual(want.map((c) => c.byteLength));
        for (const [i, c] of got.entries()) expectBytes(c, want[i]!);
      };

      it("stores them in order with the step and reads each back exactly", async () => {
        const row = await owned("a");
        // More than one statement's worth on PostgreSQL (16 per insert).
        const chunks = chunksOf(21);
        expect(await ctx.store.steps.commit(commit(row, { chunks }))).toBe("running");
        expectChunks(await readAll("a"), chunks);
        expect(await ctx.store.steps.chunk(W, "a", KEY, 21)).toBeUndefined();
        expect(await ctx.store.steps.chunk(W, "a", { ...KEY, count: 2 }, 0)).toBeUndefined();
        expect(await ctx.store.steps.chunk(W, "b", KEY, 0)).toBeUndefined();
        expectBytes((await ctx.store.steps.get(W, "a", "do", "load order", 1))!.result, bytes(7));
      });

      it("writes none for a run that lost the instance, nor in a transaction rolled back", async () => {
        const row = await owned("a");
        expect(await ctx.store.steps.commit(commit(row, { epoch: row.epoch - 1, chunks: chunksOf(3) }))).toBe(
          undefined,
        );
        await expect(
          ctx.store.transaction(async (tx) => {
            expect(await tx.steps.commit(commit(row, { chunks: chunksOf(3) }))).toBe("running");
            throw new Error("undo");
          }),
        ).rejects.toThrow("undo");
        expect(await readAll("a")).toEqual([]);
        expect(await ctx.store.steps.list(W, "a")).toEqual([]);
      });

      it("replaces the step's chunks when it is committed with others", async () => {
        const row = await owned("a");
        await ctx.store.steps.commit(commit(row, { chunks: chunksOf(5) }));
        const second = chunksOf(2, 1);
        await ctx.store.steps.commit(commit(row, { chunks: second }));
        expectChunks(await readAll("a"), second);
      });

      it("goes with its step: rewound from it, rewound whole, or deleted with the instance", async () => {
        const rowA = await owned("a");
        const other = { kind: "do", name: "other", count: 1 } as const;
        const a = chunksOf(2);
        const b = chunksOf(3, 5);
        await ctx.store.steps.commit(commit(rowA, { chunks: a }));
        await ctx.store.steps.commit(
          commit(rowA, {
            step: step("a", { ...other, seq: 2, status: "succeeded", result: bytes(8) }),
            chunks: b,
          }),
        );
        await ctx.store.instances.rewind(W, "a", { steps: [KEY], afterEventId: Number.MAX_SAFE_INTEGER });
        expect(await readAll("a")).toEqual([]);
        expectChunks(await readAll("a", other), b);
        await ctx.store.instances.rewind(W, "a");
        expect(await readAll("a", other)).toEqual([]);

        const rowB = await owned("b");
        await ctx.store.steps.commit(commit(rowB, { chunks: a }));
        expect(await ctx.store.instances.delete(W, "b")).toBe(true);
        expect(await readAll("b")).toEqual([]);
      });
    });
  });

  it("round-trips a waiting step with null config and an event type", async () => {
    const row = step("a", {
      kind: "waitForEvent",
      name: "approval",
      status: "waiting",
      config: null,
      attempts: 0,
      wakeAt: T0 + 86_400_000,
      eventType: "approved",
    });
    await putStep(ctx.store, row);
    expect(await ctx.store.steps.get(W, "a", "waitForEvent", "approval", 1)).toEqual(row);
  });

  it("returns undefined for a missing step", async () => {
    await putStep(ctx.store, step("a"));
    const key = ["do", "load order", 1] as const;
    expect(await ctx.store.steps.get(W, "a", ...key)).toBeDefined();
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 2)).toBeUndefined();
    expect(await ctx.store.steps.get(W, "a", "sleep", "load order", 1)).toBeUndefined();
    expect(await ctx.store.steps.get(W, "a", "do", "load", 1)).toBeUndefined();
    expect(await ctx.store.steps.get(W, "b", ...key)).toBeUndefined();
    expect(await ctx.store.steps.get(OTHER, "a", ...key)).toBeUndefined();
  });

  it("replaces the row of an existing step", async () => {
    await putStep(ctx.store, step("a"));
    const done = step("a", { status: "succeeded", attempts: 2, result: bytes(4), endedAt: T0 + 9 });
    await putStep(ctx.store, done);
    expect(await ctx.store.steps.get(W, "a", "do", "load order", 1)).toEqual({
      ...done,
      result: expect.any(Uint8Array),
    });
    expect(await ctx.store.steps.list(W, "a")).toHaveLength(1);
    await putStep(ctx.store, step("a"));
    expect((await ctx.store.steps.get(W, "a", "do", "load order", 1))!.result).toBeNull();
  });

  it("lists an instance's steps in the order they started", async () => {
    const rows = [
      step("a", { kind: "sleep", name: "nap", seq: 3, startedAt: T0, status: "sleeping", wakeAt: T0 + 100 }),
      step("a", { name: "first", seq: 1, startedAt: T0 }),
      step("a", { name: "first", count: 2, seq: 2, startedAt: T0 }),
      step("a", {
        kind: "waitForEvent",
        name: "go",
        seq: 4,
        startedAt: T0,
        status: "waiting",
        eventType: "go",
      }),
    ];
    for (const r of rows) await putStep(ctx.store, r);
    await putStep(ctx.store, step("b", { name: "other" }));
    await putStep(ctx.store, step("a", { workflow: OTHER, name: "other" }));
    const listed = await ctx.store.steps.list(W, "a");
    expect(listed.map((s) => `${s.kind}:${s.name}:${s.count}`)).toEqual([
      "do:first:1",
      "do:first:2",
      "sleep:nap:1",
      "waitForEvent:go:1",
    ]);
    expect(await ctx.store.steps.list(W, "missing")).toEqual([]);
  });

  it("rewinds the given steps, or all of an instance's, keeping the instance", async () => {
    const keys: [StepKind, string, number][] = [
      ["do", "a", 1],
      ["do", "a", 2],
      ["sleep", "a", 1],
      ["do", "b", 1],
    ];
    for (const [kind, name, count] of keys) await putStep(ctx.store, step("i", { kind, name, count }));
    await putStep(ctx.store, step("j", { name: "a" }));
    await ctx.store.instances.rewind(W, "i", {
      steps: [
        { kind: "do", name: "a", count: 2 },
        { kind: "sleep", name: "a", count: 1 },
        { kind: "do", name: "missing", count: 1 },
      ],
      afterEventId: Number.MAX_SAFE_INTEGER,
    });
    expect((await ctx.store.steps.list(W, "i")).map((s) => `${s.kind}:${s.name}:${s.count}`).sort()).toEqual([
      "do:a:1",
      "do:b:1",
    ]);
    await ctx.store.instances.rewind(W, "i", { steps: [], afterEventId: Number.MAX_SAFE_INTEGER });
    expect(await ctx.store.steps.list(W, "i")).toHaveLength(2);
    await ctx.store.instances.rewind(W, "i");
    expect(await ctx.store.steps.list(W, "i")).toEqual([]);
    expect(await ctx.store.steps.list(W, "j")).toHaveLength(1);
    expect(await ctx.store.instances.get(W, "i")).toBeDefined();
  });

  it("shifts the wake times of pending steps only", async () => {
    const rows = [
      step("a", { name: "sleeping", status: "sleeping", wakeAt: T0 + 100 }),
      step("a", { name: "retrying", status: "retrying", wakeAt: T0 + 200 }),
      step("a", {
        name: "waiting",
        kind: "waitForEvent",
        status: "waiting",
        wakeAt: T0 + 300,
        eventType: "x",
      }),
      step("a", { name: "running", status: "running", wakeAt: T0 + 400 }),
      step("a", { name: "succeeded", status: "succeeded", wakeAt: T0 + 500 }),
      step("a", { name: "failed", status: "failed", wakeAt: T0 + 600 }),
      step("a", { name: "no-timer", status: "waiting", kind: "waitForEvent", wakeAt: null, eventType: "x" }),
      step("b", { name: "sleeping", status: "sleeping", wakeAt: T0 + 100 }),
    ];
    for (const r of rows) await putStep(ctx.store, r);
    await ctx.store.steps.shiftWakeTimes(W, "a", 5000);
    const wake = async (instanceId: string, kind: StepKind, name: string) =>
      (await ctx.store.steps.get(W, instanceId, kind, name, 1))!.wakeAt;
    expect(await wake("a", "do", "sleeping")).toBe(T0 + 5100);
    expect(await wake("a", "do", "retrying")).toBe(T0 + 5200);
    expect(await wake("a", "waitForEvent", "waiting")).toBe(T0 + 5300);
    expect(await wake("a", "do", "running")).toBe(T0 + 400);
    expect(await wake("a", "do", "succeeded")).toBe(T0 + 500);
    expect(await wake("a", "do", "failed")).toBe(T0 + 600);
    expect(await wake("a", "waitForEvent", "no-timer")).toBeNull();
    expect(await wake("b", "do", "sleeping")).toBe(T0 + 100);
    await ctx.store.steps.shiftWakeTimes(W, "a", -100);
    expect(await wake("a", "do", "sleeping")).toBe(T0 + 5000);
  });

  it("knows whether a waitForEvent step waits for a type", async () => {
    await putStep(
      ctx.store,
      step("a", { kind: "waitForEvent", name: "approval", status: "waiting", eventType: "approved" }),
    );
    await putStep(
      ctx.store,
      step("a", { kind: "waitForEvent", name: "old", status: "succeeded", eventType: "shipped" }),
    );
    expect(await ctx.store.steps.hasWaiter(W, "a", "approved")).toBe(true);
    expect(await ctx.store.steps.hasWaiter(W, "a", "shipped")).toBe(false);
    expect(await ctx.store.steps.hasWaiter(W, "a", "other")).toBe(false);
    expect(await ctx.store.steps.hasWaiter(W, "b", "approved")).toBe(false);
    expect(await ctx.store.steps.hasWaiter(OTHER, "a", "approved")).toBe(false);
  });
}
