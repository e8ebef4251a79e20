/**
 * The Metrics tab of a workflow (SPEC §12) in real Chromium against a real Cairn: the instances
 * that used the most CPU time, and the per-minute charts drawn from `GET /workflows/:name/metrics`.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPage, type Served, serve, skipBrowserTests, until } from "./support.ts";

const skip = skipBrowserTests("the metrics browser tests");

describe.skipIf(skip)("the Metrics tab in Chromium", () => {
  let s: Served;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    ({ browser, page } = await openPage());
    s = await serve();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  const open = (path: string) => page.goto(`${s.dashboard}${path.replace(/^\//, "")}`);
  const finished = (workflow: string, id: string) =>
    until(
      async () => (await s.cairn.runtime.status(workflow, id)).status === "complete",
      `${id} to complete`,
    );

  it("lists the instances that used the most CPU time first, and charts the last hour", async () => {
    const busy = s.cairn.env.BUSY as any;
    await busy.create({ id: "light", params: { ms: 1 } });
    await busy.create({ id: "heavy", params: { ms: 120 } });
    await finished("busy", "light");
    await finished("busy", "heavy");

    await open("/workflows/busy");
    await page.getByRole("link", { name: "Metrics" }).click();
    await page.waitForURL(/\/workflows\/busy\?view=metrics$/);
    const table = page.getByRole("table", { name: "Top instances by CPU time" });
    await table.waitFor();
    const rows = table.locator("tbody tr");
    await until(async () => (await rows.count()) === 2, "two instances in the table");
    expect(await rows.locator("td:first-child").allTextContents()).toEqual(["heavy", "light"]);
    const cpu = (await rows
      .locator("td[data-cpu-ms]")
      .evaluateAll((tds) => tds.map((td) => Number(td.getAttribute("data-cpu-ms"))))) as number[];
    // The stored values behind the table: the busy attempt's CPU time, and far less for the other.
    expect(cpu[0]).toBeGreaterThan(cpu[1]!);
    expect(cpu[0]).toBeGreaterThan(10);
    expect(await page.getByText("CPU limit 30.0 s per attempt").count()).toBe(1);

    // Four charts; the counts of the started/finished chart add up to the two instances.
    for (const title of [
      "Instances started and finished",
      "Attempt error rate",
      "Step duration percentiles",
      "CPU time",
    ])
      await page.getByRole("figure", { name: title }).waitFor();
    const total = (chart: string, series: string) =>
      page
        .getByRole("figure", { name: chart })
        .locator(`[data-series="${series}"]`)
        .getAttribute("data-total")
        .then(Number);
    expect(await total("Instances started and finished", "started")).toBe(2);
    expect(await total("Instances started and finished", "finished")).toBe(2);
    expect(await total("CPU time", "cpu")).toBeCloseTo(cpu[0]! + cpu[1]!, 1);
    expect(await total("Attempt error rate", "errors")).toBe(0);
    expect(
      await page.getByRole("img", { name: "CPU time chart" }).locator("circle, polyline").count(),
    ).toBeGreaterThan(0);

    // A row links to its instance.
    await rows.first().getByRole("link", { name: "heavy" }).click();
    await page.waitForURL(/\/workflows\/busy\/instances\/heavy$/);
    // The instance page shows its stored CPU time, the one the API returns.
    const detail = (await (await fetch(`${s.url}/api/v1/workflows/busy/instances/heavy`)).json()) as any;
    expect(detail.result.metrics.cpu_time_ms).toBeGreaterThanOrEqual(cpu[0]! - 0.02);
    await until(
      async () => (await page.getByTestId("cpu-time").textContent())?.trim() !== "",
      "the instance's CPU time",
    );
    expect(await page.getByTestId("cpu-time").textContent()).toBe(
      formatCpuLike(detail.result.metrics.cpu_time_ms),
    );
  });

  it("shows the error rate of attempts that failed before they succeeded", async () => {
    await (s.cairn.env.FLAKY as any).create({ id: "f1" });
    await until(
      async () => (await s.cairn.runtime.status("flaky", "f1")).status === "complete",
      "the flaky instance to complete",
      20_000,
    );
    await open("/workflows/flaky?view=metrics");
    const errors = page.getByRole("figure", { name: "Attempt error rate" }).locator('[data-series="errors"]');
    await errors.waitFor();
    // Two of the three attempts of "charge card" failed, in the same minute or spread over two.
    expect(Number(await errors.getAttribute("data-total"))).toBeGreaterThan(0);
  });
});

/** The dashboard's CPU format (pages/metrics.tsx `formatCpu`) for values of 10 ms to 60 s. */
function formatCpuLike(ms: number): string {
  return ms < 10
    ? `${Number(ms.toFixed(2))} ms`
    : ms < 1000
      ? `${Math.round(ms)} ms`
      : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
