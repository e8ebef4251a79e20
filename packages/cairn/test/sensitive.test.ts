import { API_PREFIX } from "@cairn/api";
import { createApi } from "@cairn/server";
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { createTestCairn, introspectWorkflowInstance } from "cairnjs/testing";
import { describe, expect, test } from "vitest";
import { setup } from "./support.ts";

/** Sensitive step outputs, SPEC §9.2. */
class Secretive extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    const token = await step.do("token", { sensitive: "output" }, async (ctx) => ({
      token: "s3cret",
      sensitive: ctx.config.sensitive,
    }));
    const used = await step.do("use", async () => `used ${token.token} (${token.sensitive})`);
    await step.sleep("nap", "1 hour");
    await step.do("leak", { sensitive: "output", retries: { limit: 0, delay: 1 } }, async () => {
      throw new Error(`failed with ${used}`);
    });
  }
}

describe("sensitive outputs", () => {
  test("REST and testing show [REDACTED]; the workflow gets the real value, also on replay; errors are shown", async () => {
    const t = await setup(Secretive, { hotWaitThreshold: "1 second" });
    const app = createApi({ runtime: t.cairn.runtime, pollMs: 0 });
    const get = async (path: string) =>
      ((await (await app.request(`${API_PREFIX}/workflows/w/instances/a${path}`)).json()) as any).result;
    await t.W.create({ id: "a" });
    await t.idle();
    const detail = await get("");
    expect(detail.status).toBe("waiting"); // parked on the sleep: the next run replays the steps
    expect(detail.steps[0]).toMatchObject({ name: "token", output: "[REDACTED]" });
    expect(detail.steps[1]).toMatchObject({ name: "use", output: "used s3cret (output)" });
    expect((await get("/step?name=token-1")).output).toBe("[REDACTED]");
    await t.advance(3_600_000);
    const end = await get("");
    expect(end.status).toBe("errored");
    // The replayed run handed the stored (real) value to the next step: the error shows it, unredacted.
    expect(end.error).toMatchObject({ message: "failed with used s3cret (output)" });
    const leak = end.steps.find((s: any) => s.name === "leak");
    expect(leak.error).toMatchObject({ message: "failed with used s3cret (output)" });
    await t.cairn.close();
  });

  test("waitForStepResult of cairnjs/testing shows [REDACTED]", async () => {
    await using cairn = await createTestCairn({
      workflows: [{ binding: "WF", name: "wf", class: Secretive }],
    });
    await using instance = await introspectWorkflowInstance(cairn.env.WF, "s1");
    await cairn.env.WF.create({ id: "s1" });
    expect(await instance.waitForStepResult({ name: "token" })).toBe("[REDACTED]");
    expect(await instance.waitForStepResult({ name: "use" })).toBe("used s3cret (output)");
  });
});
