// A project written for Cloudflare's Sandbox SDK (`@cloudflare/sandbox`, wrangler containers[] and
// a Durable Object binding), unchanged, under `cairn dev`: real jails behind the project's fetch.
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli, cairn, cairnServer } from "../../packages/cli/test/helpers.ts";

let dir: string;
let server: ReturnType<typeof cairnServer>;
let url: string;

beforeAll(async () => {
  await buildCli();
  dir = mkdtempSync(join(tmpdir(), "cairn-sandbox-project-"));
  cpSync(join(import.meta.dirname, "fixtures", "cloudflare-project"), dir, { recursive: true });
  server = cairnServer(["dev", dir, "--port", "0", "--json"]);
  url = await server.ready;
}, 180_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a Cloudflare Sandbox SDK project under cairn dev", () => {
  it("runs commands in a jail", async () => {
    const res = await fetch(new URL("/run?id=e2e", url));
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ success: true, exitCode: 0, stdout: "42\nuser\n" });
  });

  it("writes, reads and lists files; the workspace is under the project's .cairn", async () => {
    const res = await fetch(new URL("/files?id=e2e", url));
    expect(await res.json()).toEqual({ content: "Hello, sandbox!", list: ["hello.txt"] });
    expect(existsSync(join(dir, ".cairn", "sandboxes", "e2e", "workspace", "hello.txt"))).toBe(true);
  });

  it("streams events", async () => {
    const res = await fetch(new URL("/stream?id=e2e", url));
    const types = (await res.json()) as string[];
    expect(types[0]).toBe("start");
    expect(types.at(-1)).toBe("complete");
    expect(new Set(types.slice(1, -1))).toEqual(new Set(["stdout"]));
  });

  it("gives ctx.container to a Durable Object class bound in containers[] (1.0 style)", async () => {
    const res = await fetch(new URL("/container", url));
    expect(await res.json()).toEqual({ stdout: "argv0 in /\n", exitCode: 5, running: true });
  });

  it("the server's API lists the project's sandboxes and runs commands in them (the project's process)", async () => {
    const list = await fetch(new URL("/api/v1/sandboxes", url));
    expect(list.status).toBe(200);
    const sandboxes = (await list.json()).result as { id: string; state: string; driver: string }[];
    expect(sandboxes.find((s) => s.id === "e2e")).toMatchObject({ state: "running", driver: "bwrap" });
    const exec = await fetch(new URL("/api/v1/sandboxes/e2e/exec", url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: "cat hello.txt" }),
    });
    expect(exec.status).toBe(200);
    expect((await exec.json()).result).toMatchObject({ exitCode: 0, stdout: "Hello, sandbox!" });
  });

  it("warns that the Dockerfile image is not built, and destroy() removes the sandbox", async () => {
    expect(server.output().stderr + server.output().stdout).toMatch(
      /image "\.\/Dockerfile" is not built by Cairn/,
    );
    expect(await (await fetch(new URL("/destroy?id=e2e", url))).text()).toBe("destroyed");
    expect(existsSync(join(dir, ".cairn", "sandboxes", "e2e"))).toBe(false);
  });

  it("cairn sandbox check, list and destroy", async () => {
    const check = await cairn(["sandbox", "check", "--json"]);
    expect(check.code).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ ok: true, driver: "bwrap" });
    await fetch(new URL("/run?id=other", url));
    const list = JSON.parse((await cairn(["sandbox", "list", dir, "--json"])).stdout) as {
      id: string;
      running: boolean;
      pid?: number;
    }[];
    const other = list.find((s) => s.id === "other");
    expect(other?.running).toBe(true);
    const destroyed = await cairn(["sandbox", "destroy", "other", dir]);
    expect(destroyed.stdout).toBe("Destroyed sandbox other (its jail was stopped).\n");
    expect(existsSync(join(dir, ".cairn", "sandboxes", "other"))).toBe(false);
    const missing = await cairn(["sandbox", "destroy", "other", dir]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/sandbox.not_running/);
  });
});
