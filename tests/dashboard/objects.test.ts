/** The dashboard's Objects pages in real Chromium, against a real Cairn with a Durable Object. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningServer } from "@cairn/server";
import { type Cairn, createCairn, DurableObject } from "cairnjs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPage, serveApi, skipBrowserTests } from "./support.ts";

const skip = skipBrowserTests("the Objects browser tests");

class Cart extends DurableObject {
  add(item: string, qty: number): void {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS items (item TEXT PRIMARY KEY, qty INTEGER)");
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO items VALUES (?, ?)", item, qty);
    this.ctx.storage.kv.put("owner", { name: "ada" });
  }
  async remind(at: number): Promise<void> {
    await this.ctx.storage.setAlarm(at);
  }
}

describe.skipIf(skip)("Objects pages in Chromium", () => {
  let dir: string;
  let cairn: Cairn;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    ({ browser, page } = await openPage());
    dir = mkdtempSync(join(tmpdir(), "cairn-dash-objects-"));
    cairn = await createCairn({ store: join(dir, "cairn.db"), objects: [{ binding: "CARTS", class: Cart }] });
    const carts = (cairn.env as any).CARTS;
    await carts.getByName("cart-1").add("apple", 3);
    await carts.getByName("cart-1").add("pear", 1);
    await carts.getByName("cart-1").remind(Date.parse("2031-05-06T07:08:09Z"));
    await carts.getByName("cart-2").add("fig", 9);
    server = await serveApi({ runtime: cairn.runtime, objects: cairn.objects });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await cairn?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lists namespaces and objects, and shows one object's KV, tables and alarm read-only", async () => {
    await page.goto(`${server.url}/_cairn/`);
    await page.getByRole("link", { name: "Objects" }).click();
    await page.waitForURL(/\/_cairn\/objects$/);
    const table = page.getByTestId("objects-CARTS");
    await table.getByText("cart-1").waitFor();
    expect(await table.locator("tbody tr").count()).toBe(2);
    await table.locator("tr", { hasText: "cart-1" }).getByRole("link").click();
    await page.waitForURL(/\/_cairn\/objects\/CARTS\/[0-9a-f]{64}$/);
    await page.getByTestId("object-facts").waitFor();
    expect(await page.locator("h1").textContent()).toBe("cart-1");
    expect(await page.getByTestId("object-facts").textContent()).toMatch(/Alarm.*2031/);
    expect(await page.getByTestId("object-kv").textContent()).toContain('"name": "ada"');
    const items = page.getByTestId("object-table-items");
    expect(await items.locator("tbody tr").allTextContents()).toEqual(["apple3", "pear1"]);
  });
});
