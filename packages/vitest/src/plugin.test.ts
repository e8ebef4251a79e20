import { describe, expect, test } from "vitest";
import { cloudflareTest, defineWorkersConfig } from "./plugin.ts";

describe("defineWorkersConfig", () => {
  test("moves test.poolOptions.workers into the cloudflareTest plugin and drops Cloudflare's pool", () => {
    const other = { name: "other" };
    const config = defineWorkersConfig({
      plugins: [other as never],
      test: {
        pool: "@cloudflare/vitest-pool-workers",
        testTimeout: 1234,
        poolOptions: { workers: { wrangler: { configPath: "./wrangler.toml" } } },
      },
    }) as any;
    expect(config.test).toEqual({ testTimeout: 1234 });
    expect(config.plugins.map((p: { name: string }) => p.name)).toEqual(["other", "cairn:cloudflare-test"]);
  });

  test("accepts a function or a promise, like vitest's defineConfig", async () => {
    const fromFn = await (defineWorkersConfig(() => ({ test: { poolOptions: { workers: {} } } })) as any)({});
    expect(fromFn.test).toEqual({});
    const fromPromise = await (defineWorkersConfig(Promise.resolve({ test: {} })) as any);
    expect(fromPromise.plugins.map((p: { name: string }) => p.name)).toEqual(["cairn:cloudflare-test"]);
  });
});

describe("cloudflareTest", () => {
  test("adds its setup file and the resolved options; a missing wrangler config is a clear error", async () => {
    const plugin = cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: { bindings: { A: 1 } },
    });
    const hook = plugin.config as (c: object) => Promise<any>;
    await expect(hook({ root: "/nowhere" })).rejects.toThrow(
      "cloudflareTest: wrangler.configPath /nowhere/wrangler.toml does not exist",
    );
    const root = new URL("../test/fixtures/pool-workers", import.meta.url).pathname;
    const out = await hook({ root });
    expect(out.test.setupFiles[0]).toMatch(/[\\/]vitest[\\/](src|dist)[\\/]setup\.(ts|js)$/);
    expect(Object.values(out.test.provide)).toEqual([
      { configPath: `${root}/wrangler.toml`, bindings: { A: 1 }, defaultRetryDelay: 10 },
    ]);
  });

  test("an options function gets inject() for the config's test.provide", async () => {
    const root = new URL("../test/fixtures/pool-workers", import.meta.url).pathname;
    const plugin = cloudflareTest(({ inject }) => ({ miniflare: { bindings: { TOKEN: inject("token") } } }));
    const out = await (plugin.config as (c: object) => Promise<any>)({
      root,
      test: { provide: { token: "t-1" } },
    });
    expect(Object.values(out.test.provide)).toEqual([
      { configPath: root, bindings: { TOKEN: "t-1" }, defaultRetryDelay: 10 },
    ]);
  });

  test("resolves cloudflare:test, cloudflare:workers and cloudflare:workflows to Cairn's modules", () => {
    const resolve = cloudflareTest().resolveId as (id: string) => string | null;
    expect(resolve("cloudflare:test")).toMatch(/[\\/]vitest[\\/](src|dist)[\\/]cloudflare-test\.(ts|js)$/);
    expect(resolve("cloudflare:workers")).toMatch(
      /[\\/]compat[\\/](src|dist)[\\/]cloudflare-workers\.(ts|js)$/,
    );
    expect(resolve("cloudflare:workflows")).toMatch(
      /[\\/]compat[\\/](src|dist)[\\/]cloudflare-workflows\.(ts|js)$/,
    );
    expect(resolve("hono")).toBeNull();
  });
});
