/**
 * A Python project's instances in the dashboard, in real Chromium: `runStart` on a wrangler project
 * whose `main` is a `.py` file (a real `python3 -m cairn_worker`), the dashboard's `createApi`. The
 * timeline, retries, the history, the diagram from the `ast` analyser, and an event sent from the
 * page to a waiting Python instance.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runStart, type StartedProject } from "@cairn/compat";
import { createApi, startServer } from "@cairn/dashboard/server";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDashboardBuilt, openPage, skipBrowserTests, until } from "./support.ts";

const skip = skipBrowserTests("the Python dashboard tests");
const python = process.env.CAIRN_PYTHON ?? "python3";
const found = spawnSync(python, ["-c", "import sys; print(sys.version_info >= (3, 10))"], {
  encoding: "utf8",
});
const havePython = found.status === 0 && found.stdout.trim() === "True";
if (!havePython && process.env.CAIRN_REQUIRE_PYTHON === "1")
  throw new Error(`${python} ≥ 3.10 is required (CAIRN_REQUIRE_PYTHON=1)`);
if (!havePython) console.warn(`Skipping the Python dashboard tests: no ${python} ≥ 3.10`);

const ENTRY = `
from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

class Orders(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do(config={"retries": {"limit": 3, "delay": 10, "backoff": "constant"}})
        async def load(ctx):
            if ctx["attempt"] < 2:
                raise ValueError("stock service busy")
            return {"id": event["payload"]["id"], "total": 12}

        @step.do()
        async def price(load):
            return load["total"] * 2

        @step.do(concurrent=True)
        async def receipt(load, price):
            return f"order {load['id']}: {price}"

        text = await receipt()
        approval = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return {"receipt": text, "by": approval["payload"]["by"]}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("python")
`;

describe.skipIf(skip || !havePython)("a Python project in the dashboard", () => {
  let started: StartedProject;
  let browser: Browser;
  let page: Page;
  let url: string;

  beforeAll(async () => {
    ({ browser, page } = await openPage(15_000));
    ensureDashboardBuilt();
    const dir = mkdtempSync(join(tmpdir(), "cairn-py-dash-"));
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src/entry.py"), ENTRY);
    writeFileSync(
      join(dir, "wrangler.jsonc"),
      JSON.stringify({
        name: "py-dash",
        main: "src/entry.py",
        compatibility_date: "2026-05-08",
        compatibility_flags: ["python_workers"],
        workflows: [{ name: "orders", binding: "ORDERS", class_name: "Orders" }],
      }),
    );
    started = await runStart({
      dir,
      port: 0,
      createApi: createApi as never,
      startServer: startServer as never,
      handleSignals: false,
      log: () => {},
    });
    url = started.url;
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await started?.shutdown();
  });

  const api = async (path: string, init?: RequestInit) =>
    ((await (await fetch(`${url}/api/v1${path}`, init)).json()) as any).result;
  const badge = (st: string) => page.locator(`.page-head .badge[data-status="${st}"]`);

  it("shows the steps, retries and history of a Python instance, and sends it an event", async () => {
    await api("/workflows/orders/instances", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instance_id: "py-1", params: { id: "7" } }),
    });
    await until(
      async () => (await api("/workflows/orders/instances/py-1"))?.status === "waiting",
      "py-1 to wait",
    );
    await page.goto(`${url}/_cairn/workflows/orders/instances/py-1`);
    await badge("waiting").waitFor();
    for (const step of ["load-1", "price-1", "receipt-1"])
      await page.locator(`button[data-step="${step}"][data-state="complete"]`).waitFor();
    await page.locator('button[data-step="approval-1"]').waitFor();
    // The first attempt of "load" failed: its bar and error are shown.
    await page.locator(".bar.attempt-fail").first().waitFor();
    await page.locator('button[data-step="receipt-1"]').click();
    await page.getByTestId("inspector").getByText('"order 7: 24"').waitFor();

    const form = page.getByTestId("event-form");
    await until(
      async () => (await form.getByLabel("Type").inputValue()) === "approved",
      "the suggested type",
    );
    await form.getByLabel("Payload (JSON)").fill('{"by": "grace"}');
    await form.getByRole("button", { name: "Send event" }).click();
    await badge("complete").waitFor();
    await page.locator('[data-testid="history"] tr[data-type="workflow_completed"]').waitFor();
    const shown = await api("/workflows/orders/instances/py-1");
    expect(shown.output).toEqual({ receipt: "order 7: 24", by: "grace" });
  });

  it("draws the .py workflow's diagram and colours the instance's nodes", async () => {
    const graph = await api("/workflows/orders/graph");
    expect(graph?.workflow?.class_name).toBe("Orders");
    await page.goto(`${url}/_cairn/workflows/orders/instances/py-1`);
    await page.locator('[data-testid="diagram"][data-ready="true"]').waitFor();
    const names = await page
      .locator("[data-testid=diagram-canvas] .d-box[data-name]")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-name")));
    expect(names).toEqual(expect.arrayContaining(["load", "price", "receipt", "approval"]));
    await page
      .locator('[data-testid=diagram-canvas] .d-box[data-name="receipt"][data-state="succeeded"]')
      .waitFor();
  });

  it("names the project on the overview", async () => {
    const project = await api("/project");
    expect(project).toMatchObject({ name: "py-dash" });
    await page.goto(`${url}/_cairn/`);
    await page.locator('[data-workflow="orders"] .count[data-status="complete"]').waitFor();
  });
});
