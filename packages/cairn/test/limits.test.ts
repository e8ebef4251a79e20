import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { describe, expect, test } from "vitest";
import { expectCode, setup } from "./support.ts";

describe("limits", () => {
  class ManySteps extends WorkflowEntrypoint {
    async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
      for (let i = 0; i < event.payload.n; i++) await step.do(`s${i}`, async () => i);
      await step.sleep("sleeps do not count", 1);
      return event.payload.n;
    }
  }

  test("exactly the step limit passes; one more fails the instance with step.limit_reached", async () => {
    const t = await setup(ManySteps, { stepLimit: 25 });
    const ok = await t.W.create({ id: "ok", params: { n: 25 } });
    const over = await t.W.create({ id: "over", params: { n: 26 } });
    await t.advance(10);
    expect(await ok.status()).toEqual({ status: "complete", output: 25 });
    const s = await over.status();
    expect(s.status).toBe("errored");
    expect(s.error?.message).toMatch(/^\(step\.limit_reached\) The limit of 25 steps has been reached/);
    expect(await t.cairn.store.steps.list("w", "over")).toHaveLength(25);
    await t.cairn.close();
  });

  test("the default step limit is 10,000", async () => {
    const t = await setup(ManySteps);
    const inst = await t.W.create({ id: "big", params: { n: 10_001 } });
    await t.advance(10);
    expect((await inst.status()).error?.message).toMatch(/limit of 10000 steps/);
    await t.cairn.close();
  });

  test("a step result over 1 MiB fails the attempt with step.output_too_large (and is retried)", async () => {
    const attempts: number[] = [];
    class Big extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        return step.do("big", { retries: { limit: 1, delay: 0 } }, async (ctx) => {
          attempts.push(ctx.attempt);
          return "x".repeat(1024 * 1024 + 10);
        });
      }
    }
    const t = await setup(Big);
    const inst = await t.W.create({ id: "b" });
    await t.idle();
    expect(attempts).toEqual([1, 2]);
    const s = await inst.status();
    expect(s.status).toBe("errored");
    expect(s.error?.message).toMatch(/^\(step\.output_too_large\) Step big-1 output is too large/);
    await t.cairn.close();
  });

  test("a result just under 1 MiB is stored", async () => {
    class Fits extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const v = await step.do("fits", async () => new Uint8Array(1024 * 1024 - 100));
        return v.byteLength;
      }
    }
    const t = await setup(Fits);
    const inst = await t.W.create({ id: "f" });
    await t.idle();
    expect(await inst.status()).toEqual({ status: "complete", output: 1024 * 1024 - 100 });
    await t.cairn.close();
  });

  test("an unserialisable step result fails the instance naming the step", async () => {
    class Fn extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("returns a function", async () => ({ f: () => 1 }));
        return "unreachable";
      }
    }
    const t = await setup(Fn);
    const inst = await t.W.create({ id: "f" });
    await t.idle();
    const s = await inst.status();
    expect(s.status).toBe("errored");
    expect(s.error?.name).toBe("WorkflowFatalError");
    expect(s.error?.message).toContain(
      'the step "returns a function" returned a value which is not serialisable',
    );
    await t.cairn.close();
  });

  test("invalid ids, params and batch sizes are rejected with their codes and store nothing", async () => {
    class Noop extends WorkflowEntrypoint {
      async run() {}
    }
    const t = await setup(Noop);
    for (const id of ["", "-leading-dash", "has space", "dot.ted", "x".repeat(101), 42])
      await expectCode(t.W.create({ id: id as string }), "instance.invalid_id");
    await t.W.create({ id: "x".repeat(100) });
    await expectCode(t.W.create({ params: "x".repeat(1024 * 1024 + 1) }), "payload.too_large");
    await expectCode(t.W.create({ params: { f: () => 1 } }), "body");
    await expectCode(t.W.createBatch([]), "body");
    await expectCode(t.W.createBatch(Array.from({ length: 101 }, (_, i) => ({ id: `i${i}` }))), "body");
    await expectCode(t.W.createBatch([{ id: "fine" }, { id: "not fine" }]), "instance.invalid_id");
    await expectCode(t.W.get("bad id"), "instance.invalid_id");
    const page = await t.cairn.store.instances.list({ workflow: "w", limit: 10 });
    expect(page.items.map((i) => i.id)).toEqual(["x".repeat(100)]);
    await t.cairn.close();
  });

  test("invalid step names, durations and configs are rejected with their codes", async () => {
    const codes: Record<string, string> = {};
    class Bad extends WorkflowEntrypoint {
      async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
        const attempt = async (label: string, p: () => Promise<unknown>) => {
          try {
            await p();
            codes[label] = "ok";
          } catch (e) {
            codes[label] = (e as { code?: string }).code ?? (e as Error).message;
          }
        };
        const s = step as any;
        await attempt("empty name", () => s.do("", async () => 1));
        await attempt("long name", () => s.do("n".repeat(257), async () => 1));
        await attempt("control char", () => s.do("a\u0001b", async () => 1));
        await attempt("256 chars", () => s.do("n".repeat(256), async () => 1));
        await attempt("no callback", () => s.do("x"));
        await attempt("unknown key", () => s.do("x1", { retry: 3 }, async () => 1));
        await attempt("bad limit", () => s.do("x2", { retries: { limit: -1, delay: 1 } }, async () => 1));
        await attempt("huge limit", () =>
          s.do("x3", { retries: { limit: 10_001, delay: 1 } }, async () => 1),
        );
        await attempt("bad delay", () => s.do("x4", { retries: { limit: 1, delay: "soon" } }, async () => 1));
        await attempt("bad backoff", () =>
          s.do("x5", { retries: { limit: 1, delay: 1, backoff: "random" } }, async () => 1),
        );
        await attempt("zero timeout", () => s.do("x6", { timeout: 0 }, async () => 1));
        await attempt("bad sensitive", () => s.do("x7", { sensitive: "all" }, async () => 1));
        await attempt("good config", () =>
          s.do(
            "x8",
            { retries: { limit: 0, delay: 0 }, timeout: "1 minute", sensitive: "output" },
            async () => 1,
          ),
        );
        await attempt("bad sleep", () => s.sleep("z1", "forever"));
        await attempt("negative sleep", () => s.sleep("z2", -5));
        await attempt("too long sleep", () => s.sleep("z3", "366 days"));
        await attempt("bad sleepUntil", () => s.sleepUntil("z4", "tomorrow"));
        await attempt("plural units", () => s.sleep("z5", "2 minutes"));
        return codes;
      }
    }
    const t = await setup(Bad);
    const inst = await t.W.create({ id: "b" });
    await t.advance(200_000);
    expect((await inst.status()).output).toEqual({
      "empty name": "step.invalid_name",
      "long name": "step.invalid_name",
      "control char": "step.invalid_name",
      "256 chars": "ok",
      "no callback": "step.invalid_config",
      "unknown key": "step.invalid_config",
      "bad limit": "step.invalid_config",
      "huge limit": "step.invalid_config",
      "bad delay": "step.invalid_config",
      "bad backoff": "step.invalid_config",
      "zero timeout": "step.invalid_config",
      "bad sensitive": "step.invalid_config",
      "good config": "ok",
      "bad sleep": "step.invalid_config",
      "negative sleep": "step.invalid_config",
      "too long sleep": "step.invalid_config",
      "bad sleepUntil": "step.invalid_config",
      "plural units": "ok",
    });
    await t.cairn.close();
  });

  test("createCairn rejects bad workflow definitions clearly", async () => {
    class Noop extends WorkflowEntrypoint {
      async run() {}
    }
    await expect(
      createCairn({ store: ":memory:", workflows: [{ binding: "A", name: "bad name", class: Noop }] }),
    ).rejects.toThrow(/workflow\.invalid_name/);
    await expect(
      createCairn({
        store: ":memory:",
        workflows: [
          { binding: "A", name: "a", class: Noop },
          { binding: "A", name: "b", class: Noop },
        ],
      }),
    ).rejects.toThrow(/binding "A" is used twice/);
    await expect(
      createCairn({
        store: ":memory:",
        workflows: [{ binding: "A", name: "a", class: Noop }],
        maxConcurrent: 0,
      }),
    ).rejects.toThrow(/maxConcurrent/);
  });
});

