import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCairn } from "cairnjs";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "./helpers.ts";
import { reports, TaskAgent, TaskWorkflow } from "./workflow-agents.ts";

// Mirrors upstream's workflow.test.ts, workflow-integration.test.ts and workflow-error-reporting.test.ts.

const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  reports.length = 0;
});

async function cairn() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-agents-wf-"));
  dirs.push(dir);
  const c = await createCairn({
    store: join(dir, "cairn.db"),
    workflows: [{ binding: "TASK_WORKFLOW", name: "task", class: TaskWorkflow }],
    objects: [{ binding: "TaskAgent", class: TaskAgent }],
  });
  closers.push(() => c.close());
  const env = c.env as Record<string, any>;
  return { c, env, agent: (name = "a") => env.TaskAgent.getByName(name) as any };
}

describe("workflows from an agent", () => {
  it("runs, tracks, reports progress and events, updates agent state, and completes with upstream's callbacks", async () => {
    const { env, agent } = await cairn();
    const id: string = await agent().start({ task: "t1" }, { metadata: { kind: "demo" } });
    expect(id).toMatch(/^wf_[A-Za-z0-9_-]{21}$/);
    await until(() => reports.find((r) => r.kind === "complete" && r.workflowId === id), "completion");
    expect(reports.find((r) => r.kind === "payload")?.keys).toEqual(["task"]);
    expect(reports.find((r) => r.kind === "progress")).toMatchObject({
      workflowName: "TASK_WORKFLOW",
      progress: { step: "start", percent: 0.1 },
    });
    expect(reports.find((r) => r.kind === "event")).toMatchObject({ event: { note: "halfway" } });
    expect(reports.find((r) => r.kind === "complete")).toMatchObject({
      agent: "a",
      result: { value: "t1!", approvedBy: null },
    });
    const info = await agent().info(id);
    expect(info).toMatchObject({
      workflowId: id,
      workflowName: "TASK_WORKFLOW",
      status: "complete",
      metadata: { kind: "demo" },
      error: null,
    });
    expect(info.completedAt).not.toBeNull();
    // The completion report comes from inside run(), before the instance itself completes.
    await until(async () => (await agent().liveStatus(id)) === "complete", "the instance completing");
    expect(await env.TASK_WORKFLOW.get(id).then((i: any) => i.status())).toMatchObject({
      status: "complete",
      output: "t1!",
    });
    // step.mergeAgentState then step.updateAgentState went through setState.
    expect(await agent().current()).toEqual({ progress: 1, last: "t1!", done: true });
  });

  it("waitForApproval: approval continues with its metadata; rejection reports the reason once and errors", async () => {
    const { agent } = await cairn();
    const ok: string = await agent().start({ task: "yes", mode: "approve" });
    await until(() => reports.find((r) => r.kind === "event" && r.workflowId === ok), "the workflow waiting");
    await agent().approve(ok, "fine");
    await until(
      () => reports.find((r) => r.kind === "complete" && r.workflowId === ok),
      "approval completion",
    );
    expect(reports.find((r) => r.kind === "complete" && r.workflowId === ok)?.result).toEqual({
      value: "yes!",
      approvedBy: { by: "tester" },
    });

    const no: string = await agent().start({ task: "no", mode: "approve" });
    await until(
      () => reports.find((r) => r.kind === "event" && r.workflowId === no),
      "the second workflow waiting",
    );
    await agent().reject(no, "not today");
    await until(async () => (await agent().info(no)).status === "errored", "rejection");
    expect(reports.filter((r) => r.kind === "error" && r.workflowId === no).map((r) => r.error)).toEqual([
      "not today",
    ]);
    expect((await agent().info(no)).error).toEqual({ name: "WorkflowError", message: "not today" });
    await expect(agent().approve("wf_missing")).rejects.toThrow(
      "Workflow wf_missing not found in tracking table",
    );
  });

  it("an error escaping run() is reported once; reportError then throw is not reported twice", async () => {
    const { agent } = await cairn();
    const a: string = await agent().start({ task: "x", mode: "throw" });
    const b: string = await agent().start({ task: "y", mode: "report-then-throw" });
    await until(() => reports.find((r) => r.kind === "error" && r.workflowId === a), "error a");
    await until(() => reports.find((r) => r.kind === "error" && r.workflowId === b), "error b");
    await until(async () => (await agent().liveStatus(b)) === "errored", "instance b errored");
    expect(reports.filter((r) => r.kind === "error" && r.workflowId === a).map((r) => r.error)).toEqual([
      "failed x",
    ]);
    expect(reports.filter((r) => r.kind === "error" && r.workflowId === b).map((r) => r.error)).toEqual([
      "reported first",
    ]);
  });

  it("refuses a duplicate id and a missing binding with upstream's texts; control methods need a tracking row", async () => {
    const { agent } = await cairn();
    await agent().start({ task: "d" }, { id: "wf_fixed" });
    await expect(agent().start({ task: "d" }, { id: "wf_fixed" })).rejects.toThrow(
      'Workflow with ID "wf_fixed" is already being tracked',
    );
    await expect(agent().control("pause", "nope")).rejects.toThrow(
      "Workflow nope not found in tracking table",
    );
  });

  it("pause, resume and terminate act on the real instance and update the tracking row", async () => {
    const { agent } = await cairn();
    const id: string = await agent().start({ task: "p", mode: "approve" });
    await until(() => reports.find((r) => r.kind === "event" && r.workflowId === id), "waiting");
    expect(["paused", "waitingForPause"]).toContain(await agent().control("pause", id));
    expect(["running", "waiting", "queued"]).toContain(await agent().control("resume", id));
    expect(await agent().control("terminate", id)).toBe("terminated");
  });

  it("getWorkflows filters and pages with a keyset cursor; a bad cursor is refused; deletes", async () => {
    const { agent } = await cairn();
    const rows = Array.from({ length: 7 }, (_, i) => ({
      id: `w${i}`,
      name: i % 2 ? "ODD" : "EVEN",
      status: i < 3 ? "complete" : "running",
      created: 1000 + Math.floor(i / 2),
      meta: { n: i, tag: i % 2 ? "odd" : "even" },
    }));
    await agent("pages").track(rows);
    const all = await agent("pages").list({});
    expect(all).toEqual({ total: 7, nextCursor: null, ids: ["w6", "w5", "w4", "w3", "w2", "w1", "w0"] });
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await agent("pages").list({ limit: 3, orderBy: "asc", ...(cursor ? { cursor } : {}) });
      expect(page.total).toBe(7);
      seen.push(...page.ids);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(["w0", "w1", "w2", "w3", "w4", "w5", "w6"]);
    expect((await agent("pages").list({ status: "complete" })).ids).toEqual(["w2", "w1", "w0"]);
    expect((await agent("pages").list({ status: ["complete", "running"], workflowName: "ODD" })).ids).toEqual(
      ["w5", "w3", "w1"],
    );
    expect((await agent("pages").list({ metadata: { tag: "even", n: 4 } })).ids).toEqual(["w4"]);
    await expect(agent("pages").list({ cursor: "not-a-cursor" })).rejects.toThrow(
      "Invalid pagination cursor. The cursor may be malformed or corrupted.",
    );
    expect(await agent("pages").remove("w0")).toBe(true);
    expect(await agent("pages").remove("w0")).toBe(false);
    expect(await agent("pages").removeMany({ status: "running", createdBefore: new Date(1002 * 1000) })).toBe(
      1,
    );
    expect((await agent("pages").list({})).ids).toEqual(["w6", "w5", "w4", "w2", "w1"]);
  });
});
