/**
 * The vitest side of `cairnjs/vitest` (runs where vitest reads its config): the plugin that provides
 * `cloudflare:test` and `cloudflare:workers` to the tests and starts the Worker for each test file.
 * It only resolves paths; everything else happens in the test worker (`setup.ts`).
 */
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Plugin, ViteUserConfig } from "vitest/config";

/** The `inject` key under which the plugin hands the resolved options to `setup.ts`. */
export const PROVIDE_KEY = "cairn:vitest:worker";

/**
 * Cloudflare's `WorkersPoolOptions` (`@cloudflare/vitest-pool-workers`), the part Cairn reads. Other
 * keys (`singleWorker`, `isolatedStorage`, most of `miniflare`) are accepted and ignored.
 */
export interface WorkersPoolOptions {
  /** The Worker's wrangler configuration; default `wrangler.jsonc|json|toml` in the project root. */
  wrangler?: { configPath?: string; environment?: string };
  /** The entry module, instead of the wrangler config's `main` (relative to the project root). */
  main?: string;
  /** `bindings` are added to `env` (after the wrangler `vars`); the rest is ignored. */
  miniflare?: { bindings?: Record<string, unknown>; [key: string]: unknown };
  /**
   * Cairn: the retry delay of steps that set none (ms or a duration). Default 10 ms, as in
   * `createTestCairn`, so retried steps do not wait 10 seconds in tests.
   */
  defaultRetryDelay?: number | string;
  [key: string]: unknown;
}

/** What `setup.ts` receives (serialisable: it crosses into the test worker). */
export interface ResolvedWorkerOptions {
  /** Absolute path of the wrangler configuration file, or of the directory to look in. */
  configPath: string;
  /** Absolute path of the entry module, when it overrides the config's `main`. */
  main?: string;
  bindings: Record<string, unknown>;
  defaultRetryDelay: number | string;
}

/** What an options function receives, like Cloudflare's: `inject` reads the config's `test.provide`. */
export interface WorkersPoolOptionsContext {
  inject(key: string): unknown;
}

type OptionsInput =
  | WorkersPoolOptions
  | ((context: WorkersPoolOptionsContext) => WorkersPoolOptions | Promise<WorkersPoolOptions>);

/** Cairn's modules each `cloudflare:*` specifier loads in tests. */
const MODULES: Record<string, string> = {
  "cloudflare:test": "@cairn/vitest/cloudflare-test",
  "cloudflare:workers": "@cairn/compat/cloudflare-workers",
  "cloudflare:workflows": "@cairn/compat/cloudflare-workflows",
};

/** Cairn's own packages: resolved like Node resolves them here, so tests load one copy of each. */
const CAIRN_PACKAGE = /^(@cairn\/[^/]+|cairn|cairnjs)(\/.*)?$/;

const resolveHere = (specifier: string): string => fileURLToPath(import.meta.resolve(specifier));

/**
 * The vitest plugin, shaped like Cloudflare's `cloudflareTest(options)`:
 *
 * ```ts
 * import { cloudflareTest } from "cairnjs/vitest";
 * export default defineConfig({ plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.jsonc" } })] });
 * ```
 *
 * Each test file gets a fresh Cairn (in-memory store, real time) running the Worker's workflows,
 * with `env`, `SELF` and `exports` bound to its entry module.
 */
