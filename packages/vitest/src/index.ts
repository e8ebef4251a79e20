/**
 * `cairnjs/vitest`: Cairn's drop-in for Cloudflare's vitest integration. A Cloudflare project's
 * `vitest.config.ts` changes only its import line; its tests import `cloudflare:test` and
 * `cloudflare:workers` unchanged. See docs/testing.md.
 */
export {
  cloudflareTest,
  defineWorkersConfig,
  defineWorkersProject,
  PROVIDE_KEY,
  type ResolvedWorkerOptions,
  type WorkersPoolOptions,
  type WorkersPoolOptionsContext,
  type WorkersUserConfig,
} from "./plugin.ts";
