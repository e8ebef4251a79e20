/** Transactions: all or nothing, each of many concurrent ones on its own. */
import { expect, it } from "vitest";
import type { StoreTx } from "../store.ts";
import { bytes, type Ctx, entry, ids, insert, instance, putStep, step, T0, W } from "./support.ts";

export function transactionTests(ctx: Ctx): void {
  /** Writes one of everything for `id` through `tx`. */
  const writeAll = async (tx: StoreTx, id: string) => {
    await insert(tx, instance(id, { status: "running", readyAt: null }));
    await putStep(tx, step(id));
    await tx.events.insert({ workflow: W, instanceId: id, type: "t", payload: bytes(1), timestamp: T0 });
    await tx.history.append([entry(id)]);
  };
  const exists = async (id: string) => {
    const parts = [
      (await ctx.store.instances.get(W, id)) !== undefined,
      (await ctx.store.steps.list(W, id)).length > 0,
      (await ctx.store.events.list(W, id)).length > 0,
      (await ctx.store.history.list(W, id)).length > 0,
    ];
    if (parts.every(Boolean)) return true;
    if (!parts.some(Boolean)) return false;
    throw new Error(`instance ${id} was written in part: ${parts.join(", ")}`);
  };

  it("commits every write and resolves with the function's value", async () => {
    const value = await ctx.store.transaction(async (tx) => {
      await writeAll(tx, "a");
      return { ok: 42 };
    });
    expect(value).toEqual({ ok: 42 });
    expect(await exists("a")).toBe(true);
    expect(ids((await ctx.store.instances.list({ workflow: W, limit: 10 })).items)).toEqual(["a"]);
  });

  it("reports the duration of each transaction, committed or rolled back, until the listener is removed", async () => {
    const seen: number[] = [];
    const remove = ctx.store.onTransaction((ms) => seen.push(ms));
    const thrower = ctx.store.onTransaction(() => {
      throw new Error("a listener's failure");
    });
    await ctx.store.transaction(async (tx) => {
      await insert(tx, instance("a"));
      await new Promise((r) => setTimeout(r, 20));
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeGreaterThanOrEqual(15);
    await expect(
      ctx.store.transaction(async (tx) => {
        await insert(tx, instance("b"));
        throw new Error("no");
      }),
    ).rejects.toThrow("no");
    expect(seen).toHaveLength(2);
    expect(seen.every((ms) => Number.isFinite(ms) && ms >= 0)).toBe(true);
    remove();
    thrower();
    await ctx.store.transaction(async (tx) => insert(tx, instance("c")));
    expect(seen).toHaveLength(2);
    expect(ids((await ctx.store.instances.list({ workflow: W, limit: 10 })).items).sort()).toEqual([
      "a",
      "c",
    ]);
  });

  it("sees its own writes inside the transaction", async () => {
    await ctx.store.transaction(async (tx) => {
      await insert(tx, instance("a"));
      expect(await tx.instances.get(W, "a")).toBeDefined();
      expect(await tx.instances.update(W, "a", { status: "running" }, { statusIn: ["queued"] })).toBe(true);
      expect((await tx.instances.get(W, "a"))!.status).toBe("running");
      await tx.history.append([entry("a")]);
      expect(await tx.history.list(W, "a")).toHaveLength(1);
    });
  });

  it("leaves nothing of a failed transaction and rejects with its error", async () => {
    await insert(ctx.store, instance("pre"));
    const error = new Error("boom");
    await expect(
      ctx.store.transaction(async (tx) => {
        await writeAll(tx, "a");
        await tx.instances.update(W, "pre", { status: "complete" });
        await tx.instances.delete(W, "pre");
        throw error;
      }),
    ).rejects.toBe(error);
    expect(await exists("a")).toBe(false);
    expect((await ctx.store.instances.get(W, "pre"))!.status).toBe("queued");
  });

  it("rejects with a non-Error value thrown by the function", async () => {
    await expect(
      ctx.store.transaction(async (tx) => {
        await insert(tx, instance("a"));
        throw "plain";
      }),
    ).rejects.toBe("plain");
    expect(await ctx.store.instances.get(W, "a")).toBeUndefined();
  });

  it("lets each of many concurrent transactions succeed or fail alone", async () => {
    const n = 40;
    const fails = (i: number) => i % 3 === 1;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        ctx.store.transaction(async (tx) => {
          await writeAll(tx, `t-${i}`);
          if (fails(i)) throw new Error(`fail ${i}`);
          return i;
        }),
      ),
    );
    for (const [i, r] of results.entries()) {
      if (fails(i)) expect(r).toEqual({ status: "rejected", reason: new Error(`fail ${i}`) });
      else expect(r).toEqual({ status: "fulfilled", value: i });
      expect(await exists(`t-${i}`), `t-${i}`).toBe(!fails(i));
    }
  });

  it("runs concurrent single writes each as their own transaction", async () => {
    const inserted = await Promise.all(
      Array.from({ length: 50 }, (_, i) => insert(ctx.store, instance(`i-${i}`))),
    );
    expect(inserted.every(Boolean)).toBe(true);
    const seqs = await Promise.all(
      Array.from({ length: 20 }, () =>
        ctx.store.events.insert({
          workflow: W,
          instanceId: "i-0",
          type: "t",
          payload: bytes(),
          timestamp: T0,
        }),
      ),
    );
    expect(new Set(seqs).size).toBe(20);
    expect(await ctx.store.instances.countByStatus(W)).toEqual([
      { workflow: W, status: "queued", count: 50 },
    ]);
  });

  it("keeps working after a failed transaction", async () => {
    await expect(ctx.store.transaction(async () => Promise.reject(new Error("no")))).rejects.toThrow("no");
    await ctx.store.transaction((tx) => writeAll(tx, "a"));
    expect(await exists("a")).toBe(true);
  });

  it("never loses an update between fenced read-modify-write transactions", async () => {
    await insert(ctx.store, instance("a", { epoch: 0 }));
    const won = await Promise.all(
      Array.from({ length: 20 }, () =>
        ctx.store.transaction(async (tx) => {
          const row = (await tx.instances.get(W, "a"))!;
          return tx.instances.update(W, "a", { epoch: row.epoch + 1 }, { epoch: row.epoch });
        }),
      ),
    );
    expect(won.filter(Boolean).length).toBeGreaterThan(0);
    expect((await ctx.store.instances.get(W, "a"))!.epoch).toBe(won.filter(Boolean).length);
  });
}
