import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HistoryEntry, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import type { Store } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";
import { trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Runtime } from "./runtime.ts";
import { cpuMeter, type Telemetry } from "./telemetry.ts";

type RunFn = (event: WorkflowEvent, step: WorkflowStep) => Promise<unknown>;

const dirs: string[] = [];
const opened: { runtime: Runtime; store: Store }[] = [];
afterEach(async () => {
  for (const { runtime, store } of opened.splice(0)) {
    await runtime.close();
    await store.close();
  }
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A runtime on a real SQLite file with the system clock (CPU time is real time). */
async function setup(run: RunFn, options: { cpuLimitMs?: number; hotWaitThreshold?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "cairn-metrics-"));
  dirs.push(dir);
  const store = await openSqliteStore({ path: join(dir, "cairn.db") });
  class W extends WorkflowEntrypoint {
    override run(event: WorkflowEvent, step: WorkflowStep) {
      return run(event, step);
    }
  }
  const stored: HistoryEntry["type"][] = [];
  const ran: number[][] = [];
  const telemetry: Telemetry = {
    stored: (entries) => stored.push(...entries.map((e) => e.type)),
    ran: (_w, cpu, wall) => ran.push([cpu, wall]),
  };
  const runtime = new Runtime({
    store,
    workflows: [{ name: "w", class: W }],
    telemetry: [telemetry],
    ...options,
  });
  await runtime.start();
  opened.push({ runtime, store });
  const done = (id: string) =>
    new Promise<void>((resolve) => {
      const check = async () => {
        const row = await store.instances.get("w", id);
        if (row && ["complete", "errored", "terminated"].includes(row.status)) resolve();
      };
      runtime.onChange((w, i) => {
        if (w === "w" && i === id) void check();
      });
      void check();
    });
  return { runtime, store, stored, ran, done };
}

/** Keeps the thread busy for `ms` of wall time. */
function spin(ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) n++;
  return n;
}

const attemptEnd = (history: HistoryEntry[], name: string) => {
  const e = history.find((h) => h.type === "attempt_completed" && h.step?.name === name);
  return e?.data as { cpuTimeMs: number; wallTimeMs: number; cpuLimitExceeded?: boolean };
};

describe("CPU and wall time (SPEC §12.2)", () => {
  it("a busy step's CPU time is at least 80 % of its wall time, a step awaiting a timer far below", async () => {
    // What the busy callback itself saw: the thread's CPU time and the wall time of its loop.
    let own = { cpuMs: 0, wallMs: 0 };
    const { runtime, store, done, stored, ran } = await setup(async (_e, step) => {
      await step.do("busy", async () => {
        const cpu0 = process.threadCpuUsage();
        const t0 = performance.now();
        spin(150);
        const cpu = process.threadCpuUsage(cpu0);
        own = { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0 };
        return true;
      });
      await step.do("timer", async () => {
        await new Promise((r) => setTimeout(r, 200));
        return 2;
      });
      return "ok";
    });
    const id = await runtime.create("w");
    await done(id);
    const history = await store.history.list("w", id);
    const busy = attemptEnd(history, "busy");
    const timer = attemptEnd(history, "timer");
    expect(busy.wallTimeMs).toBeGreaterThanOrEqual(150);
    // The accounting caught the CPU time the callback used, whatever else the machine runs.
    expect(busy.cpuTimeMs).toBeGreaterThanOrEqual(0.95 * own.cpuMs);
    expect(busy.cpuTimeMs).toBeLessThanOrEqual(busy.wallTimeMs + 1);
    // When the thread had a core for the loop (other work on a shared machine can take it away,
    // and then no accounting can find CPU time that was not used), the ratio of SPEC §12.4 holds.
    if (own.cpuMs >= 0.9 * own.wallMs) expect(busy.cpuTimeMs).toBeGreaterThanOrEqual(0.8 * busy.wallTimeMs);
    expect(timer.wallTimeMs).toBeGreaterThanOrEqual(199);
    expect(timer.cpuTimeMs).toBeLessThan(0.1 * timer.wallTimeMs);
    expect(busy.cpuLimitExceeded).toBeUndefined();
    // The instance: both attempts and its run() code, over the time it was loaded.
    const row = (await store.instances.get("w", id))!;
    expect(row.cpuTimeMs).toBeGreaterThanOrEqual(busy.cpuTimeMs + timer.cpuTimeMs - 0.02);
    expect(row.cpuTimeMs).toBeLessThan(row.wallTimeMs!);
    expect(row.wallTimeMs).toBeGreaterThanOrEqual(busy.wallTimeMs + timer.wallTimeMs);
    // Observers heard of the stored entries and the run's cost.
    expect(stored.filter((t) => t === "attempt_completed")).toHaveLength(2);
    expect(stored).toContain("workflow_completed");
    expect(ran).toEqual([[expect.any(Number), row.wallTimeMs]]);
    expect(ran[0]![0]).toBeCloseTo(row.cpuTimeMs!, 1);
    // Every segment the run opened is closed again.
    expect(cpuMeter.openSegments).toBe(0);
  });

  it("marks an attempt over limits.cpu_ms, and adds up the runs of a parked instance", async () => {
    const { runtime, store, done, ran } = await setup(
      async (_e, step) => {
        await step.do("busy", async () => spin(60) > 0);
        await step.sleep("nap", 30);
        await step.do("quick", async () => 1);
        return "ok";
      },
      { cpuLimitMs: 20, hotWaitThreshold: 5 },
    );
    const id = await runtime.create("w");
    await done(id);
    const history = await store.history.list("w", id);
    expect(attemptEnd(history, "busy").cpuLimitExceeded).toBe(true);
    expect(attemptEnd(history, "quick").cpuLimitExceeded).toBeUndefined();
    // Two runs (the sleep parked the first): the stored totals are their sums.
    expect(ran).toHaveLength(2);
    const row = (await store.instances.get("w", id))!;
    expect(row.wallTimeMs).toBe(ran[0]![1]! + ran[1]![1]!);
    expect(row.cpuTimeMs).toBeCloseTo(ran[0]![0]! + ran[1]![0]!, 1);
    expect(cpuMeter.openSegments).toBe(0);
  });

  it("tells observers of a store failure a run could not hand to user code", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-metrics-"));
    dirs.push(dir);
    const store = await openSqliteStore({ path: join(dir, "cairn.db") });
    class Napper extends WorkflowEntrypoint {
      override async run(_e: WorkflowEvent, step: WorkflowStep) {
        await step.sleep("nap", 100);
      }
    }
    let storeErrors = 0;
    const logged: string[] = [];
    const runtime = new Runtime({
      store,
      workflows: [{ name: "w", class: Napper }],
      telemetry: [{ storeError: () => storeErrors++ }],
      log: (message) => logged.push(message),
    });
    await runtime.start();
    const id = await runtime.create("w");
    await new Promise((r) => setTimeout(r, 30));
    // The sleep's end cannot be stored: the store is closed under the run.
    await store.close();
    for (let i = 0; i < 200 && storeErrors === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(logged).toContain(`Cairn could not store progress of instance ${id}`);
    expect(storeErrors).toBe(1);
    await runtime.close();
  });

  it("refuses a CPU limit that is not a positive number", async () => {
    const store = await openSqliteStore({ path: ":memory:" });
    try {
      expect(() => new Runtime({ store, workflows: [], cpuLimitMs: 0 })).toThrow(
        "cpuLimitMs must be a number > 0, got 0",
      );
    } finally {
      await store.close();
    }
  });
});

