import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { copyStarter, makeProject, removeProject, STUB_SERVER, waitFor } from "../fixtures/helpers.ts";
import { type DevServer, runDev } from "./dev.ts";

// The child process imports the server module natively; the stub keeps this test independent of
// whether @cairn/server's dist is built (host.test.ts covers the real server).
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const post = (url: string, body?: unknown) =>
  fetch(url, {
    method: "POST",
    ...(body ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {}),
  }).then((r) => r.json() as Promise<any>);
const status = (dev: DevServer, id: string) =>
  fetch(`${dev.url}/?instanceId=${id}`).then(async (r) => ((await r.json()) as any).status);
const completed = (dev: DevServer, id: string) =>
  waitFor(async () => {
    const s = await status(dev, id);
    return s.status === "complete" ? s.output : undefined;
  }, `instance ${id} to complete`);

async function start(dir: string) {
  const lines: string[] = [];
  const output: string[] = [];
  const dev = await runDev(dir, {
    port: 0,
    server: STUB_SERVER,
    log: (l) => lines.push(l),
    output: (c) => output.push(c),
    debounceMs: 50,
  });
  cleanup.push(() => dev.close());
  return { dev, lines, output };
}

describe("runDev", () => {
  it("reloads on a source change; new and in-flight instances use the new code", async () => {
    const dir = copyStarter();
    cleanup.push(() => removeProject(dir));
    const { dev, lines } = await start(dir);
    expect(dev.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines[0]).toBe(`Cairn dev: cloudflare-starter (my-workflow) ready on ${dev.url}`);
    expect(lines).toContain("  workflow   env.MY_WORKFLOW → my-workflow (class MyWorkflow)");
    expect(lines).toContain("  vars       env.GREETING, env.APPROVAL_THRESHOLD");
    expect(lines).toContain(`  store      SQLite ${join(dir, ".cairn", "cairn.db")}`);
    expect(lines).toContain(`  dashboard  ${dev.url}/_cairn/`);
    expect(lines).toContain(`  API        ${dev.url}/api/v1`);
    const firstPid = dev.pid;

    // An instance that will wait for approval, in flight across the reload.
    const inflight = await post(`${dev.url}/`, { customer: "Ada", amount: 500 });
    const before = await post(`${dev.url}/`, { customer: "Bo", amount: 5 });
    expect((await completed(dev, before.id)).message).toBe("Hello, Bo: receipt for 5");

    const file = join(dir, "src/index.ts");
    writeFileSync(file, readFileSync(file, "utf8").replace("receipt for", "invoice for"));
    await waitFor(() => lines.find((l) => l.startsWith("Cairn dev: reloaded")), "the reload");
    expect(lines).toContain("Cairn dev: src/index.ts changed, reloading");
    expect(dev.pid).not.toBe(firstPid);

    const after = await post(`${dev.url}/`, { customer: "Cy", amount: 7 });
    expect((await completed(dev, after.id)).message).toBe("Hello, Cy: invoice for 7");

    await waitFor(async () => (await post(`${dev.url}/approve?instanceId=${inflight.id}`)).id, "approval");
    expect(await completed(dev, inflight.id)).toMatchObject({
      message: "Hello, Ada: invoice for 500",
      approvedBy: "admin",
    });
  }, 60_000);

  it("ignores changes under .cairn/ and node_modules/", async () => {
    const dir = copyStarter();
    cleanup.push(() => removeProject(dir));
    const { dev, lines } = await start(dir);
    const pid = dev.pid;
    const shown = lines.length;
    writeFileSync(join(dir, ".cairn", "note.txt"), "x");
    await new Promise((r) => setTimeout(r, 400));
    expect(dev.pid).toBe(pid);
    expect(lines).toHaveLength(shown);
  });

  it("a SIGKILLed child leaves its instance to continue after the restart", async () => {
    const dir = copyStarter();
    cleanup.push(() => removeProject(dir));
    const { dev, lines } = await start(dir);
    const { id } = await post(`${dev.url}/`, { customer: "Dee", amount: 300 });
    // Mid-workflow: in the retry backoff or the sleep.
    await waitFor(async () => ((await status(dev, id)).status === "waiting" ? true : undefined), "waiting");
    process.kill(dev.pid!, "SIGKILL");
    await waitFor(
      () => lines.find((l) => l.includes("exited (SIGKILL); waiting for changes")),
      "the crash notice",
    );
    expect(dev.pid).toBeUndefined();
    await dev.restart();
    expect(dev.pid).toBeDefined();
    await waitFor(async () => (await post(`${dev.url}/approve?instanceId=${id}`)).id, "approval");
    expect(await completed(dev, id)).toMatchObject({ message: "Hello, Dee: receipt for 300" });
  }, 60_000);

  it("serves the error when the first start fails to load, and the project once it is fixed", async () => {
    const broken = makeProject({ "wrangler.json": JSON.stringify({ main: "index.ts", workflows: [] }) });
    cleanup.push(() => removeProject(broken));
    const first = await start(broken);
    expect(first.lines[0]).toBe(
      `✘ ${join(broken, "wrangler.json")}: workflows: needs at least one entry in "workflows"`,
    );
    const res = await fetch(`${first.dev.url}/`);
    expect(res.status).toBe(500);
    expect(await res.text()).toContain('workflows: needs at least one entry in "workflows"');

    const dir = copyStarter();
    cleanup.push(() => removeProject(dir));
    const { dev, lines } = await start(dir);
    const file = join(dir, "src/index.ts");
    const good = readFileSync(file, "utf8");
    writeFileSync(file, good.replace("export class MyWorkflow", "class MyWorkflow"));
    await waitFor(() => lines.find((l) => l.includes('does not export "MyWorkflow"')), "the failure notice");
    writeFileSync(file, good);
    await waitFor(() => lines.find((l) => l.startsWith("Cairn dev: reloaded")), "the reload after the fix");
    const { id } = await post(`${dev.url}/`, { customer: "Eve", amount: 1 });
    expect((await completed(dev, id)).message).toBe("Hello, Eve: receipt for 1");
  }, 60_000);
});
