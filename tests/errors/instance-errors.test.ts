/**
 * An errored instance keeps its error's stack, trimmed to the workflow's own frames, and where it
 * happened (a step, or run() outside any step): stored in a real SQLite file, shown by the API
 * and by `cairn workflows instances describe`; `status()` stays `{ name, message }` as on Cloudflare.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeInstance } from "@cairn/cli";
import { createApi } from "@cairn/server";
import { createCairn, NonRetryableError, WorkflowEntrypoint, type WorkflowStep } from "cairnjs";
import { afterEach, describe, expect, it } from "vitest";

function chargeCard(): never {
  throw new NonRetryableError("card declined");
}

class FailsInStep extends WorkflowEntrypoint {
  async run(_event: unknown, step: WorkflowStep) {
    await step.do("load", async () => 1);
    await step.do("charge card", async () => chargeCard());
  }
}

class FailsInRun extends WorkflowEntrypoint {
  async run(_event: unknown, step: WorkflowStep) {
    await step.do("load", async () => 1);
    throw new TypeError("bad order");
  }
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function errored(workflow: "in-step" | "in-run") {
  const dir = mkdtempSync(join(tmpdir(), "cairn-errors-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const cairn = await createCairn({
    store: join(dir, "cairn.db"),
    workflows: [
      { binding: "IN_STEP", name: "in-step", class: FailsInStep },
      { binding: "IN_RUN", name: "in-run", class: FailsInRun },
    ],
  });
  cleanup.push(() => cairn.close());
  const binding = (workflow === "in-step" ? cairn.env.IN_STEP : cairn.env.IN_RUN) as any;
  const instance = await binding.create({ id: "i-1" });
  for (;;) {
    const s = await instance.status();
    if (s.status === "errored") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const app = createApi({ runtime: cairn.runtime });
  const detail = ((await (await app.request(`/api/v1/workflows/${workflow}/instances/i-1`)).json()) as any)
    .result;
  return { cairn, instance, detail };
}

describe("errored instances", () => {
  it("keep the stack of a step's error (user frames only) and the step it happened in", async () => {
    const { instance, detail } = await errored("in-step");
    expect(await instance.status()).toEqual({
      status: "errored",
      error: { name: "NonRetryableError", message: "card declined" },
    });
    expect(detail.error).toMatchObject({
      name: "NonRetryableError",
      message: "card declined",
      where: "step",
      step: { type: "step", name: "charge card", count: 1 },
    });
    const stack: string = detail.error.stack;
    expect(stack.split("\n")[0]).toBe("NonRetryableError: card declined");
    expect(stack).toMatch(/at chargeCard \(.*tests\/errors\/instance-errors\.test\.ts:\d+:\d+\)/);
    expect(stack).not.toMatch(/packages\/runtime|node_modules|node:internal/);

    const text = describeInstance(detail, { width: 100, utc: true, now: Date.now() });
    expect(text).toMatch(/Error In: +step "charge card" \(charge card-1\)/);
    expect(text).toMatch(/Error Stack: +at chargeCard \(/);
  });

  it("say run() when the error was thrown outside any step", async () => {
    const { detail } = await errored("in-run");
    expect(detail.error).toMatchObject({ name: "TypeError", message: "bad order", where: "run" });
    expect(detail.error.step).toBeUndefined();
    expect(detail.error.stack).toMatch(/at FailsInRun\.run \(.*instance-errors\.test\.ts:\d+:\d+\)/);
    expect(describeInstance(detail, { width: 100, utc: true, now: Date.now() })).toMatch(
      /Error In: +run\(\) outside any step/,
    );
  });
});
