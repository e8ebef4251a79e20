import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeClock, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { introspectWorkflowInstance } from "./introspect.ts";
import { createTestCairn } from "./test-cairn.ts";

type Params = { delays?: unknown[]; throwIn?: boolean; stepLimit?: number };

const attemptsAt: number[] = [];
/** The test Cairn's clock, which attempts record. */
let now = () => Date.now();
const seenConfigs: unknown[] = [];
const delayCalls: { attempt: number; error: string }[] = [];

/** A step failing its first three attempts, with a delay function returning `delays` in turn. */
class Flaky extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<Params>, step: WorkflowStep) {
    const delays = event.payload.delays ?? [];
    return step.do(
      "flaky",
      {
        retries: {
          limit: 5,
          backoff: "constant",
          delay: async ({ ctx, error }) => {
            delayCalls.push({ attempt: ctx.attempt, error: error.message });
            if (event.payload.throwIn) throw new Error("no delay today");
            return delays[ctx.attempt - 1] as number;
          },
        },
      },
      async (ctx) => {
        attemptsAt.push(now());
        seenConfigs.push(ctx.config.retries);
        if (ctx.attempt <= 3) throw new Error(`attempt ${ctx.attempt} failed`);
        return ctx.attempt;
      },
    );
  }
}

class Many extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<Params>, step: WorkflowStep) {
    for (let i = 0; i < 5; i++) await step.do(`s${i}`, async () => i);
    return "done";
  }
}

describe("dynamic retries.delay (SPEC §9.3)", () => {
  it("waits what the delay function says before each retry, on the fake clock", async () => {
    attemptsAt.length = 0;
    seenConfigs.length = 0;
    delayCalls.length = 0;
    await using cairn = await createTestCairn({
      workflows: [{ binding: "FLAKY", name: "flaky", class: Flaky }],
      autoAdvance: false,
    });
    now = () => cairn.clock.now();
    const times: number[] = [];
    const t0 = cairn.clock.now();
    await cairn.env.FLAKY.create({ id: "d", params: { delays: ["1 minute", 5000, "2 hours"] } });
    await cairn.runUntilIdle();
    // After attempt 1 fails: 1 minute.
    const step = async () => (await cairn.store.steps.list("flaky", "d"))[0]!;
    expect((await step()).wakeAt).toBe(t0 + 60_000);
    expect((await step()).config?.retries.delay).toBe("[dynamic]");
    await cairn.advanceTime("1 minute");
    expect((await step()).wakeAt).toBe(t0 + 65_000);
    await cairn.advanceTime(5000);
    expect((await step()).wakeAt).toBe(t0 + 65_000 + 2 * 3_600_000);
    await cairn.advanceTime("1 hour");
    expect((await cairn.env.FLAKY.get("d").then((i) => i.status())).status).toBe("waiting");
    await cairn.advanceTime("1 hour");
    expect(await (await cairn.env.FLAKY.get("d")).status()).toMatchObject({ status: "complete", output: 4 });
    times.push(...attemptsAt);
    expect(times.map((t) => t - t0)).toEqual([0, 60_000, 65_000, 65_000 + 7_200_000]);
    expect(delayCalls).toEqual([
      { attempt: 1, error: "attempt 1 failed" },
      { attempt: 2, error: "attempt 2 failed" },
      { attempt: 3, error: "attempt 3 failed" },
    ]);
    // The callback's config has no delay.
    expect(seenConfigs[0]).toEqual({ limit: 5, backoff: "constant" });
  });

  it.each([
    [{ throwIn: true }, 'The delay function for step "flaky-1" threw: no delay today'],
    [{ delays: [-5] }, 'The delay function for step "flaky-1" returned -5, not a duration of 0 ms or more'],
    [{ delays: [{ ms: 5 }] }, 'The delay function for step "flaky-1" returned object, not a duration'],
    [{ delays: ["soon"] }, 'The delay function for step "flaky-1" returned an invalid duration: '],
  ])("a delay function that fails (%j) fails the step at once, not retried", async (params, message) => {
    attemptsAt.length = 0;
    await using cairn = await createTestCairn({
      workflows: [{ binding: "FLAKY", name: "flaky", class: Flaky }],
    });
    await using instance = await introspectWorkflowInstance(cairn.env.FLAKY, "x");
    await cairn.env.FLAKY.create({ id: "x", params });
    await instance.waitForStatus("errored");
    const error = await instance.getError();
    expect(error.name).toBe("NonRetryableDelayError");
    expect(error.message.startsWith(message)).toBe(true);
    expect(attemptsAt).toHaveLength(1);
  });
});

