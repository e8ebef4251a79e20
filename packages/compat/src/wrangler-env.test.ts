import { describe, expect, it } from "vitest";
import { parseWranglerConfig, WranglerConfigError } from "./wrangler.ts";

const workflow = { binding: "MY_WORKFLOW", name: "my-workflow", class_name: "MyWorkflow" };
const json = (value: unknown) => JSON.stringify(value, null, 2);

describe("unsupported wrangler sections", () => {
  it("are named in one warning line each, with the bindings that will be undefined", () => {
    const config = parseWranglerConfig(
      json({
        main: "index.ts",
        workflows: [workflow],
        kv_namespaces: [
          { binding: "CACHE", id: "x" },
          { binding: "SESSIONS", id: "y" },
        ],
        d1_databases: [{ binding: "DB", database_name: "d", database_id: "i" }],
        r2_buckets: [{ binding: "FILES", bucket_name: "b" }],
        ai: { binding: "AI" },
        queues: { producers: [{ binding: "JOBS", queue: "q" }] },
        assets: { directory: "./public" },
        triggers: { crons: ["*/5 * * * *"] },
      }),
      "/p/wrangler.json",
    );
    expect(config.warnings).toEqual([
      "wrangler.json: kv_namespaces (KV namespaces) is not supported by Cairn; env.CACHE, env.SESSIONS will be undefined",
      "wrangler.json: d1_databases (D1 databases) is not supported by Cairn; env.DB will be undefined",
      "wrangler.json: r2_buckets (R2 buckets) is not supported by Cairn; env.FILES will be undefined",
      "wrangler.json: ai (Workers AI) is not supported by Cairn; env.AI will be undefined",
      "wrangler.json: queues (Queues) is not supported by Cairn; it is ignored",
      "wrangler.json: assets (static assets) is not supported by Cairn; it is ignored",
    ]);
    expect(config.crons).toEqual(["*/5 * * * *"]);
  });

  it("leave durable_objects and migrations alone, and warn about nothing in a plain config", () => {
    const config = parseWranglerConfig(
      json({
        main: "index.ts",
        workflows: [workflow],
        durable_objects: { bindings: [{ name: "COUNTER", class_name: "Counter" }] },
        migrations: [{ tag: "v1", new_sqlite_classes: ["Counter"] }],
        compatibility_date: "2025-09-01",
      }),
      "/p/wrangler.json",
    );
    expect(config.warnings).toEqual([]);
  });
});

describe("wrangler environments (--env)", () => {
  const text = json({
    name: "shop",
    main: "src/index.ts",
    workflows: [workflow],
    vars: { GREETING: "hello" },
    env: {
      staging: {
        workflows: [{ ...workflow, name: "my-workflow-staging" }],
        vars: { GREETING: "hello from staging" },
      },
      bare: { workflows: [workflow] },
      lost: { vars: { A: "1" } },
    },
  });

  it("select env.<name>: its bindings, the top level's inheritable keys, and the name <name>-<env>", () => {
    expect(parseWranglerConfig(text, "/p/wrangler.json")).toMatchObject({
      name: "shop",
      vars: { GREETING: "hello" },
      workflows: [workflow],
    });
    const staging = parseWranglerConfig(text, "/p/wrangler.json", { env: "staging" });
    expect(staging).toMatchObject({
      name: "shop-staging",
      main: "src/index.ts",
      env: "staging",
      vars: { GREETING: "hello from staging" },
      workflows: [{ ...workflow, name: "my-workflow-staging" }],
      warnings: [],
    });
  });

  it("do not inherit vars (with a warning) nor workflows (an error)", () => {
    const bare = parseWranglerConfig(text, "/p/wrangler.json", { env: "bare" });
    expect(bare.vars).toEqual({});
    expect(bare.warnings).toEqual([
      'wrangler.json: "vars" exists at the top level but not in env.bare; environments do not inherit it, so env.bare has none',
    ]);
    expect(() => parseWranglerConfig(text, "/p/wrangler.json", { env: "lost" })).toThrow(
      '/p/wrangler.json: env.lost has no "workflows": environments do not inherit them from the top level (as in wrangler); copy them into env.lost',
    );
  });

  it("an unknown environment is an error naming the ones there are", () => {
    expect(() => parseWranglerConfig(text, "/p/wrangler.json", { env: "prod" })).toThrow(
      new WranglerConfigError(
        "/p/wrangler.json",
        'no environment "prod" (--env): it has "staging", "bare", "lost"',
      ),
    );
    expect(() =>
      parseWranglerConfig(json({ main: "i.ts", workflows: [workflow] }), "/p/wrangler.json", { env: "prod" }),
    ).toThrow('no environment "prod" (--env): it defines no env sections');
  });
});
