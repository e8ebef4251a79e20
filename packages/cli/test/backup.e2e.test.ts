/**
 * End to end: `cairn backup` copies the SQLite store of a running `cairn start` (another process,
 * writing all along) into a file that opens as a whole store.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@cairn/client";
import { openSqliteStore } from "@cairn/store-sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCli, cairn, cairnServer } from "./helpers.ts";

let dir: string;
let out: string;

beforeAll(async () => {
  await buildCli();
  dir = mkdtempSync(join(tmpdir(), "cairn-backup-"));
  out = mkdtempSync(join(tmpdir(), "cairn-backup-out-"));
  writeFileSync(
    join(dir, "wrangler.json"),
    JSON.stringify({
      name: "b",
      main: "index.ts",
      workflows: [{ binding: "W", name: "w", class_name: "W" }],
    }),
  );
  writeFileSync(
    join(dir, "index.ts"),
    `import { WorkflowEntrypoint } from "cloudflare:workers";
     export class W extends WorkflowEntrypoint {
       async run(event, step) { return await step.do("one", async () => event.payload); }
     }`,
  );
}, 180_000);

afterAll(() => {
  for (const d of [dir, out]) if (d) rmSync(d, { recursive: true, force: true });
});

describe("cairn backup", () => {
  it("copies the store of a running server while it writes; the copy opens with every instance it reports", async () => {
    const store = join(dir, "state", "cairn.db");
    const server = cairnServer(["start", dir, "--port", "0", "--store", store, "--json"]);
    try {
      const url = await server.ready;
      const api = createClient({ url });
      for (let i = 0; i < 50; i++) await api.createInstance("w", { instance_id: `before-${i}`, params: i });
      // Keep writing while the backup runs.
      let writing = true;
      const writer = (async () => {
        for (let i = 0; writing; i++)
          await api.createInstance("w", { instance_id: `during-${i}`, params: i });
      })();
      const file = join(out, "backup.db");
      const r = await cairn(["backup", file, "--store", store, "--json"]);
      writing = false;
      await writer;
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as { path: string; bytes: number; instances: number };
      expect(result.path).toBe(file);
      expect(result.instances).toBeGreaterThanOrEqual(50);
      expect(readdirSync(out)).toEqual(["backup.db"]); // one file: no -wal, no partial copy

      const copy = await openSqliteStore({ path: file });
      try {
        const page = await copy.instances.list({ workflow: "w", limit: 1000 });
        expect(page.items.length).toBe(result.instances);
        expect(page.items.filter((i) => i.id.startsWith("before-")).length).toBe(50);
      } finally {
        await copy.close();
      }

      const again = await cairn(["backup", file, "--store", store]);
      expect(again.code).toBe(1);
      expect(again.stderr).toBe(`✘ ${file} already exists (pass --force to overwrite it)\n`);
      const forced = await cairn(["backup", file, "--store", store, "--force"]);
      expect(forced.code, forced.stderr).toBe(0);
      expect(forced.stdout).toMatch(/^✓ Backed up \d+ instances to .*backup\.db \(\d+ bytes\)\n$/);
    } finally {
      await server.stop();
    }
  }, 90_000);

  it("refuses what it cannot back up, and creates nothing", async () => {
    const missing = await cairn(["backup", join(out, "x.db"), "--store", join(dir, "nope.db")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`✘ No SQLite store at ${join(dir, "nope.db")}\n`);
    expect(existsSync(join(out, "x.db"))).toBe(false);
    const pg = await cairn(["backup", join(out, "x.db"), "--store", "postgres://u@h/db"]);
    expect(pg.code).toBe(2);
    expect(pg.stderr).toContain("back up a PostgreSQL store with pg_dump");
  });
});