export function cloudflareTest(options: OptionsInput = {}): Plugin {
  return {
    name: "cairn:cloudflare-test",
    enforce: "pre",
    async config(config: ViteUserConfig) {
      const provided = (config.test?.provide ?? {}) as Record<string, unknown>;
      const given =
        typeof options === "function" ? await options({ inject: (key) => provided[key] }) : options;
      if (typeof given !== "object" || given === null)
        throw new TypeError("cloudflareTest: options must be an object like { wrangler: { configPath } }");
      const root = resolve(config.root ?? process.cwd());
      const configPath = given.wrangler?.configPath ? absolute(root, given.wrangler.configPath) : root;
      if (given.wrangler?.configPath && !existsSync(configPath))
        throw new Error(`cloudflareTest: wrangler.configPath ${configPath} does not exist`);
      const bindings = given.miniflare?.bindings ?? {};
      if (typeof bindings !== "object" || bindings === null)
        throw new TypeError("cloudflareTest: miniflare.bindings must be an object");
      const resolved: ResolvedWorkerOptions = {
        configPath,
        ...(given.main ? { main: absolute(root, given.main) } : {}),
        bindings,
        defaultRetryDelay: given.defaultRetryDelay ?? 10,
      };
      return {
        test: {
          setupFiles: [resolveHere("@cairn/vitest/setup")],
          provide: { [PROVIDE_KEY]: resolved } as never,
          // Processed by vitest (not loaded natively), so the Worker's modules and Cairn's share one
          // module graph: one copy of each Cairn package, and `cloudflare:*` imports resolve here.
          server: { deps: { inline: [/[\\/]@cairn[\\/]/, /[\\/]cairnjs?[\\/]/] } },
        },
      } as ViteUserConfig;
    },
    resolveId(id: string) {
      const target = MODULES[id];
      if (target) return resolveHere(target);
      if (CAIRN_PACKAGE.test(id)) {
        try {
          return resolveHere(id);
        } catch {
          return null;
        }
      }
      return null;
    },
  };
}

/** A vitest config in Cloudflare's shape (`@cloudflare/vitest-pool-workers/config`). */
export interface WorkersUserConfig extends ViteUserConfig {
  test?: ViteUserConfig["test"] & {
    pool?: unknown;
    poolOptions?: { workers?: OptionsInput; [key: string]: unknown };
  };
}

type ConfigInput =
  | WorkersUserConfig
  | Promise<WorkersUserConfig>
  | ((env: any) => WorkersUserConfig | Promise<WorkersUserConfig>);

/**
 * Cloudflare's `defineWorkersConfig(config)`: reads `test.poolOptions.workers` (wrangler config path,
 * `miniflare.bindings`, `main`), removes `test.poolOptions` and Cloudflare's `pool` (vitest 4 has
 * neither), and adds the `cloudflareTest` plugin. A Cloudflare project's `vitest.config.ts` changes
 * only its import line:
 *
 * ```ts
 * import { defineWorkersConfig } from "cairnjs/vitest";
 * export default defineWorkersConfig({ test: { poolOptions: { workers: { wrangler: { configPath: "./wrangler.jsonc" } } } } });
 * ```
 */
export function defineWorkersConfig<T extends ConfigInput>(config: T): T {
  if (typeof config === "function")
    return (async (env: unknown) => toVitest(await (config as (e: unknown) => unknown)(env))) as T;
  if (config && typeof (config as Promise<unknown>).then === "function")
    return (config as Promise<WorkersUserConfig>).then(toVitest) as T;
  return toVitest(config) as T;
}

/** Cloudflare's `defineWorkersProject`: the same, for one project of a workspace. */
export const defineWorkersProject = defineWorkersConfig;

function toVitest(config: unknown): ViteUserConfig {
  if (typeof config !== "object" || config === null)
    throw new TypeError("defineWorkersConfig: the config must be an object");
  const { test, plugins, ...rest } = config as WorkersUserConfig;
  const { poolOptions, pool, ...testRest } = test ?? {};
  const workers = poolOptions?.workers ?? {};
  const keepPool = typeof pool === "string" && !pool.includes("vitest-pool-workers") ? { pool } : {};
  return {
    ...rest,
    plugins: [...(plugins ?? []), cloudflareTest(workers)],
    test: { ...testRest, ...keepPool } as ViteUserConfig["test"],
  };
}

function absolute(root: string, path: string): string {
  return isAbsolute(path) ? path : resolve(root, path);
}
