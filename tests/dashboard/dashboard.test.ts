/**
 * The dashboard in real Chromium (playwright-core driving Debian's /usr/bin/chromium) against a
 * real Cairn and @cairn/server in this process. Without the browser the tests are skipped with the
 * reason printed, except under CI=true, where they fail (scripts/ensure-chromium.sh installs it).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPage, runs, type Served, serve, skipBrowserTests, until } from "./support.ts";

const skip = skipBrowserTests("the dashboard browser tests");

describe.skipIf(skip)("dashboard in Chromium", () => {
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

  const rt = () => s.cairn.runtime;
  const status = async (workflow: string, id: string) => (await rt().instance(workflow, id)).status;
  const badge = (st: string) => page.locator(`.page-head .badge[data-status="${st}"]`);
  /** The instance as the API shows it. */
  const detail = async (workflow: string, id: string) =>
    ((await (await fetch(`${s.url}/api/v1/workflows/${workflow}/instances/${id}`)).json()) as any).result;
  const open = (path: string) => page.goto(`${s.dashboard}${path.replace(/^\//, "")}`);

  it("shows every workflow with its instance counts on the overview", async () => {
    await rt().createBatch("echo", [{ id: "ov-1" }, { id: "ov-2" }, { id: "ov-3" }]);
    await rt().create("approval", { id: "ov-wait" });
    await until(async () => (await status("approval", "ov-wait")) === "waiting", "ov-wait to wait");
    await rt().whenIdle();
    await open("/");
    const echo = page.locator('[data-workflow="echo"]');
    await echo.locator('.count[data-status="complete"]').waitFor();
    expect(await echo.locator('.count[data-status="complete"] .n').textContent()).toBe("3");
    expect(await echo.getByTestId("total").textContent()).toBe("3");
    const approval = page.locator('[data-workflow="approval"]');
    expect(await approval.locator('.count[data-status="waiting"] .n').textContent()).toBe("1");
    for (const name of ["nap", "flaky", "pipeline", "broken"])
      await page.locator(`[data-workflow="${name}"]`).waitFor();
    // Recent activity lists the newest instances; a count links to the filtered list.
    await page.locator("#recent").getByRole("link", { name: "ov-wait" }).waitFor();
    await approval.locator('.count[data-status="waiting"]').click();
    await page.waitForURL(/\/_cairn\/workflows\/approval\?status=waiting$/);
    await page.locator('[data-testid="instances"] tr[data-id="ov-wait"]').waitFor();
  });

  it("filters and pages through 1,000 instances: no duplicates, every one reachable", async () => {
    for (let b = 0; b < 10; b++)
      await rt().createBatch(
        "echo",
        Array.from({ length: 100 }, (_, i) => ({ id: `bulk-${String(b * 100 + i).padStart(4, "0")}` })),
      );
    await until(
      async () =>
        (await s.cairn.store.instances.countByStatus("echo")).find((r) => r.status === "complete")?.count ===
        1003,
      "1,000 instances to complete",
      60_000,
    );
    await open("/workflows/echo?status=complete&q=bulk-&per=100");
    const seen: string[] = [];
    const pages: string[][] = [];
    // The rows of page n, once loaded (the previous page stays shown until they arrive).
    const rowsOf = (n: number) => page.locator(`[data-testid="instances"][data-page="${n}"] tbody tr`);
    // Every state the page goes through: the label and the first row shown, to check they always match.
    await page.evaluate(() => {
      const w = window as unknown as { shownStates: string[] };
      w.shownStates = [];
      const record = () => {
        const label = document.querySelector('[data-testid="page"]')?.textContent ?? "";
        const first = document.querySelector('[data-testid="instances"] tbody tr')?.getAttribute("data-id");
        w.shownStates.push(`${label}|${first ?? ""}`);
      };
      new MutationObserver(record).observe(document.body, {
        subtree: true,
        childList: true,
        characterData: true,
      });
    });
    for (let n = 1; ; n++) {
      await rowsOf(n).first().waitFor();
      expect(await page.getByTestId("page").textContent()).toMatch(new RegExp(`^Page ${n} · \\d+ shown$`));
      const ids = await rowsOf(n).evaluateAll((rows) => rows.map((r) => r.getAttribute("data-id")!));
      pages.push(ids);
      seen.push(...ids);
      const next = page.getByRole("button", { name: "Next →" });
      if (await next.isDisabled()) break;
      await next.click();
    }
    expect(pages).toHaveLength(10);
    const states = await page.evaluate(() => (window as unknown as { shownStates: string[] }).shownStates);
    expect(states.length).toBeGreaterThan(0);
    for (const state of states) {
      const [label, first] = state.split("|");
      const n = /^Page (\d+) · /.exec(label!)?.[1];
      if (n !== undefined) expect(pages[Number(n) - 1], state).toContain(first);
    }
    expect(new Set(seen).size).toBe(1000);
    expect(seen).toEqual(
      Array.from({ length: 1000 }, (_, i) => `bulk-${String(i).padStart(4, "0")}`)
        .sort()
        .reverse(),
    );
    // Previous walks back through the same pages.
    await page.getByRole("button", { name: "← Previous" }).click();
    await rowsOf(9).first().waitFor();
    expect(await rowsOf(9).first().getAttribute("data-id")).toBe(pages[8]![0]);
    // Oldest first, and a date range that matches nothing.
    await page.getByLabel("Order").selectOption("asc");
    await page.getByTestId("page").filter({ hasText: "Page 1 ·" }).waitFor();
    await page.locator('[data-testid="instances"] tbody tr[data-id="bulk-0000"]').waitFor();
    await page.getByLabel("Created from").fill("2099-01-01T00:00:00");
    await page.getByText("No instances match.").waitFor();
  }, 120_000);

  it("shows an instance go from waiting to complete live, without reloading", async () => {
    await rt().create("nap", { id: "live-nap", params: { sleepMs: 2500 } });
    await open("/workflows/nap/instances/live-nap");
    await badge("waiting").waitFor();
    await page.evaluate(() => ((window as any).__notReloaded = true));
    await page.locator('[data-testid="live"][data-state="live"]').waitFor();
    await page.locator('button[data-step="nap-1"][data-type="sleep"]').waitFor();
    await badge("complete").waitFor({ timeout: 15_000 });
    expect(await page.evaluate(() => (window as any).__notReloaded)).toBe(true);
    await page.locator('[data-testid="history"] tr[data-type="workflow_completed"]').waitFor();
    await page.locator('button[data-step="finish-1"][data-state="complete"]').waitFor();
    expect(await status("nap", "live-nap")).toBe("complete");
  });

  it("pauses, resumes and terminates from the instance page", async () => {
    await rt().create("approval", { id: "ctl-1" });
    await until(async () => (await status("approval", "ctl-1")) === "waiting", "ctl-1 to wait");
    await open("/workflows/approval/instances/ctl-1");
    await badge("waiting").waitFor();
    await page.getByRole("button", { name: "Pause", exact: true }).click();
    await until(async () => (await status("approval", "ctl-1")) === "paused", "the API to say paused");
    await badge("paused").waitFor();
    await page.getByRole("button", { name: "Resume", exact: true }).click();
    await until(async () => (await status("approval", "ctl-1")) === "waiting", "the API to say waiting");
    await badge("waiting").waitFor();
    await page.getByRole("button", { name: "Terminate", exact: true }).click();
    await page.getByRole("button", { name: "Confirm terminate" }).click();
    await until(
      async () => (await status("approval", "ctl-1")) === "terminated",
      "the API to say terminated",
    );
    await badge("terminated").waitFor();
    expect(await page.getByRole("button", { name: "Terminate", exact: true }).isDisabled()).toBe(true);
  });

  it("sends an event that unblocks a waiting instance", async () => {
    await rt().create("approval", { id: "evt-1" });
    await until(async () => (await status("approval", "evt-1")) === "waiting", "evt-1 to wait");
    await open("/workflows/approval/instances/evt-1");
    const form = page.getByTestId("event-form");
    // The type is suggested from the step that waits.
    await until(
      async () => (await form.getByLabel("Type").inputValue()) === "approved",
      "the suggested type",
    );
    await form.getByLabel("Payload (JSON)").fill('{"by": "ana"}');
    await form.getByRole("button", { name: "Send event" }).click();
    await badge("complete").waitFor();
    const shown = await detail("approval", "evt-1");
    expect(shown.status).toBe("complete");
    expect(shown.output).toMatchObject({ shipped: { shipped: true, by: { by: "ana" } } });
  });

  it("restarts from a chosen step, keeping the results of the steps before it", async () => {
    await rt().create("pipeline", { id: "pipe-1" });
    await until(async () => (await status("pipeline", "pipe-1")) === "complete", "pipe-1 to complete");
    expect([runs.get("pipe-1/a"), runs.get("pipe-1/b"), runs.get("pipe-1/c")]).toEqual([1, 1, 1]);
    await open("/workflows/pipeline/instances/pipe-1");
    await page.locator('button[data-step="b-1"]').click();
    await page.waitForURL(/step=b-1/);
    const inspector = page.getByTestId("inspector");
    await inspector.getByText('"B"').waitFor();
    await inspector.getByRole("button", { name: "Restart from this step" }).click();
    await inspector.getByRole("button", { name: "Confirm restart from b-1" }).click();
    await until(() => runs.get("pipe-1/c") === 2, "c to run again");
    await until(async () => (await status("pipeline", "pipe-1")) === "complete", "pipe-1 to complete again");
    expect([runs.get("pipe-1/a"), runs.get("pipe-1/b"), runs.get("pipe-1/c")]).toEqual([1, 2, 2]);
    await badge("complete").waitFor();
    await page.locator('[data-testid="history"] tr[data-type="workflow_completed"]').waitFor();
  });

  it("refuses bad JSON in the create and send-event forms and sends nothing", async () => {
    await open("/workflows/echo");
    await page.getByRole("button", { name: "New instance" }).click();
    const create = page.getByTestId("create-form");
    await create.getByLabel("Instance id (optional)").fill("bad-json-1");
    await create.getByLabel("Params (JSON)").fill('{"oops": ');
    await create.getByRole("button", { name: "Create instance" }).click();
    await create.getByTestId("form-error").filter({ hasText: "Not valid JSON" }).waitFor();
    expect(await s.cairn.store.instances.get("echo", "bad-json-1")).toBeUndefined();
    // Fixed, it goes through and opens the new instance.
    await create.getByLabel("Params (JSON)").fill('{"ok": true}');
    await create.getByRole("button", { name: "Create instance" }).click();
    await page.waitForURL(/\/workflows\/echo\/instances\/bad-json-1$/);
    await badge("complete").waitFor();
    expect((await detail("echo", "bad-json-1")).params).toEqual({ ok: true });

    await rt().create("approval", { id: "evt-bad" });
    await until(async () => (await status("approval", "evt-bad")) === "waiting", "evt-bad to wait");
    await open("/workflows/approval/instances/evt-bad");
    const form = page.getByTestId("event-form");
    await form.getByLabel("Type").fill("approved");
    await form.getByLabel("Payload (JSON)").fill("{nope");
    await form.getByRole("button", { name: "Send event" }).click();
    await form.getByTestId("event-message").filter({ hasText: "Not valid JSON" }).waitFor();
    await new Promise((r) => setTimeout(r, 300));
    expect(await status("approval", "evt-bad")).toBe("waiting");
    expect(await s.cairn.store.events.list("approval", "evt-bad")).toEqual([]);
  });

  it("pauses and resumes the selected instances of a list together", async () => {
    await rt().createBatch("approval", [{ id: "sel-1" }, { id: "sel-2" }, { id: "sel-3" }]);
    await until(
      async () =>
        (await Promise.all(["sel-1", "sel-2", "sel-3"].map((id) => status("approval", id)))).every(
          (x) => x === "waiting",
        ),
      "sel-* to wait",
    );
    await open("/workflows/approval?q=sel-");
    await page.getByLabel("Select sel-1").check();
    await page.getByLabel("Select sel-3").check();
    expect(await page.getByTestId("selected-count").textContent()).toBe("2 selected");
    await page.getByRole("button", { name: "Pause selected" }).click();
    await until(async () => (await status("approval", "sel-3")) === "paused", "sel-3 paused");
    expect([await status("approval", "sel-1"), await status("approval", "sel-2")]).toEqual([
      "paused",
      "waiting",
    ]);
    await page.locator('tr[data-id="sel-1"] .badge[data-status="paused"]').waitFor();
    await page.getByLabel("Select every instance on this page").check();
    await page.getByRole("button", { name: "Terminate selected" }).click();
    await until(
      async () =>
        (await Promise.all(["sel-1", "sel-2", "sel-3"].map((id) => status("approval", id)))).every(
          (x) => x === "terminated",
        ),
      "sel-* terminated",
    );
  });

  it("shows a step's retries and errors in the timeline and inspector", async () => {
    await rt().create("broken", { id: "broken-1" });
    await until(async () => (await status("broken", "broken-1")) === "errored", "broken-1 to fail");
    await open("/workflows/broken/instances/broken-1?step=validate-1&type=step");
    await page.getByTestId("instance-error").filter({ hasText: "order total must be positive" }).waitFor();
    // Where it happened and the workflow's own frames of the stack.
    await page.getByTestId("instance-error").filter({ hasText: "In step validate-1." }).waitFor();
    await page
      .getByTestId("instance-error-stack")
      .filter({ hasText: /tests\/dashboard\/support\.ts:\d+/ })
      .waitFor();
    await page.getByTestId("step-error").filter({ hasText: "NonRetryableError" }).waitFor();
    await page.locator(".bar.attempt-fail").first().waitFor();
  });
});

describe.skipIf(skip)("dashboard behind a token", () => {
  it("asks for the token when the API answers 401 and keeps it for the session", async () => {
    const { browser, page } = await openPage();
    const s = await serve({ token: "s3cret-token" });
    try {
      await s.cairn.runtime.create("echo", { id: "tok-1" });
      await page.goto(s.dashboard);
      const dialog = page.getByRole("dialog", { name: "API token needed" });
      await dialog.waitFor();
      await dialog.getByLabel("Token").fill("wrong");
      await dialog.getByRole("button", { name: "Continue" }).click();
      await page.getByText("The server refused the token.").waitFor();
      await dialog.getByLabel("Token").fill("s3cret-token");
      await dialog.getByRole("button", { name: "Continue" }).click();
      await page.locator('[data-workflow="echo"]').waitFor();
      expect(await page.evaluate(() => sessionStorage.getItem("cairn.token"))).toBe("s3cret-token");
      // Live updates pass the token to EventSource as ?token=.
      await page.goto(`${s.dashboard}workflows/echo/instances/tok-1`);
      await page.locator('[data-testid="history"] tr[data-type="workflow_completed"]').waitFor();
    } finally {
      await browser.close();
      await s.close();
    }
  }, 30_000);
});
