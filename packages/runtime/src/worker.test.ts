import { FakeClock, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import type { Store } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { encodeValue } from "./codec.ts";
import type { RunHost } from "./run.ts";
import { Runtime } from "./runtime.ts";
import { Worker } from "./worker.ts";

/** One step, then done. */
class Once extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    return step.do("only", async () => "done");
  }
}

/** Each run's step waits until the test opens its gate (it holds its slot meanwhile). */
const gates = new Map<string, () => void>();
class Gated extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    return step.do(
      "gate",
      () => new Promise<string>((resolve) => gates.set(event.instanceId, () => resolve("open"))),
    );
  }
}

/** Waits for an event, then returns its payload. */
class Waits extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    return (await step.waitForEvent("go", { type: "go", timeout: "1 hour" })).payload;
  }
}

const closing: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close();
});

async function setup(options: { maxConcurrent?: number; worker?: boolean } = {}) {
  const store = await openSqliteStore({ path: ":memory:" });
  const clock = new FakeClock();
  const runtime = new Runtime({
    store,
    clock,
    workerId: "w1",
    workflows: [
      { name: "once", class: Once },
      { name: "waits", class: Waits },
      { name: "gated", class: Gated },
    ],
    ...options,
  });
  closing.push(
    () => store.close(),
    () => runtime.close(),
  );
  await runtime.start();
  return { store, clock, runtime };
}

describe("the worker side", () => {
  it("at start, takes over what a previous process left running on a store it is alone on", async () => {
    const store = await openSqliteStore({ path: ":memory:" });
    closing.push(() => store.close());
    const left = { workflow: "once", params: encodeValue({}), createdAt: 1, status: "running" as const };
    await store.instances.insertMany([
      { ...left, id: "a", owner: "dead", leaseUntil: Number.MAX_SAFE_INTEGER, epoch: 3, readyAt: null },
    ]);
    const runtime = new Runtime({
      store,
      clock: new FakeClock(),
      workerId: "w1",
      workflows: [{ name: "once", class: Once }],
    });
    closing.push(() => runtime.close());
    await runtime.start();
    await runtime.whenIdle();
    expect(await runtime.status("once", "a")).toEqual({ status: "complete", output: "done" });
    expect((await store.instances.get("once", "a"))?.epoch).toBe(4);
  });

  it("starts created instances itself while slots are free, and claims the queued ones as slots free up", async () => {
    const { store, runtime } = await setup({ maxConcurrent: 1 });
    await runtime.create("gated", { id: "first" });
    await runtime.create("gated", { id: "second" });
    await runtime.whenIdle();
    // The first holds the only slot (its step is running); the second stays queued.
    expect(await store.instances.get("gated", "first")).toMatchObject({ status: "running", owner: "w1" });
    expect(await store.instances.get("gated", "second")).toMatchObject({ status: "queued", owner: null });
    expect(gates.has("second")).toBe(false);
    gates.get("first")!();
    await runtime.whenIdle();
    expect(await runtime.status("gated", "first")).toEqual({ status: "complete", output: "open" });
    expect(await store.instances.get("gated", "second")).toMatchObject({ status: "running", owner: "w1" });
    gates.get("second")!();
    await runtime.whenIdle();
    expect(await runtime.status("gated", "second")).toEqual({ status: "complete", output: "open" });
  });

  it("wakes an instance at its timeout by the wake-up timer", async () => {
    const { clock, runtime } = await setup();
    await runtime.create("waits", { id: "a" });
    await runtime.whenIdle();
    expect((await runtime.status("waits", "a")).status).toBe("waiting");
    await clock.advance(60 * 60 * 1000 + 1);
    await runtime.whenIdle();
    expect(await runtime.status("waits", "a")).toMatchObject({ status: "errored" });
  });
});

