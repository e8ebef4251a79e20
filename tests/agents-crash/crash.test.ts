/**
 * SIGKILL of a process whose agent drives a workflow: after the restart the agent's state,
 * schedules and tracking rows are intact and the workflow completes and reports to the agent. A
 * crash between the tracking row and the instance's creation never leaves an untracked instance.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const NODE = join(root, "node_modules/.bin/node");
const children = new Set<ChildProcess>();
const dirs: string[] = [];

afterEach(() => {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(dir: string) {
  const proc = spawn(
    NODE,
    ["--conditions=source", "--disable-warning=ExperimentalWarning", join(here, "child.ts"), dir],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  children.add(proc);
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = "";
    proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffer += chunk;
      const line = buffer.split("\n").find((l) => l.includes('"ready"'));
      if (line) resolve(JSON.parse(line).port);
    });
    proc.once("exit", (code) => reject(new Error(`child exited (${code})`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    proc,
    exited,
    get: async (path: string) => (await fetch(`${base}${path}`)).json() as Promise<any>,
    post: (path: string) => fetch(`${base}${path}`, { method: "POST" }),
    kill: async () => {
      proc.kill("SIGKILL");
      await exited;
      children.delete(proc);
    },
  };
}

async function until<T>(check: () => Promise<T>, what: string): Promise<T> {
  for (let i = 0; i < 1500; i++) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The agent's tracking rows, read from its SQLite file while no process runs. */
function trackingRows(dir: string): unknown[] {
  const folder = join(dir, "do", "Keeper");
  const file = readdirSync(folder).find((f) => f.endsWith(".sqlite"))!;
  const db = new DatabaseSync(join(folder, file));
  try {
    return db
      .prepare("SELECT workflow_id, status FROM cf_agents_workflows")
      .all()
      .map((r) => ({ ...r }));
  } finally {
    db.close();
  }
}

const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "cairn-agents-crash-"));
  dirs.push(d);
  return d;
};

describe("SIGKILL of an agent driving a workflow", () => {
  it("keeps state, schedules and tracking rows; the workflow completes and reports after the restart", async () => {
    const dir = tempDir();
    const first = await start(dir);
    expect(await (await first.post("/setup?id=wf_crash")).json()).toBe("wf_crash");
    await until(
      async () => (await first.get("/inspect")).workflows[0]?.status === "running",
      "the first progress report",
    );
    await first.kill();

    const second = await start(dir);
    const after = await second.get("/inspect");
    expect(after.state).toEqual({ phase: "started" });
    expect(after.schedules.sort((a: any, b: any) => a.type.localeCompare(b.type))).toEqual([
      { type: "cron", callback: "nightly" },
      { type: "interval", callback: "hourly" },
    ]);
    expect(after.workflows).toEqual([{ id: "wf_crash", status: "running", metadata: { by: "test" } }]);
    expect(after.completions).toEqual([]);
    const done = await until(async () => {
      const s = await second.get("/inspect");
      return s.completions.length > 0 ? s : undefined;
    }, "the completion report");
    expect(done.completions).toEqual([{ workflow_id: "wf_crash", result: '"crash-1-2"' }]);
    expect(done.workflows).toEqual([{ id: "wf_crash", status: "complete", metadata: { by: "test" } }]);
    expect(done.state).toEqual({ phase: "done" });
  }, 60_000);

  it("a crash after the tracking row but before the instance exists leaves no row; after it, the row is kept", async () => {
    const dir = tempDir();
    const first = await start(dir);
    await first.post("/crash-before-create?id=wf_never").catch(() => {});
    await first.exited;
    children.delete(first.proc);
    // The row was committed before the instance was to be created.
    expect(trackingRows(dir)).toEqual([{ workflow_id: "wf_never", status: "pending" }]);
    const second = await start(dir);
    // Reconciled at load: no instance wf_never, so no row (and no instance either).
    expect((await second.get("/inspect")).workflows).toEqual([]);
    await second.post("/crash-after-create?id=wf_made").catch(() => {});
    await second.exited;
    children.delete(second.proc);
    const third = await start(dir);
    const rows = (await third.get("/inspect")).workflows;
    expect(rows.map((r: any) => r.id)).toEqual(["wf_made"]);
    expect(rows[0].status).not.toBe("pending");
    await until(async () => (await third.get("/inspect")).completions.length === 1, "wf_made completing");
  }, 60_000);
});
