import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCairn } from "@cairn/engine";
import { afterEach, describe, expect, it } from "vitest";
import { Echo } from "../test/support.ts";
import { createApi } from "./app.ts";
import { startServer } from "./server.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function open() {
  const dir = mkdtempSync(join(tmpdir(), "cairn-health-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const cairn = await createCairn({
    store: join(dir, "cairn.db"),
    workflows: [{ binding: "ECHO", name: "echo", class: Echo }],
  });
  return cairn;
}

describe("GET /api/v1/health", () => {
  it("answers 200 with the store kind and version, over HTTP and without the token", async () => {
    const cairn = await open();
    cleanup.push(() => cairn.close());
    const server = await startServer({ app: createApi({ runtime: cairn.runtime, token: "t0ken" }), port: 0 });
    cleanup.push(() => server.close());
    const res = await fetch(`${server.url}/api/v1/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: "ok",
      store: "sqlite",
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
    });
    // Everything else still needs the token, including paths that end like the open ones.
    expect((await fetch(`${server.url}/api/v1/workflows`)).status).toBe(401);
    expect((await fetch(`${server.url}/api/v1/workflows/echo/instances/health`)).status).toBe(401);
    expect((await fetch(`${server.url}/api/v1/workflows/echo/instances/openapi.json`)).status).toBe(401);
  });

  it("answers 503 when the store cannot be reached", async () => {
    const cairn = await open();
    const app = createApi({ runtime: cairn.runtime, log: () => {} });
    await cairn.store.close();
    const res = await app.request("/api/v1/health");
    expect(res.status).toBe(503);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: "unavailable", store: "sqlite" });
    expect(body.error).toMatch(/the store cannot be reached/);
    await cairn.runtime.close().catch(() => {});
  });
});
