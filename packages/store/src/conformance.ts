/**
 * The store conformance suite: every `Store` implementation runs it from a three-line test file.
 *
 * ```ts
 * import { storeConformance } from "@cairn/store/conformance";
 * import { openSqliteStore } from "./sqlite-store.ts";
 * storeConformance("sqlite (memory)", () => openSqliteStore({ path: ":memory:" }));
 * ```
 *
 * Each test gets a fresh, migrated store from `open` and closes it afterwards. Stores whose data
 * outlives the store object (a file, a server) also pass `reopen`, which enables the persistence tests.
 * The suite pins down behaviour the interface documents and a few choices it leaves open, so every
 * store agrees: inserted instances default to `queued`, priority 1, epoch 0 and `readyAt = createdAt`;
 * `createdAfter`/`createdBefore` are inclusive; an empty `statusIn` guard matches nothing. Its tests
 * are in `conformance/`, one file per noun of the interface.
 */
import { afterEach, beforeEach, describe } from "vitest";
import { eventTests } from "./conformance/events.ts";
import { historyTests } from "./conformance/history.ts";
import { instanceTests, listTests } from "./conformance/instances.ts";
import { lifecycleTests } from "./conformance/lifecycle.ts";
import { metricsTests } from "./conformance/metrics.ts";
import { claimTests } from "./conformance/queue.ts";
import { scheduleTests } from "./conformance/schedules.ts";
import { stepTests } from "./conformance/steps.ts";
import type { Ctx } from "./conformance/support.ts";
import { transactionTests } from "./conformance/transactions.ts";
import { byteTests } from "./conformance/values.ts";
import type { Store } from "./store.ts";

export interface StoreConformanceOptions {
  /**
   * Opens again the store most recently returned by `open`, after the suite has closed it. Only for
   * stores whose data survives `close()`; enables the persistence tests.
   */
  reopen?: () => Promise<Store>;
}

export function storeConformance(
  name: string,
  open: () => Promise<Store>,
  options: StoreConformanceOptions = {},
): void {
  describe(`store conformance: ${name}`, () => {
    const ctx: Ctx = { store: undefined as unknown as Store, closed: false, reopen: options.reopen };
    beforeEach(async () => {
      ctx.store = await open();
      ctx.closed = false;
    });
    afterEach(async () => {
      if (!ctx.closed) await ctx.store.close();
    });

    describe("instances", () => instanceTests(ctx));
    describe("instances.list", () => listTests(ctx));
    describe("queue: claiming and leases", () => claimTests(ctx));
    describe("steps", () => stepTests(ctx));
    describe("events", () => eventTests(ctx));
    describe("history", () => historyTests(ctx));
    describe("transactions", () => transactionTests(ctx));
    describe("byte values", () => byteTests(ctx));
    describe("lifecycle", () => lifecycleTests(ctx));
    describe("schedules", () => scheduleTests(ctx));
    describe("metrics", () => metricsTests(ctx));
  });
}
