/** The dashboard's Agents pages in real Chromium, against a real Cairn with agents and a workflow. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "@cairn/agents";
import { dashboardDir } from "@cairn/dashboard";
import { createApi, type RunningServer, startServer } from "@cairn/server";
import { type Cairn, createCairn } from "cairnjs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../agents/helpers.ts";
import { reports, TaskAgent, TaskWorkflow } from "../agents/workflow-agents.ts";
import { ensureDashboardBuilt, openPage, skipBrowserTests } from "./support.ts";

const skip = skipBrowserTests("the Agents browser tests");

class NoteAgent extends Agent<Record<string, unknown>, { note: string }> {
  override initialState = { note: "" };
  async plan(note: string): Promise<void> {
    this.setState({ note });
    await this.schedule("0 9 * * 1", "tick");
  }
  async tick(): Promise<void> {}
}

describe.skipIf(skip)("Agents pages in Chromium", () => {
  let dir: string;
  let cairn: Cairn;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let workflowId: string;

  beforeAll(async () => {
    ({ browser, page } = await openPage());
    ensureDashboardBuilt();
    dir = mkdtempSync(join(tmpdir(), "cairn-dash-agents-"));
    cairn = await createCairn({
      store: join(dir, "cairn.db"),
      workflows: [{ binding: "TASK_WORKFLOW", name: "task", class: TaskWorkflow }],
      objects: [
        { binding: "NoteAgent", class: NoteAgent },
        { binding: "TaskAgent", class: TaskAgent },
      ],
    });
    const env = cairn.env as any;
    await env.NoteAgent.getByName("ada").plan('<img src=x onerror="window.pwned=1"><b>bold</b>');
    workflowId = await env.TaskAgent.getByName("runner").start({ task: "t" });
    await until(
      () => reports.find((r) => r.kind === "complete" && r.workflowId === workflowId),
      "completion",
    );
    const app = createApi({
      runtime: cairn.runtime,
      objects: cairn.objects,
      dashboard: { dir: dashboardDir },
    });
    // The hook runs inside the agent's event; its tracking row is committed when the event ends.
    await until(async () => {
      const r = (await (await app.request("/api/v1/agents?namespace=TaskAgent")).json()) as any;
      return r.result[0]?.workflows[0]?.status === "complete";
    }, "the tracking row committed as complete");
    server = await startServer({ app, port: 0 });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await cairn?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lists agents; one agent shows its state as text, its schedules, and links its workflows", async () => {
    await page.goto(`${server.url}/_cairn/`);
    await page.getByRole("link", { name: "Agents" }).click();
    await page.waitForURL(/\/_cairn\/agents$/);
    const table = page.getByTestId("agents");
    await table.getByText("runner").waitFor();
    expect(await table.locator("tbody tr").allTextContents()).toEqual(
      expect.arrayContaining(["NoteAgentada010", "TaskAgentrunner001"]),
    );
    await table.getByRole("link", { name: "ada" }).click();
    await page.waitForURL(/\/_cairn\/agents\/NoteAgent\/[0-9a-f]{64}$/);
    const state = page.getByTestId("agent-state");
    await state.waitFor();
    expect(await state.textContent()).toContain(
      '"note": "<img src=x onerror=\\"window.pwned=1\\"><b>bold</b>"',
    );
    expect(await state.locator("b, img").count()).toBe(0);
    expect(await page.evaluate(() => (window as any).pwned)).toBeUndefined();
    expect(await page.getByTestId("agent-schedules").locator("tbody tr").allTextContents()).toEqual([
      "tickcroncron 0 9 * * 1no",
    ]);

    await page.getByRole("link", { name: "Agents" }).click();
    await page.getByTestId("agents").getByRole("link", { name: "runner" }).click();
    const workflows = page.getByTestId("agent-workflows");
    await workflows.waitFor();
    expect(await workflows.locator("tbody tr td").nth(2).textContent()).toBe("complete");
    await workflows.getByRole("link", { name: workflowId }).click();
    await page.waitForURL(new RegExp(`/_cairn/workflows/task/instances/${workflowId}$`));
    await page.getByText("complete", { exact: false }).first().waitFor();
  });
});
