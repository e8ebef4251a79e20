import { describe, expect, it } from "vitest";
import { WriteBatcher } from "./batch.ts";

type Item = { instance: string; n: number; bad?: boolean };
const tick = () => new Promise((r) => setImmediate(r));

/** A batcher whose writes are recorded and finish when the test says so. */
function harness(concurrency = 2) {
  const batches: Item[][] = [];
  const singles: Item[] = [];
  const pending: (() => void)[] = [];
  const inFlight = new Set<string>();
  /** Every item in the order it was sent to the server. */
  const sent: Item[] = [];
  let overlap = false;
  const hold = <T>(items: Item[], value: () => T) =>
    new Promise<T>((resolve, reject) => {
      sent.push(...items);
      for (const i of items) {
        if (inFlight.has(i.instance)) overlap = true;
        inFlight.add(i.instance);
      }
      pending.push(() => {
        for (const i of items) inFlight.delete(i.instance);
        try {
          resolve(value());
        } catch (e) {
          reject(e);
        }
      });
    });
  const batcher = new WriteBatcher<Item, string>({
    instance: (i) => i.instance,
    concurrency,
    maxBatch: 3,
    many: (items) => {
      batches.push(items);
      return hold(items, () => {
        if (items.some((i) => i.bad)) throw new Error("batch failed");
        return items.map((i) => `${i.instance}:${i.n}`);
      });
    },
    one: (item) => {
      singles.push(item);
      return hold([item], () => {
        if (item.bad) throw new Error(`bad ${item.instance}`);
        return `${item.instance}:${item.n}!`;
      });
    },
  });
  const finishAll = async () => {
    for (let rounds = 0; rounds < 50; rounds++) {
      await tick();
      const now = pending.splice(0);
      if (now.length === 0 && rounds > 2) return;
      for (const f of now) f();
    }
  };
  return { batcher, batches, singles, sent, pending, finishAll, overlap: () => overlap };
}

describe("WriteBatcher", () => {
  it("batches writes of distinct instances, keeps one instance's writes in order and never in flight together", async () => {
    const h = harness();
    const items: Item[] = [
      { instance: "a", n: 1 },
      { instance: "b", n: 1 },
      { instance: "a", n: 2 },
      { instance: "c", n: 1 },
      { instance: "d", n: 1 },
      { instance: "a", n: 3 },
      { instance: "e", n: 1 },
    ];
    const results = items.map((i) => h.batcher.write(i));
    await tick();
    await tick();
    // The first write finds the batcher idle and goes at once; the others gather into a batch of
    // three (concurrency 2 reached), with a's later writes held back while a1 is being written.
    expect(h.singles.map((i) => `${i.instance}${i.n}`)).toEqual(["a1"]);
    expect(h.batches.map((b) => b.map((i) => `${i.instance}${i.n}`))).toEqual([["b1", "c1", "d1"]]);
    await h.finishAll();
    expect(await Promise.all(results)).toEqual(["a:1!", "b:1", "a:2", "c:1", "d:1", "a:3!", "e:1"]);
    const order = h.sent.filter((i) => i.instance === "a").map((i) => i.n);
    expect(order).toEqual([1, 2, 3]);
    expect(h.overlap()).toBe(false);
  });

  it("retries a failed batch write by write, so only the bad one fails", async () => {
    const h = harness();
    // A first write keeps the batcher busy, so the next three gather into one batch.
    const first = h.batcher.write({ instance: "first", n: 1 });
    const results = [
      h.batcher.write({ instance: "a", n: 1 }),
      h.batcher.write({ instance: "b", n: 1, bad: true }),
      h.batcher.write({ instance: "c", n: 1 }),
    ].map((p) =>
      p.then(
        (v) => v,
        (e: Error) => e.message,
      ),
    );
    await h.finishAll();
    expect(await first).toBe("first:1!");
    expect(await Promise.all(results)).toEqual(["a:1!", "bad b", "c:1!"]);
    expect(h.batches.map((b) => b.map((i) => i.instance))).toEqual([["a", "b", "c"]]);
    expect(h.singles.map((i) => i.instance)).toEqual(["first", "a", "b", "c"]);
  });
});
