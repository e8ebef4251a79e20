import { transform } from "esbuild";

/**
 * A Vite plugin that compiles TC39 standard decorators (`@callable()`) with esbuild, for test
 * files of agents: Vite's own TypeScript transform keeps them as they are, and Node cannot run them.
 * `cairn dev` loads projects with tsx (esbuild), which compiles them itself.
 */
export function standardDecorators() {
  return {
    name: "cairn:standard-decorators",
    enforce: "pre" as const,
    async transform(code: string, id: string) {
      if (
        !/\.[cm]?tsx?$/.test(id) ||
        id.includes("/node_modules/") ||
        !/^\s*@[A-Za-z_$][\w$]*\s*\(/m.test(code)
      )
        return null;
      const out = await transform(code, {
        loader: id.endsWith("x") ? "tsx" : "ts",
        format: "esm",
        target: "es2023",
        sourcemap: true,
        sourcefile: id,
        tsconfigRaw: { compilerOptions: { experimentalDecorators: false, useDefineForClassFields: true } },
      });
      return { code: out.code, map: out.map };
    },
  };
}
