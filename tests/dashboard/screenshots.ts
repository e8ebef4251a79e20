/**
 * Screenshots of the dashboard's main pages for docs/screenshots/: `npm run screenshots -w
 * @cairn/dashboard` (or `node tests/dashboard/screenshots.ts`). Starts a real Cairn with sample
 * instances, opens the pages in /usr/bin/chromium and saves PNGs.
 */
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { browserMissing, gate, launch, newContext, serve, until } from "./support.ts";

const out = join(dirname(fileURLToPath(import.meta.url)), "../../docs/screenshots");

async function main() {
  const missing = browserMissing();
  if (missing) throw new Error(missing);
  mkdirSync(out, { recursive: true });
  const s = await serve();
  const rt = s.cairn.runtime;
  try {
    // Sample data: every status, retries, sleeps and event waits.
    await rt.createBatch(
      "echo",
      Array.from({ length: 100 }, (_, i) => ({ id: `job-${1000 + i}`, params: { n: i } })),
    );
    for (let i = 0; i < 14; i++)
      await rt.create("approval", { id: `order-${4200 + i}`, params: { order: String(4200 + i) } });
    await rt.create("nap", { id: "nightly-report", params: { sleepMs: 60 * 60_000 } });
    await rt.create("nap", { id: "quick-nap", params: { sleepMs: 300 } });
    await rt.create("flaky", { id: "payment-7" });
    await rt.create("pipeline", { id: "etl-2024-06" });
    await rt.create("broken", { id: "order-bad" });
    await until(
      async () => (await rt.instance("approval", "order-4213")).status === "waiting",
      "approvals waiting",
    );
    for (let i = 0; i < 8; i++)
      await rt.sendEvent("approval", `order-${4200 + i}`, { type: "approved", payload: { by: "ana" } });
    await rt.terminate("approval", "order-4208");
    await rt.pause("approval", "order-4209");
    await until(
      async () => (await rt.instance("flaky", "payment-7")).status === "complete",
      "flaky to complete",
      20_000,
    );
    await until(async () => (await rt.instance("nap", "quick-nap")).status === "complete", "nap to complete");
    // A batch held in its loop, and one waiting for its approval event.
    gate("batch-held");
    await rt.create("batch", { id: "batch-held", params: { items: ["north", "south", "east"] } });
    await rt.create("batch", { id: "batch-7", params: { items: ["a", "b", "c", "d"], sleepMs: 200 } });
    await until(async () => (await rt.instance("batch", "batch-7")).status === "waiting", "batch-7 to wait");
    await new Promise((r) => setTimeout(r, 500));

    const browser = await launch();
    try {
      for (const dark of [false, true]) {
        const ctx = await newContext(browser, { dark, height: 900 });
        const page = await ctx.newPage();
        const suffix = dark ? "-dark" : "";
        await page.goto(s.dashboard);
        await page.getByRole("heading", { name: "Recent activity" }).waitFor();
        await page.screenshot({ path: join(out, `overview${suffix}.png`), fullPage: true });

        await page.goto(`${s.dashboard}workflows/approval`);
        await page.locator('[data-testid="instances"] tbody tr').first().waitFor();
        await page.getByLabel("Select order-4213").check();
        await page.getByLabel("Select order-4212").check();
        await page.screenshot({ path: join(out, `instances${suffix}.png`), fullPage: true });

        await page.goto(`${s.dashboard}workflows/flaky/instances/payment-7?step=charge%20card-1&type=step`);
        await page.locator('[data-testid="inspector"] pre.json').first().waitFor();
        await page.locator('[data-testid="history"]').waitFor();
        await page.screenshot({ path: join(out, `instance${suffix}.png`), fullPage: true });

        await page.goto(`${s.dashboard}workflows/batch?view=diagram`);
        await page.locator('[data-testid="diagram"][data-ready="true"]').waitFor();
        await page.screenshot({ path: join(out, `diagram${suffix}.png`), fullPage: true });

        await page.goto(`${s.dashboard}workflows/batch/instances/batch-7`);
        await page.locator('[data-testid="diagram"][data-ready="true"]').waitFor();
        await page.locator('.d-box[data-id="n3"][data-state="waiting"]').waitFor();
        await page.locator("#diagram").screenshot({ path: join(out, `diagram-instance${suffix}.png`) });

        if (!dark) {
          await page.goto(`${s.dashboard}workflows/approval/instances/order-4212`);
          await page.locator('[data-testid="live"][data-state="live"]').waitFor();
          await page.screenshot({ path: join(out, "instance-waiting.png"), fullPage: true });
        }
        await ctx.close();
      }
    } finally {
      await browser.close();
    }
    console.log(`screenshots written to ${out}`);
  } finally {
    await s.close();
  }
}

await main();