describe("OpenTelemetry traces (SPEC §12.4)", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  beforeAll(() => {
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(async () => {
    trace.disable();
    await provider.shutdown();
  });

  it("one workflow.run per drive and one workflow.step per attempt, all in the instance's trace; no output", async () => {
    exporter.reset();
    let failed = false;
    const { runtime, done } = await setup(
      async (_e, step) => {
        await step.do("load", { retries: { limit: 1, delay: 0 } }, async () => {
          if (!failed) {
            failed = true;
            throw new Error("first try fails");
          }
          return "loaded";
        });
        await step.sleep("nap", 30);
        await step.do("secret", { sensitive: "output" }, async () => "hunter2-secret");
        return "done";
      },
      { hotWaitThreshold: 5 },
    );
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const id = await runtime.create("w", { params: { card: "4242" } }, { traceparent });
    await done(id);
    const spans = exporter.getFinishedSpans();
    const runs = spans.filter((s) => s.name === "workflow.run");
    const steps = spans.filter((s) => s.name === "workflow.step");
    // The sleep parked the first run: two drives, three attempts (load twice, secret once).
    expect(runs.map((s) => s.attributes["cairn.run.reason"])).toEqual(["start", "wake-up"]);
    expect(
      steps.map((s) => [
        s.attributes["cairn.step.name"],
        s.attributes["cairn.step.attempt"],
        s.attributes["cairn.step.outcome"],
      ]),
    ).toEqual([
      ["load", 1, "error"],
      ["load", 2, "ok"],
      ["secret", 1, "ok"],
    ]);
    for (const s of spans) expect(s.spanContext().traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    for (const r of runs) {
      expect(r.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
      expect(r.attributes["cairn.workflow.name"]).toBe("w");
      expect(r.attributes["cairn.instance.id"]).toBe(id);
    }
    // The wake-up returned `load`'s stored value; the sleep it woke from was not finished yet.
    expect(runs[1]!.attributes["cairn.run.replayed_steps"]).toBe(1);
    expect(steps[0]!.parentSpanContext?.spanId).toBe(runs[0]!.spanContext().spanId);
    expect(steps[2]!.parentSpanContext?.spanId).toBe(runs[1]!.spanContext().spanId);
    expect(steps[0]!.events.map((e) => e.name)).toEqual(["exception"]);
    expect(steps[0]!.status.code).toBe(2);
    expect(runs[0]!.events.map((e) => [e.name, e.attributes?.["cairn.step.name"]])).toEqual([
      ["sleep", "nap"],
    ]);
    // Outputs never appear in spans, sensitive or not.
    const text = JSON.stringify(spans.map((s) => [s.attributes, s.events, s.status]));
    expect(text).not.toContain("hunter2-secret");
    expect(text).not.toContain("loaded");
    expect(text).toContain("first try fails");
  });

  it("an instance created without a traceparent still has one trace, and an errored run has status ERROR", async () => {
    exporter.reset();
    const { runtime, done } = await setup(
      async (_e, step) => {
        await step.sleep("nap", 30);
        throw new Error("boom");
      },
      { hotWaitThreshold: 5 },
    );
    const id = await runtime.create("w");
    await done(id);
    const runs = exporter.getFinishedSpans().filter((s) => s.name === "workflow.run");
    expect(runs).toHaveLength(2);
    expect(new Set(runs.map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(runs.map((s) => s.status.code)).toEqual([0, 2]);
    expect(runs[1]!.attributes["cairn.run.outcome"]).toBe("errored");
  });
});