describe("workflows[].limits.steps (SPEC §9.3)", () => {
  it("a workflow's own step limit ends its instances with step.limit_reached", async () => {
    await using cairn = await createTestCairn({
      workflows: [
        { binding: "MANY", name: "many", class: Many, stepLimit: 3 },
        { binding: "OTHER", name: "other", class: Many },
      ],
    });
    await using limited = await introspectWorkflowInstance(cairn.env.MANY, "m");
    await using free = await introspectWorkflowInstance(cairn.env.OTHER, "o");
    await cairn.env.MANY.create({ id: "m" });
    await cairn.env.OTHER.create({ id: "o" });
    await limited.waitForStatus("errored");
    expect((await limited.getError()).message).toBe(
      "(step.limit_reached) The limit of 3 steps has been reached. Raise the workflow's limits.steps to allow more.",
    );
    await free.waitForStatus("complete");
    await expect(
      createTestCairn({ workflows: [{ binding: "MANY", name: "many", class: Many, stepLimit: 30_000 }] }),
    ).rejects.toThrow('Workflow "many": limits.steps must be a whole number from 1 to 25000, got 30000');
  });
});

describe("create({ locationHint }) and createRatePerSecond (SPEC §9.3)", () => {
  it("accepts a region as locationHint and refuses anything else", async () => {
    await using cairn = await createTestCairn({
      workflows: [{ binding: "MANY", name: "many", class: Many }],
    });
    const instance = await cairn.env.MANY.create({ id: "near", locationHint: "weur" });
    expect(instance.id).toBe("near");
    await expect(cairn.env.MANY.create({ locationHint: "mars" as never })).rejects.toThrow(
      '(body) locationHint must be one of wnam, enam, sam, weur, eeur, apac, oc, afr, me, got "mars"',
    );
    await expect(cairn.env.MANY.createBatch([{ locationHint: "moon" as never }])).rejects.toThrow(
      "locationHint must be one of",
    );
  });

  it("refuses creates beyond createRatePerSecond with instance.rate_limited until time passes", async () => {
    await using cairn = await createTestCairn({
      workflows: [
        { binding: "MANY", name: "many", class: Many },
        { binding: "OTHER", name: "other", class: Many },
      ],
      createRatePerSecond: 2,
      autoAdvance: false,
    });
    await cairn.env.MANY.create();
    await cairn.env.MANY.create();
    const refused = await cairn.env.MANY.create().catch((e: unknown) => e);
    expect((refused as Error).message).toBe(
      '(instance.rate_limited) Too many instances created for workflow "many": the limit is 2 per second (createRatePerSecond)',
    );
    await expect(cairn.env.MANY.createBatch([{}, {}])).rejects.toThrow("(instance.rate_limited)");
    // Each workflow has its own bucket.
    await cairn.env.OTHER.create();
    await cairn.advanceTime(500);
    await cairn.env.MANY.create();
    await expect(cairn.env.MANY.create()).rejects.toThrow("(instance.rate_limited)");
    await cairn.advanceTime(1000);
    expect(await cairn.env.MANY.createBatch([{}, {}])).toHaveLength(2);
    const page = await cairn.store.instances.list({ workflow: "many", limit: 10 });
    expect(page.items).toHaveLength(5);
  });
});