describe("taking a slot on a shared store", () => {
  /** A worker sharing its store (so it installs `takeSlot`), on a real SQLite store with rows `rows`. */
  async function shared(rows: Parameters<Store["instances"]["insertMany"]>[0]) {
    const store = await openSqliteStore({ path: ":memory:" });
    closing.push(() => store.close());
    await store.instances.insertMany(rows);
    const host = {} as RunHost;
    const worker = new Worker({
      store,
      clock: new FakeClock(),
      host,
      workerId: "w1",
      enabled: true,
      maxConcurrent: 2,
      exclusive: false,
      leaseMs: 30_000,
      pollMs: undefined,
      classOf: () => undefined,
      onRun: () => {},
      log: () => {},
    });
    closing.push(() => worker.close());
    return { store, takeSlot: host.takeSlot! };
  }
  const row = { workflow: "waits", params: encodeValue({}), createdAt: 1, readyAt: null, epoch: 2 };

  it("turns a waiting instance this worker owns running", async () => {
    const { store, takeSlot } = await shared([
      { ...row, id: "a", status: "waiting", owner: "w1", leaseUntil: 30_000 },
    ]);
    expect(await takeSlot("waits", "a", 2)).toBe("ok");
    expect(await store.instances.get("waits", "a")).toMatchObject({ status: "running", owner: "w1" });
  });

  it("is fenced once the run parked the instance (no owner): the row stays the store's", async () => {
    // A run that parked while its slot was being taken must not turn the parked row `running`: no
    // worker would ever claim it (it has no lease to expire) and it would stay running forever.
    const parked = { ...row, id: "a", status: "waiting" as const, owner: null, leaseUntil: null, readyAt: 5 };
    const { store, takeSlot } = await shared([parked, { ...parked, id: "b", owner: "w2", leaseUntil: 9 }]);
    expect(await takeSlot("waits", "a", 2)).toBe("fenced");
    expect(await takeSlot("waits", "b", 2)).toBe("fenced");
    expect(await store.instances.get("waits", "a")).toMatchObject({
      status: "waiting",
      owner: null,
      readyAt: 5,
    });
    expect(await store.instances.get("waits", "b")).toMatchObject({ status: "waiting", owner: "w2" });
  });

  it("is fenced at a later epoch, and full when the shared limit is reached", async () => {
    const running = { ...row, status: "running" as const, owner: "w2", leaseUntil: 30_000 };
    const { takeSlot } = await shared([
      { ...row, id: "a", status: "waiting", owner: "w1", leaseUntil: 30_000 },
      { ...running, id: "r1" },
      { ...running, id: "r2" },
    ]);
    expect(await takeSlot("waits", "a", 1)).toBe("fenced");
    expect(await takeSlot("waits", "a", 2)).toBe("full");
  });
});

describe("the control side without a worker", () => {
  it("creates instances queued and runs none", async () => {
    const { store, runtime } = await setup({ worker: false });
    await runtime.create("once", { id: "a" });
    expect(await runtime.createBatch("once", [{ id: "b" }, { id: "a" }, { id: "c" }])).toEqual(["b", "c"]);
    await runtime.whenIdle();
    for (const id of ["a", "b", "c"]) expect((await store.instances.get("once", id))?.status).toBe("queued");
    expect(await store.queue.countRunning()).toBe(0);
  });

  it("restarts from a step, keeping the steps before it (the store rewinds the rest)", async () => {
    const { store, runtime } = await setup();
    await runtime.create("waits", { id: "a" });
    await runtime.sendEvent("waits", "a", { type: "go", payload: "x" });
    await runtime.whenIdle();
    expect(await runtime.status("waits", "a")).toEqual({ status: "complete", output: "x" });
    await runtime.restart("waits", "a", { from: { name: "go", type: "waitForEvent" } });
    expect(await store.steps.list("waits", "a")).toEqual([]);
    expect(await store.events.list("waits", "a")).toEqual([]);
    await runtime.whenIdle();
    expect((await runtime.status("waits", "a")).status).toBe("waiting");
  });
});
