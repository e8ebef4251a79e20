/**
 * A foreign web page in real Chromium against a token-less Cairn on loopback: it must not be able to
 * create, signal or delete instances (cross-site form and `fetch` posts), nor reach the server by
 * pointing its own name at 127.0.0.1 (DNS rebinding, simulated with Chromium's host resolver rules).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  browserMissing,
  CHROMIUM,
  CHROMIUM_FLAGS,
  type Served,
  serve,
  skipBrowserTests,
  until,
} from "./support.ts";

const skip = skipBrowserTests("the cross-site browser tests");

/** The attacker's page: what https://evil.example could serve, here from http://localhost:<other port>. */
function attackerPage(api: string): string {
  const body = (s: string) => JSON.stringify(s);
  return `<!doctype html><html><body>
<form id="create" method="POST" enctype="text/plain" action="${api}/workflows/echo/instances">
  <input name='{"instance_id":"csrf-form","params":{"x":"' value='"}}'>
</form>
<script>
  async function attack() {
    const sent = [];
    for (const [url, text] of [
      [${body(`${api}/workflows/echo/instances`)}, '{"instance_id":"csrf-fetch"}'],
      [${body(`${api}/workflows/approval/instances/victim/events/approved`)}, '{"by":"evil"}'],
      [${body(`${api}/workflows/echo/instances/batch/delete`)}, '{"instances":["kept"]}'],
    ]) {
      try {
        await fetch(url, { method: "POST", mode: "no-cors", body: text });
        sent.push("sent");
      } catch (e) {
        sent.push(String(e));
      }
    }
    let read;
    try {
      read = await (await fetch(${body(`${api}/workflows`)})).text();
    } catch (e) {
      read = "blocked: " + e;
    }
    return { sent, read };
  }
</script></body></html>`;
}

describe.skipIf(skip)("a foreign page in Chromium", () => {
  let s: Served;
  let evil: Server;
  let evilUrl: string;
  let browser: Browser;
  /** Requests the API received, with the browser's origin headers. */
  const seen: { path: string; origin?: string; site?: string }[] = [];

  beforeAll(async () => {
    const missing = browserMissing();
    if (missing) throw new Error(missing);
    s = await serve();
    const api = `${s.url}/api/v1`;
    evil = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(attackerPage(api));
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", () => r()));
    // localhost vs 127.0.0.1: another site, as a page on the web would be.
    evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}/`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_FLAGS, "--host-resolver-rules=MAP rebound.test 127.0.0.1"],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => evil?.close(r));
    await s?.close();
  });

  it("cannot create, signal or delete instances with cross-site posts", async () => {
    const rt = s.cairn.runtime;
    await rt.create("echo", { id: "kept" });
    await rt.create("approval", { id: "victim" });
    await until(async () => (await rt.instance("approval", "victim")).status === "waiting", "victim to wait");
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("request", (r) => {
      if (r.url().startsWith(s.url))
        seen.push({
          path: new URL(r.url()).pathname,
          origin: r.headers().origin,
          site: r.headers()["sec-fetch-site"],
        });
    });
    await page.goto(evilUrl);
    const result = (await page.evaluate("attack()")) as { sent: string[]; read: string };
    expect(result.sent).toEqual(["sent", "sent", "sent"]);
    expect(result.read).toMatch(/^blocked: TypeError/);
    // The form navigates to the API's answer.
    await Promise.all([
      page.waitForURL(`${s.url}/api/v1/workflows/echo/instances`),
      page.locator("#create").evaluate((f) => (f as HTMLFormElement).submit()),
    ]);
    const answer = JSON.parse((await page.locator("body").textContent()) ?? "null");
    expect(answer.errors[0].code).toBe("forbidden");
    await context.close();

    expect(seen.filter((r) => r.path.endsWith("/instances")).length).toBeGreaterThanOrEqual(2);
    await rt.whenIdle();
    expect(await s.cairn.store.instances.get("echo", "csrf-form")).toBeUndefined();
    expect(await s.cairn.store.instances.get("echo", "csrf-fetch")).toBeUndefined();
    expect(await s.cairn.store.instances.get("echo", "kept")).toBeDefined();
    expect((await rt.instance("approval", "victim")).status).toBe("waiting");
  });

  it("cannot reach the server under a name that resolves to 127.0.0.1 (DNS rebinding)", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const rebound = `http://rebound.test:${s.server.port}`;
    for (const path of ["/_cairn/", "/api/v1/workflows"]) {
      const res = await page.goto(`${rebound}${path}`);
      expect(res?.status(), path).toBe(403);
      expect(await page.locator("body").textContent()).toContain('Host \\"rebound.test');
    }
    // The dashboard on its own origin still loads and reads the API.
    await page.goto(`${s.url}/_cairn/`);
    await page.locator('[data-workflow="echo"]').waitFor();
    await context.close();
  });
});