describe("ReadableStream step results (SPEC §9.3)", () => {
  const MiB = 1024 * 1024;
  const pattern = (i: number) => (i * 31 + 7) & 0xff;
  let blobRuns = 0;
  const checked: { bytes: number; ok: boolean; chunks: number }[] = [];

  /** Returns 3 MiB as a stream (64 KiB chunks), sleeps, then reads the stream the first step gave. */
  class Blob extends WorkflowEntrypoint {
    async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
      const stream = (await step.do("blob", async () => {
        blobRuns++;
        let sent = 0;
        return new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent >= 3 * MiB) return c.close();
            const chunk = new Uint8Array(64 * 1024);
            for (let i = 0; i < chunk.length; i++) chunk[i] = pattern(sent + i);
            sent += chunk.length;
            c.enqueue(chunk);
          },
        });
      })) as unknown as ReadableStream<Uint8Array>;
      await step.sleep("later", "1 hour");
      let bytes = 0;
      let ok = true;
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        for (let i = 0; i < chunk.length; i++) if (chunk[i] !== pattern(bytes + i)) ok = false;
        bytes += chunk.length;
      }
      checked.push({ bytes, ok, chunks });
      return bytes;
    }
  }

  it("a 3 MiB stream result round-trips after a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-stream-"));
    try {
      const store = join(dir, "cairn.db");
      const clock = new FakeClock();
      const workflows = [{ binding: "BLOB", name: "blob", class: Blob }];
      {
        await using cairn = await createTestCairn({ store, clock, workflows, autoAdvance: false });
        await cairn.env.BLOB.create({ id: "b" });
        await cairn.runUntilIdle();
        const [row] = await cairn.store.steps.list("blob", "b");
        expect(row?.status).toBe("succeeded");
        // 12 chunk rows of 256 KiB; the step's result only stands for them.
        expect(row!.result!.byteLength).toBeLessThan(64);
        expect(await cairn.store.steps.chunk("blob", "b", row!, 11)).toHaveLength(256 * 1024);
        expect(await cairn.store.steps.chunk("blob", "b", row!, 12)).toBeUndefined();
      }
      await using cairn = await createTestCairn({ store, clock, workflows, autoAdvance: false });
      await cairn.advanceTime("1 hour");
      await cairn.runUntilIdle();
      expect(await (await cairn.env.BLOB.get("b")).status()).toMatchObject({
        status: "complete",
        output: 3 * MiB,
      });
      expect(blobRuns).toBe(1);
      // Read back from the store in 256 KiB chunks, every byte as written.
      expect(checked).toEqual([{ bytes: 3 * MiB, ok: true, chunks: 12 }]);
      // The testing helpers read it from the chunk rows too.
      await using instance = await introspectWorkflowInstance(cairn.env.BLOB, "b");
      const result = (await instance.waitForStepResult({ name: "blob" })) as ReadableStream<Uint8Array>;
      let n = 0;
      let same = true;
      for await (const chunk of result) {
        for (let i = 0; i < chunk.length; i++) if (chunk[i] !== pattern(n + i)) same = false;
        n += chunk.length;
      }
      expect({ n, same }).toEqual({ n: 3 * MiB, same: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [
      "a chunk of the wrong type",
      () =>
        new ReadableStream({
          start(c) {
            c.enqueue("text");
            c.close();
          },
        }),
      "UnsupportedStreamChunkError",
      'The step "s" returned a ReadableStream with a chunk of type string; chunks must be ArrayBuffers or TypedArrays',
    ],
    [
      "a chunk of 16 MiB",
      () =>
        new ReadableStream({
          start(c) {
            c.enqueue(new Uint8Array(16 * MiB));
            c.close();
          },
        }),
      "OversizedStreamChunkError",
      'The step "s" returned a ReadableStream with a chunk of 16777216 bytes; each chunk must be smaller than 16 MiB',
    ],
    [
      "a locked stream",
      () => {
        const s = new ReadableStream();
        s.getReader();
        return s;
      },
      "InvalidStepReadableStreamError",
      'The step "s" returned a ReadableStream that is locked; return a fresh, unlocked stream',
    ],
  ])("%s fails the instance with its error, storing no result", async (_what, make, name, message) => {
    class Bad extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("s", async () => make() as never);
      }
    }
    await using cairn = await createTestCairn({ workflows: [{ binding: "BAD", name: "bad", class: Bad }] });
    await using instance = await introspectWorkflowInstance(cairn.env.BAD, "x");
    await cairn.env.BAD.create({ id: "x" });
    await instance.waitForStatus("errored");
    expect(await instance.getError()).toEqual({ name, message });
    const steps = await cairn.store.steps.list("bad", "x");
    expect(steps.every((s) => s.result === null)).toBe(true);
  });
});

