import { existsSync } from "node:fs";
import * as nodeModule from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { type HookData, resolveSync } from "./hooks.ts";

/** This package runs from its TypeScript sources (tests, Node's type stripping) or from `dist`. */
const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
const sibling = (name: string) => new URL(`./${name}${EXT}`, import.meta.url).href;

/** The module each `cloudflare:*` specifier loads under Cairn. */
export const CLOUDFLARE_MODULES: Readonly<Record<string, string>> = {
  "cloudflare:workers": sibling("cloudflare-workers"),
  "cloudflare:workflows": sibling("cloudflare-workflows"),
};

let installed = false;

/**
 * Installs the module loader hooks (once per process) that make `cloudflare:workers` and
 * `cloudflare:workflows` load Cairn's modules, and `cairn` load this package's Cairn when the
 * project has none installed. Needed before importing code written for Cloudflare.
 */
export function installCloudflareModules(): void {
  if (installed) return;
  installed = true;
  const data: HookData = { modules: { ...CLOUDFLARE_MODULES }, fallbackParent: import.meta.url };
  // In-thread hooks (Node ≥ 22.15) also cover require(); older Node gets the off-thread ESM hooks.
  const registerHooks = (nodeModule as { registerHooks?: (hooks: { resolve: unknown }) => unknown })
    .registerHooks;
  if (registerHooks) registerHooks({ resolve: resolveSync(data) });
  else nodeModule.register(sibling("hooks"), { data });
}

/**
 * Imports a project module written in TypeScript or JavaScript, without a build step: full
 * TypeScript (enums, parameter properties, decorators, extension-less relative imports, `paths`) is
 * compiled on the fly by tsx, with the project's `tsconfig.json` when it has one. Each call loads
 * the module and its project imports afresh.
 */
export async function importProjectModule(
  file: string,
  projectDir: string,
): Promise<Record<string, unknown>> {
  installCloudflareModules();
  const { tsImport } = await import("tsx/esm/api");
  const tsconfig = join(projectDir, "tsconfig.json");
  return (await tsImport(pathToFileURL(file).href, {
    parentURL: pathToFileURL(join(dirname(file), "/")).href,
    tsconfig: existsSync(tsconfig) ? tsconfig : false,
  })) as Record<string, unknown>;
}
