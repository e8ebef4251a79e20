/** `cairn migrate --store postgres://…`: creates the schema, and refuses one newer than the code. */
import { run } from "@cairn/cli/main";
import { LATEST_VERSION } from "@cairn/store-postgres";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene } from "./harness.ts";

const base = postgresUrl("the scale-out tests");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

async function cli(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}

describe.skipIf(!base)("cairn migrate", () => {
  it("migrates a new schema, is idempotent, and exits 1 on a schema newer than the code", async () => {
    scene = new Scene(base!);
    const first = await cli(["migrate", "--store", scene.url]);
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout).toContain(`"${scene.schema}" is at version ${LATEST_VERSION}`);
    expect((await cli(["migrate", "--store", scene.url, "--json"])).code).toBe(0);
    const tables = await scene.query("SELECT tablename FROM pg_tables WHERE schemaname = $1", [scene.schema]);
    expect(tables.map((t) => t.tablename).sort()).toEqual([
      "cairn_migrations",
      "do_changesets",
      "do_migrations",
      "do_namespaces",
      "do_objects",
      "do_snapshots",
      "events",
      "history",
      "instances",
      "schedules",
      "step_chunks",
      "steps",
    ]);

    await scene.query("INSERT INTO $S.cairn_migrations VALUES ($1, 'from the future', 0)", [
      LATEST_VERSION + 1,
    ]);
    const newer = await cli(["migrate", "--store", scene.url]);
    expect(newer.code).toBe(1);
    expect(newer.stderr).toContain(
      `has schema version ${LATEST_VERSION + 1}, newer than this version of Cairn`,
    );
    // A worker refuses to start on it too.
    const w = scene.start("w1").catch((e: Error) => e);
    expect(String(await w)).toMatch(/fatal.*newer than this version of Cairn/);
  });

  it("needs a postgres:// URL", async () => {
    expect((await cli(["migrate"])).code).toBe(2);
    expect((await cli(["migrate", "--store", "./x.db"])).code).toBe(2);
  });
});