describe("instance.subscribe({ filter?, cursor? }) (SPEC §9.3)", () => {
  class Steps extends WorkflowEntrypoint {
    async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
      const secret = await step.do("secret", { sensitive: "output" }, async () => "s3cret");
      await step.sleep("nap", "1 hour");
      const b = await step.do("b", async () => event.payload.n * 2);
      return { b, secretLength: secret.length };
    }
  }

  const collect = async (it: AsyncIterable<{ type: string }>) => {
    const out: any[] = [];
    for await (const e of it) out.push(e);
    return out;
  };

  it("yields the history then live events, ends after the final one, with filter and cursor", async () => {
    await using cairn = await createTestCairn({
      workflows: [{ binding: "STEPS", name: "steps", class: Steps }],
      autoAdvance: false,
    });
    const instance = await cairn.env.STEPS.create({ id: "s", params: { n: 21 } });
    await cairn.runUntilIdle();
    const all = collect(instance.subscribe());
    const completed = collect(instance.subscribe({ filter: ["step_completed", "workflow_completed"] }));
    await cairn.advanceTime("1 hour");
    const events = await all;
    expect(events.map((e) => e.type)).toEqual([
      "workflow_queued",
      "workflow_started",
      "workflow_running",
      "step_started",
      "attempt_started",
      "attempt_completed",
      "step_completed",
      "sleep_started",
      "workflow_waiting",
      "workflow_running",
      "sleep_completed",
      "step_started",
      "attempt_started",
      "attempt_completed",
      "step_completed",
      "workflow_completed",
    ]);
    expect(events.at(-1)).toMatchObject({ type: "workflow_completed", output: { b: 42, secretLength: 6 } });
    expect(events.find((e) => e.type === "workflow_started")?.params).toEqual({ n: 21 });
    const done = await completed;
    expect(done.map((e) => [e.type, e.stepName, e.output])).toEqual([
      ["step_completed", "secret-1", "[REDACTED]"],
      ["step_completed", "b-1", 42],
      ["workflow_completed", undefined, { b: 42, secretLength: 6 }],
    ]);
    // Resuming after an event gives only what followed it; after the final one, nothing.
    const middle = events.findIndex((e) => e.type === "sleep_completed");
    const rest = await collect(instance.subscribe({ cursor: events[middle].eventId }));
    expect(rest.map((e) => e.eventId)).toEqual(events.slice(middle + 1).map((e) => e.eventId));
    expect(await collect(instance.subscribe({ cursor: events.at(-1).eventId }))).toEqual([]);
    expect(() => instance.subscribe({ cursor: -1 })).toThrow("cursor must be an eventId");
    expect(() => instance.subscribe({ filter: "step_completed" as never })).toThrow(
      "filter must be a list of event types or a function",
    );
  });

  it("can be disposed while it waits", async () => {
    await using cairn = await createTestCairn({
      workflows: [{ binding: "STEPS", name: "steps", class: Steps }],
      autoAdvance: false,
    });
    const instance = await cairn.env.STEPS.create({ id: "w", params: { n: 1 } });
    await cairn.runUntilIdle();
    const seen: string[] = [];
    {
      await using events = instance.subscribe({ filter: (e) => e.type === "sleep_started" });
      for await (const e of events) {
        seen.push(e.type);
        break;
      }
    }
    const waiting = instance.subscribe();
    const first = await waiting.next();
    expect(first.value.type).toBe("workflow_queued");
    await waiting[Symbol.asyncDispose]();
    expect(await waiting.next()).toEqual({ done: true, value: undefined });
    expect(seen).toEqual(["sleep_started"]);
  });
});
