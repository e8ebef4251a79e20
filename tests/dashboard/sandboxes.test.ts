/** The dashboard's Sandboxes page in real Chromium, against a server whose process runs a real jail. */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { RunningServer } from "@cairn/server";
import { type Cairn, createCairn } from "cairnjs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSandboxes } from "../sandbox/helpers.ts";
import { openPage, serveApi, skipBrowserTests } from "./support.ts";

const skip = skipBrowserTests("the Sandboxes browser tests");

describe.skipIf(skip)("Sandboxes page in Chromium", () => {
  let t: ReturnType<typeof openSandboxes>;
  let cairn: Cairn;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    ({ browser, page } = await openPage());
    t = openSandboxes();
    const sb = t.get("dash-live");
    await sb.exec("echo '<b>hi</b>'");
    await sb.exec("exit 7");
    await sb.startProcess("sleep 300", { processId: "sleeper" });
    await sb.exposePort(8080, { name: "web" });
    mkdirSync(join(t.dir, "dash-idle", "workspace"), { recursive: true });
    cairn = await createCairn({ store: join(t.root, "cairn.db") });
    server = await serveApi({ runtime: cairn.runtime });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await cairn?.close();
    await t?.get("dash-live").destroy();
    await t?.host.close();
    if (t) rmSync(t.root, { recursive: true, force: true });
  });

  it("lists sandboxes with state, limits mode, processes, ports and recent commands", async () => {
    await page.goto(`${server.url}/_cairn/`);
    await page.getByRole("link", { name: "Sandboxes" }).click();
    await page.waitForURL(/\/_cairn\/sandboxes$/);
    const live = page.getByTestId("sandbox-dash-live");
    await live.waitFor();
    const facts = await live.textContent();
    expect(facts).toMatch(/Staterunning/);
    expect(facts).toMatch(/Limits(v2|v1|rlimits) \(1024 MiB/);
    expect(facts).toContain("Ports8080 (web)");
    expect(
      await page.getByTestId("sandbox-dash-live-processes").locator("tbody tr").allTextContents(),
    ).toEqual(["sleeperrunningsleep 300"]);
    const commands = page.getByTestId("sandbox-dash-live-commands").locator("tbody tr");
    const cells = async (i: number) => (await commands.nth(i).locator("td").allTextContents()).slice(0, 2);
    expect(await commands.count()).toBe(2);
    expect(await cells(0)).toEqual(["exit 7", "7"]);
    expect(await cells(1)).toEqual(["echo '<b>hi</b>'", "0"]);
    expect(await page.getByTestId("sandbox-dash-live-commands").locator("b").count()).toBe(0);
    expect(await page.getByTestId("sandbox-dash-idle").textContent()).toMatch(
      /Statestopped.*Limitsstopped.*Portsnone/,
    );
  });
});
