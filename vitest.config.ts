import { configDefaults, defineConfig } from "vitest/config";
import { standardDecorators } from "./tests/agents/decorators.ts";

export default defineConfig({
  // Agents' tests use TC39 decorators (`@callable()`), which Vite leaves uncompiled.
  plugins: [standardDecorators()],
  // Workspace packages resolve to their TypeScript sources in tests (the "source" export condition),
  // so tests never run stale builds.
  resolve: { conditions: ["source", "module", "node", "import", "default"] },
  // Vitest passes these to Node as --conditions, which also steer require(): "import" there would make
  // CommonJS packages (pg requiring pg-pool) load ESM wrappers. Node adds "import" to imports itself.
  ssr: { resolve: { conditions: ["source", "node", "default"], externalConditions: ["source"] } },
  test: {
    include: [
      "packages/*/src/**/*.test.ts",
      "packages/*/test/**/*.test.ts",
      "tests/**/*.test.ts",
      "examples/**/*.test.ts",
    ],
    // Cloudflare's examples run in their own vitest (packages/vitest/test/cloudflare-examples.test.ts).
    exclude: [...configDefaults.exclude, "tests/cloudflare-fixtures/**", "packages/vitest/test/fixtures/**"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
