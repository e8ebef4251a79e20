/**
 * A workflow's schedules (SPEC §9.4) in real Chromium: the overview card names the next slot, the
 * workflow's page lists each cron with its next time and links the instances the schedule created.
 */
import { FakeClock, WorkflowEntrypoint, type WorkflowEvent } from "@cairn/core";
import { DASHBOARD_PATH } from "@cairn/dashboard";
import { type Cairn, createCairn } from "@cairn/engine";
import type { RunningServer } from "@cairn/server";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPage, serveApi, skipBrowserTests, until } from "./support.ts";

const skip = skipBrowserTests("the schedules browser tests");

class Report extends WorkflowEntrypoint {
  override async run(event: WorkflowEvent<unknown>) {
    return event.schedule ?? null;
  }
}

const HOURLY = "0 * * * *";

describe.skipIf(skip)("schedules in the dashboard", () => {
  let cairn: Cairn;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  // Ten minutes past a whole hour, now: the next slot is 50 minutes away.
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const clock = new FakeClock(hour + 10 * 60_000);

  beforeAll(async () => {
    ({ browser, page } = await openPage());
    cairn = await createCairn({
      store: ":memory:",
      clock,
      workflows: [
        { binding: "REPORT", name: "report", class: Report, schedules: [HOURLY, "30 6 * * mon"] },
        { binding: "PLAIN", name: "plain", class: Report },
      ],
    });
    server = await serveApi({ runtime: cairn.runtime, pollMs: 250 });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await cairn?.close();
  });

  const open = (path: string) => page.goto(`${server.url}${DASHBOARD_PATH}${path.replace(/^\//, "")}`);

  it("shows the next slot on the card and each schedule on the workflow's page, linking its instances", async () => {
    await clock.advance(50 * 60_000, () => cairn.runtime.whenIdle());
    await cairn.runtime.whenIdle();
    const id = `${HOURLY}#${hour + 3_600_000}`;
    expect((await cairn.runtime.status("report", id)).status).toBe("complete");
    await (cairn.env.REPORT as any).create({ id: "by-hand" });

    await open("/");
    const card = page.locator('[data-workflow="report"]');
    await card.getByTestId("next-scheduled").waitFor();
    expect(await card.getByTestId("next-scheduled").textContent()).toMatch(
      /^2 schedules, next .+ \(0 \* \* \* \*\)$/,
    );
    expect(await page.locator('[data-workflow="plain"]').getByTestId("next-scheduled").count()).toBe(0);

    await open("/workflows/report");
    const list = page.getByTestId("schedules");
    await list.waitFor();
    const items = await list.locator("li").allTextContents();
    expect(items).toHaveLength(2);
    expect(items[0]).toContain(HOURLY);
    expect(items[1]).toContain("30 6 * * mon");
    // The next slot of the hourly schedule, as the API gives it, in the item's tooltip.
    const next = new Date(hour + 2 * 3_600_000).toISOString();
    expect(await list.locator("li").first().locator(`span[title="${next}"]`).count()).toBe(1);

    await list.locator("li").first().getByRole("link", { name: "its instances" }).click();
    await page.waitForURL(/\/workflows\/report\?q=/);
    const rows = page.locator("tbody tr");
    await until(async () => (await rows.count()) === 1, "only the schedule's instance listed");
    expect(await rows.first().textContent()).toContain(id);

    await open("/workflows/plain");
    await page.getByRole("heading", { name: /plain/ }).waitFor();
    expect(await page.getByTestId("schedules").count()).toBe(0);
  });
});
