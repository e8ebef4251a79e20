import { openSqliteStore } from "@cairn/store-sqlite";
import { describe, expect, it } from "vitest";
import { Runtime } from "./runtime.ts";

describe("Runtime and its store", () => {
  it("refuses a store that does not declare whether workers share it", async () => {
    const real = await openSqliteStore({ path: ":memory:" });
    try {
      const { capabilities: _, ...rest } = Object.getOwnPropertyDescriptors(real);
      const store = Object.create(Object.getPrototypeOf(real), rest);
      expect(() => new Runtime({ store, workflows: [] })).toThrow(
        'The store (kind "sqlite") must declare capabilities.sharedByWorkers',
      );
      expect(() => new Runtime({ store: { ...store, queue: undefined }, workflows: [] })).toThrow(
        /has no queue, transaction: it does not implement Store/,
      );
    } finally {
      await real.close();
    }
  });

  it("takes the worker's exclusivity from the store's capabilities unless told", async () => {
    const store = await openSqliteStore({ path: ":memory:" });
    try {
      // Alone on the store (SQLite): closing renews no leases, so an owned instance keeps its lease.
      const runtime = new Runtime({ store, workflows: [], workerId: "w1" });
      await runtime.start();
      await store.instances.insertMany([
        {
          workflow: "w",
          id: "a",
          params: new Uint8Array(),
          createdAt: 1,
          status: "running",
          owner: "w1",
          leaseUntil: 99,
        },
      ]);
      await runtime.close();
      expect((await store.instances.get("w", "a"))?.leaseUntil).toBe(99);
      // Told it shares the store: closing gives up its leases.
      const shared = new Runtime({ store, workflows: [], workerId: "w1", exclusive: false });
      await shared.start();
      await shared.close();
      expect((await store.instances.get("w", "a"))?.leaseUntil).toBe(0);
    } finally {
      await store.close();
    }
  });
});