describe("concurrency", () => {
  test("with maxConcurrent 2 a third instance stays queued until one finishes", async () => {
    const gates = new Map<string, () => void>();
    class Blocks extends WorkflowEntrypoint {
      async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
        await step.do("block", () => new Promise<void>((r) => gates.set(event.instanceId, r)));
        return event.instanceId;
      }
    }
    const t = await setup(Blocks, { maxConcurrent: 2 });
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((id) => t.W.create({ id })));
    await t.idle();
    expect(await Promise.all([a!, b!, c!].map(async (i) => (await i.status()).status))).toEqual([
      "running",
      "running",
      "queued",
    ]);
    expect(await t.cairn.store.queue.countRunning()).toBe(2);
    gates.get("a")!();
    await t.idle();
    expect((await a!.status()).status).toBe("complete");
    expect((await c!.status()).status).toBe("running");
    gates.get("b")!();
    gates.get("c")!();
    await t.idle();
    expect((await c!.status()).status).toBe("complete");
    await t.cairn.close();
  });

  test("waiting instances do not count, and a waking instance goes before newly queued ones", async () => {
    const order: string[] = [];
    const gates = new Map<string, () => void>();
    class SleepThenBlock extends WorkflowEntrypoint {
      async run(event: WorkflowEvent<{ sleep: boolean }>, step: WorkflowStep) {
        if (event.payload.sleep) await step.sleep("nap", "1 hour");
        await step.do("work", { timeout: "1 day" }, () => {
          order.push(event.instanceId);
          return new Promise<void>((r) => gates.set(event.instanceId, r));
        });
      }
    }
    const t = await setup(SleepThenBlock, { maxConcurrent: 2 });
    await t.W.create({ id: "sleeper1", params: { sleep: true } });
    await t.W.create({ id: "sleeper2", params: { sleep: true } });
    await t.idle();
    // both sleep: neither holds a slot, so two more run
    await t.W.create({ id: "busy1", params: { sleep: false } });
    await t.W.create({ id: "busy2", params: { sleep: false } });
    await t.idle();
    expect(order).toEqual(["busy1", "busy2"]);
    await t.W.create({ id: "late", params: { sleep: false } });
    await t.advance(3_600_000);
    expect(order).toEqual(["busy1", "busy2"]); // slots full: the sleepers are due but wait
    gates.get("busy1")!();
    await t.idle();
    gates.get("busy2")!();
    await t.idle();
    expect(order.slice(2, 4).sort()).toEqual(["sleeper1", "sleeper2"]); // woken before "late"
    gates.get("sleeper1")!();
    await t.idle();
    expect(order[4]).toBe("late");
    await t.cairn.close();
  });
});

describe("the SQLite page cache", () => {
  test("createCairn passes sqliteCacheMiB to the SQLite store; a bad one is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-cache-"));
    try {
      const cairn = await createCairn({ store: join(dir, "cairn.db"), sqliteCacheMiB: 48, workflows: [] });
      const db = (cairn.store as unknown as { db: { prepare(sql: string): { get(): unknown } } }).db;
      expect(db.prepare("PRAGMA cache_size").get()).toEqual({ cache_size: -48 * 1024 });
      await cairn.close();
      await expect(
        createCairn({ store: join(dir, "other.db"), sqliteCacheMiB: 0, workflows: [] }),
      ).rejects.toThrow(/cacheSizeMiB must be a whole number of MiB from 1 to 4096, got 0/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
