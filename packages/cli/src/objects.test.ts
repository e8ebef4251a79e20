/** `cairn objects list|sql` and the `/api/v1/objects` routes, against a real Cairn with a Durable Object. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Cairn, createCairn } from "@cairn/engine";
import { DurableObject } from "@cairn/objects";
import { createApi } from "@cairn/server";
import { afterEach, describe, expect, it } from "vitest";
import type { CliIo } from "./context.ts";
import { EXIT_ERROR, EXIT_OK, run } from "./main.ts";

class Notes extends DurableObject {
  add(text: string): number {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)");
    this.ctx.storage.sql.exec("INSERT INTO notes (text) VALUES (?)", text);
    this.ctx.storage.kv.put("last", { text, at: new Date(0) });
    return this.ctx.storage.sql.exec("SELECT count(*) AS n FROM notes").one().n as number;
  }
  async remind(at: number): Promise<void> {
    await this.ctx.storage.setAlarm(at);
  }
}

let cairn: Cairn | undefined;
let dir: string | undefined;
afterEach(async () => {
  await cairn?.close();
  cairn = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function setup() {
  dir = mkdtempSync(join(tmpdir(), "cairn-cli-objects-"));
  cairn = await createCairn({ store: join(dir, "cairn.db"), objects: [{ binding: "NOTES", class: Notes }] });
  const app = createApi({ runtime: cairn.runtime, objects: cairn.objects });
  const notes = (cairn.env as any).NOTES;
  await notes.getByName("alice").add("first");
  await notes.getByName("alice").add("second");
  await notes.getByName("bob").add("hello");
  await notes.getByName("bob").remind(Date.parse("2030-01-01T00:00:00Z"));
  return { app, notes };
}

async function cli(argv: string[], app: { fetch(r: Request): Response | Promise<Response> }) {
  let stdout = "";
  let stderr = "";
  const io: Partial<CliIo> = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: {},
    fetch: (r) => app.fetch(r),
    utc: true,
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

describe("Durable Objects operations", () => {
  it("the API lists namespaces and objects and shows one object's KV, tables and alarm", async () => {
    const { app, notes } = await setup();
    const get = async (path: string) => ((await (await app.request(`/api/v1${path}`)).json()) as any).result;
    expect(await get("/objects")).toEqual([{ binding: "NOTES", className: "Notes", objects: 2, loaded: 2 }]);
    const list = await get("/objects/NOTES");
    expect(list.objects.map((o: any) => o.name).sort()).toEqual(["alice", "bob"]);
    const bob = await get("/objects/NOTES/bob");
    expect(bob.id).toBe(notes.idFromName("bob").toString());
    expect(bob.alarm).toBe(Date.parse("2030-01-01T00:00:00Z"));
    expect(bob.kv).toEqual([{ key: "last", value: { text: "hello", at: "1970-01-01T00:00:00.000Z" } }]);
    expect(bob.tables).toEqual([{ name: "notes", columns: ["id", "text"], rows: [[1, "hello"]], count: 1 }]);
    expect(bob.sizeBytes).toBeGreaterThan(0);
    expect((await app.request("/api/v1/objects/NOPE")).status).toBe(404);
    expect((await app.request("/api/v1/objects/NOTES/carol")).status).toBe(404);
  });

  it("cairn objects list and sql (read-only unless --write)", async () => {
    const { app, notes } = await setup();
    const ns = await cli(["objects", "list"], app);
    expect(ns.code).toBe(EXIT_OK);
    expect(ns.stdout).toMatch(/NOTES\s+Notes\s+2\s+2/);
    const list = await cli(["objects", "list", "NOTES"], app);
    expect(list.stdout).toContain(notes.idFromName("alice").toString());
    expect(list.stdout).toMatch(/bob .*2030-01-01/);
    const sql = await cli(["objects", "sql", "NOTES", "alice", "SELECT text FROM notes ORDER BY id"], app);
    expect(sql.code).toBe(EXIT_OK);
    expect(sql.stdout).toBe("text\n------\nfirst\nsecond\n(2 rows)\n");
    const refused = await cli(["objects", "sql", "NOTES", "alice", "DELETE FROM notes"], app);
    expect(refused.code).toBe(EXIT_ERROR);
    expect(refused.stderr).toMatch(/readonly|read-only/i);
    const bad = await cli(["objects", "sql", "NOTES", "alice", "SELECT * FROM missing"], app);
    expect(bad.stderr).toMatch(/no such table: missing.*query: SELECT \* FROM missing/);
    const write = await cli(
      ["objects", "sql", "NOTES", "alice", "DELETE FROM notes WHERE id = 1", "--write"],
      app,
    );
    expect(write.stdout).toBe("OK (1 rows written)\n");
    expect(await notes.getByName("alice").add("third")).toBe(2);
  });
});
