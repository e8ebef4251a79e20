// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step names hold ${…} placeholders.
/**
 * Diagrams in the dashboard, in real Chromium against a real Cairn and @cairn/server in this
 * process (graphs from `graphOf` on each workflow class): collapsing and expanding containers,
 * expand all / collapse all, pan and zoom, and an instance's step nodes changing colour live.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gate, openPage, type Served, serve, skipBrowserTests, until } from "./support.ts";

const skip = skipBrowserTests("the diagram browser tests");

describe.skipIf(skip)("diagrams in Chromium", () => {
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
  const diagram = () => page.locator('[data-testid="diagram"][data-ready="true"]');
  /** The ids of the boxes drawn, in drawing order. */
  const shown = () =>
    page
      .locator("[data-testid=diagram-canvas] .d-box")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-id")));
  const box = (id: string) => page.locator(`[data-testid=diagram-canvas] .d-box[data-id="${id}"]`);
  const stateOf = (id: string) => box(id).getAttribute("data-state");
  const waitState = (id: string, state: string, timeout = 10_000) =>
    page
      .locator(`[data-testid=diagram-canvas] .d-box[data-id="${id}"][data-state="${state}"]`)
      .waitFor({ timeout });
  const transform = () => page.getByTestId("diagram-canvas").getAttribute("transform");

  it("serves the graph the dashboard draws", async () => {
    const res = await fetch(`${s.url}/api/v1/workflows/batch/graph`);
    expect(res.status).toBe(200);
    const { result } = (await res.json()) as any;
    expect(result.workflow.nodes.map((n: any) => n.id)).toEqual(["n0", "n1", "n2", "n3", "n4"]);
  });

  it("collapses and expands a loop, and expands all / collapses all", async () => {
    await open("/workflows/batch");
    await page.getByRole("link", { name: "Diagram" }).click();
    await page.waitForURL(/\/workflows\/batch\?view=diagram$/);
    await diagram().waitFor();
    const all = [
      "main",
      "n1",
      "n4",
      "n4.0",
      "n4.1",
      "start",
      "n0",
      "n1.0",
      "n2",
      "n3",
      "n4.0.0",
      "n4.1.0",
      "end",
    ];
    expect(new Set(await shown())).toEqual(new Set(all));
    expect(await box("n1.0").getAttribute("data-name")).toBe("process ${item}");

    // Collapse the loop from its header: its step disappears, the loop becomes one box.
    await page.locator('.d-header[data-toggle="n1"]').click();
    await box("n1").and(page.locator(".collapsed")).waitFor();
    expect(await shown()).not.toContain("n1.0");
    expect(await box("n1").textContent()).toContain("for…of loop (1 step hidden)");
    expect(await box("n1").getAttribute("aria-expanded")).toBe("false");
    // Expand it again by clicking the collapsed box.
    await box("n1").click();
    await box("n1.0").waitFor();
    expect(new Set(await shown())).toEqual(new Set(all));

    // From the keyboard: the header is a button.
    await page.locator('.d-header[data-toggle="n4"]').focus();
    await page.keyboard.press("Enter");
    await box("n4").and(page.locator(".collapsed")).waitFor();
    expect(await shown()).not.toContain("n4.0.0");
    expect(await shown()).toContain("n1.0");
    await page.keyboard.press("Enter"); // focus stays on the collapsed box, which is a button too
    await box("n4.0.0").waitFor();

    // Collapse all: only the top level is left; expand all brings everything back.
    await page.getByRole("button", { name: "Collapse all" }).click();
    await box("n4").and(page.locator(".collapsed")).waitFor();
    expect(new Set(await shown())).toEqual(new Set(["main", "start", "n0", "n1", "n2", "n3", "n4", "end"]));
    // Expanding the if shows its branches still collapsed.
    await box("n4").click();
    await box("n4.0").and(page.locator(".collapsed")).waitFor();
    expect(await shown()).not.toContain("n4.0.0");
    await page.getByRole("button", { name: "Expand all" }).click();
    await box("n4.1.0").waitFor();
    expect(new Set(await shown())).toEqual(new Set(all));
  });

  it("pans by dragging and the arrow keys, zooms with the wheel and the buttons", async () => {
    await open("/workflows/batch?view=diagram");
    await diagram().waitFor();
    const zoom = async () => Number((await page.getByTestId("zoom").textContent())!.replace("%", ""));
    const before = await zoom();
    await page.getByRole("button", { name: "Zoom in" }).click();
    await until(async () => (await zoom()) > before, "zoom in");
    await page.getByRole("button", { name: "Zoom out" }).click();
    await page.getByRole("button", { name: "Zoom out" }).click();
    await until(async () => (await zoom()) < before, "zoom out");

    const viewport = page.locator(".diagram-viewport");
    const b = (await viewport.boundingBox())!;
    await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
    const z = await zoom();
    await page.mouse.wheel(0, -300);
    await until(async () => (await zoom()) > z, "wheel zoom");

    const t0 = await transform();
    await page.mouse.move(b.x + 20, b.y + 20);
    await page.mouse.down();
    await page.mouse.move(b.x + 120, b.y + 80, { steps: 5 });
    await page.mouse.up();
    const t1 = await transform();
    expect(t1).not.toBe(t0);
    const [x0, y0] = t0!.match(/-?[\d.]+/g)!.map(Number);
    const [x1, y1] = t1!.match(/-?[\d.]+/g)!.map(Number);
    expect(x1! - x0!).toBeCloseTo(100, 0);
    expect(y1! - y0!).toBeCloseTo(60, 0);
    // A drag that ends on a header does not toggle it.
    expect(await shown()).toContain("n1.0");

    await viewport.focus();
    await page.keyboard.press("ArrowRight");
    await until(async () => (await transform()) !== t1, "keyboard pan");
    await page.keyboard.press("0");
  });

  it("colours an instance's nodes live: pending → running → succeeded → waiting → all done", async () => {
    const id = "diagram-live";
    const held = gate(id);
    await s.cairn.runtime.create("batch", { id, params: { items: ["a", "b", "c"], sleepMs: 1500 } });
    await open(`/workflows/batch/instances/${id}`);
    await page.evaluate(() => ((window as any).__notReloaded = true));
    await diagram().waitFor();

    // The first step is done; the loop's step runs (held); everything after it is pending.
    await waitState("n0", "succeeded");
    await waitState("n1.0", "running");
    for (const later of ["n2", "n3", "n4.0.0", "n4.1.0"]) expect(await stateOf(later)).toBe("pending");
    // A collapsed loop shows the state of the steps it hides.
    await page.locator('.d-header[data-toggle="n1"]').click();
    await waitState("n1", "running");
    await box("n1").click();
    await box("n1.0").waitFor();

    // Released: each item is processed, then the sleep and the event wait show as waiting.
    held.open();
    await waitState("n1.0", "succeeded");
    expect(await box("n1.0").locator(".d-badge").textContent()).toBe("×3");
    await waitState("n2", "waiting");
    await waitState("n2", "succeeded", 15_000);
    await waitState("n3", "waiting");
    expect(await stateOf("n4.1.0")).toBe("pending");

    // Clicking a node opens the step inspector for it.
    await box("n0").click();
    await page.locator('[data-testid="inspector"]').getByText("load items-1").waitFor();
    expect(page.url()).toContain("step=load+items-1");
    await box("n1.0").click();
    await page.locator('[data-testid="inspector"]').getByText("process c-1").waitFor();

    // The event arrives: the rest succeeds, the branch not taken is skipped.
    await s.cairn.runtime.sendEvent("batch", id, { type: "approved", payload: { rush: false } });
    await waitState("n3", "succeeded");
    await waitState("n4.1.0", "succeeded");
    await waitState("n4.0.0", "skipped");
    await page.locator('.page-head .badge[data-status="complete"]').waitFor();
    for (const done of ["n0", "n1.0", "n2", "n3", "n4.1.0"]) expect(await stateOf(done)).toBe("succeeded");
    expect(await page.evaluate(() => (window as any).__notReloaded)).toBe(true);
  }, 40_000);

  it("shows retries with the attempt count", async () => {
    await s.cairn.runtime.create("flaky", { id: "diagram-flaky" });
    await open("/workflows/flaky/instances/diagram-flaky");
    await diagram().waitFor();
    const charge = page.locator('[data-testid=diagram-canvas] .d-box[data-name="charge card"]');
    await charge.and(page.locator('[data-state="retrying"]')).waitFor();
    expect(await charge.locator(".d-badge").textContent()).toMatch(/^attempt [23]$/);
    await charge.and(page.locator('[data-state="succeeded"]')).waitFor({ timeout: 15_000 });
    expect(await charge.locator(".d-badge").textContent()).toBe("3 attempts");
  }, 30_000);
});
