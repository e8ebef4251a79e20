/**
 * A step that kills the process (it allocates until V8's heap limit aborts it) must not crash-loop
 * the server: the attempt in flight counts as failed on recovery, retries run out, and the other
 * instances the crashes interrupted still complete.
 *
 * Each test runs `oom-worker.ts` under `node --max-old-space-size=32` on one SQLite file, starting it
 * again each time it dies (as a supervisor would), until it reports every instance ended.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import type { OomWorkerConfig } from "./oom-worker.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const NODE = join(root, "node_modules/.bin/node");
const WORKER = join(here, "oom-worker.ts");

const PG_URL = process.env.CAIRN_TEST_POSTGRES_URL;
if (!PG_URL && process.env.CAIRN_REQUIRE_POSTGRES === "1")
  throw new Error("CAIRN_TEST_POSTGRES_URL is not set, and CAIRN_REQUIRE_POSTGRES=1 requires it");

const dirs: string[] = [];
const schemas: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (schemas.length === 0) return;
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  for (const s of schemas.splice(0)) await db.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await db.end();
});

/** A fresh schema's URL on the test server (dropped after the test). */
function postgresSchemaUrl(): string {
  const schema = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  schemas.push(schema);
  const url = new URL(PG_URL!);
  url.searchParams.set("schema", schema);
  return url.toString();
}

interface Life {
  code: number | null;
  signal: string | null;
  final?: { id: string; status: string; error: { name: string; message: string } | null }[];
  stderr: string;
}

/** One life of the worker process: until it exits (cleanly with `final`, or killed by its heap). */
function live(config: OomWorkerConfig): Promise<Life> {
  return new Promise((done) => {
    const child = spawn(
      NODE,
      [
        "--max-old-space-size=32",
        "--conditions=source",
        "--disable-warning=ExperimentalWarning",
        WORKER,
        JSON.stringify(config),
      ],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("exit", (code, signal) => {
      const lines = out
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as { event: string; rows?: Life["final"] });
      done({ code, signal, final: lines.find((l) => l.event === "final")?.rows, stderr: stderr.slice(-500) });
    });
  });
}

/** Runs the worker again after every death, up to `maxLives` times; returns every life. */
async function supervise(
  config: Omit<OomWorkerConfig, "dir" | "url">,
  store: "SQLite" | "PostgreSQL",
  maxLives: number,
): Promise<Life[]> {
  const dir = mkdtempSync(join(tmpdir(), "cairn-oom-"));
  dirs.push(dir);
  const url = store === "PostgreSQL" ? postgresSchemaUrl() : undefined;
  const lives: Life[] = [];
  while (lives.length < maxLives) {
    const life = await live({ ...config, dir, ...(url ? { url } : {}) });
    lives.push(life);
    if (life.final) break;
  }
  return lives;
}

const stores: ("SQLite" | "PostgreSQL")[] = PG_URL ? ["SQLite", "PostgreSQL"] : ["SQLite"];
if (!PG_URL) console.warn("Skipping the PostgreSQL out-of-memory tests: CAIRN_TEST_POSTGRES_URL is not set");

describe.each(stores)("on %s, a step that runs the process out of memory", (store) => {
  it.each([
    // A timer fires between allocations: the attempt is marked as started after a few ms.
    ["yields to the event loop", "async" as const, 3],
    // It never yields: the attempt is only marked when run right after a crash, before the callback.
    ["never yields", "sync" as const, 4],
  ])(
    "that %s is failed after three lost attempts in a row; the other instances complete",
    async (_what, mode, crashes) => {
      const lives = await supervise({ mode, limit: 5, bystanders: 4 }, store, 8);
      const deaths = lives.filter((l) => !l.final);
      // Every death was the heap limit, not something else.
      for (const d of deaths) expect(d.stderr + d.signal).toMatch(/heap limit|out of memory|SIGABRT/i);
      expect(deaths).toHaveLength(crashes);
      const final = lives.at(-1)!.final!;
      const hog = final.find((r) => r.id === "hog")!;
      expect(hog.status).toBe("errored");
      expect(hog.error?.name).toBe("AttemptLostError");
      expect(hog.error?.message).toContain('Attempt 3 of step "eat" did not finish');
      expect(hog.error?.message).toContain("3 attempts in a row were lost. The step is not tried again");
      expect(final.filter((r) => r.id !== "hog").map((r) => r.status)).toEqual(Array(4).fill("complete"));
    },
  );

  it("with retries.limit 0 is failed after its one attempt is lost", async () => {
    const lives = await supervise({ mode: "async", limit: 0, bystanders: 2 }, store, 5);
    expect(lives.filter((l) => !l.final)).toHaveLength(1);
    const hog = lives.at(-1)!.final!.find((r) => r.id === "hog")!;
    expect(hog).toMatchObject({ status: "errored", error: { name: "AttemptLostError" } });
    expect(hog.error?.message).toContain('Attempt 1 of step "eat" did not finish');
  });
});
