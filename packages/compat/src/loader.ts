import { existsSync, readFileSync, statSync } from "node:fs";
import * as nodeModule from "node:module";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parse as parseJsonc } from "jsonc-parser";
import { type HookData, resolveSync } from "./hooks.ts";

/** This package runs from its TypeScript sources (tests, Node's type stripping) or from `dist`. */
const EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
const sibling = (name: string) => new URL(`./${name}${EXT}`, import.meta.url).href;

/** The module each `cloudflare:*` specifier loads under Cairn. */
export const CLOUDFLARE_MODULES: Readonly<Record<string, string>> = {
  "cloudflare:workers": sibling("cloudflare-workers"),
  "cloudflare:workflows": sibling("cloudflare-workflows"),
};

/** Packages of Cloudflare's that resolve to Cairn's (Sandboxes: `@cloudflare/sandbox`). */
export const CLOUDFLARE_PACKAGES: Readonly<Record<string, string>> = {
  "@cloudflare/sandbox": import.meta.resolve("@cairn/sandbox"),
};

/**
 * Cloudflare's Agents SDK (`agents`, `agents/workflows`) as Cairn provides it, so an Agents project
 * runs unchanged; the client side (`agents/client`, `agents/react`) stays the project's own.
 */
export const AGENTS_MODULES: Readonly<Record<string, string>> = {
  agents: import.meta.resolve("@cairn/agents"),
  "agents/workflows": import.meta.resolve("@cairn/agents/workflows"),
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
  const data: HookData = {
    modules: { ...CLOUDFLARE_MODULES, ...CLOUDFLARE_PACKAGES, ...AGENTS_MODULES },
    fallbackParent: import.meta.url,
  };
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
  warn: (message: string) => void = () => {},
): Promise<Record<string, unknown>> {
  installCloudflareModules();
  const { tsImport } = await import("tsx/esm/api");
  const tsconfig = join(projectDir, "tsconfig.json");
  let useTsconfig: string | false = existsSync(tsconfig) ? tsconfig : false;
  const missing = useTsconfig ? missingExtends(tsconfig) : [];
  if (missing.length > 0) {
    warn(
      `tsconfig.json: "extends" ${missing.map((m) => `"${m}"`).join(", ")} not found; ` +
        "loading the project without its tsconfig.json (its paths and JSX settings do not apply)",
    );
    useTsconfig = false;
  }
  return (await tsImport(pathToFileURL(file).href, {
    parentURL: pathToFileURL(join(dirname(file), "/")).href,
    tsconfig: useTsconfig,
  })) as Record<string, unknown>;
}

/**
 * The `extends` entries of a tsconfig.json (and of the files it extends) that cannot be found: a
 * relative path (with or without `.json`) or a package's file, resolved as TypeScript does.
 */
export function missingExtends(tsconfig: string, seen = new Set<string>()): string[] {
  if (seen.has(tsconfig)) return [];
  seen.add(tsconfig);
  let config: unknown;
  try {
    config = parseJsonc(readFileSync(tsconfig, "utf8"), [], { allowTrailingComma: true });
  } catch {
    return [];
  }
  const ext = (config as { extends?: unknown } | undefined)?.extends;
  const entries = (Array.isArray(ext) ? ext : [ext]).filter((e): e is string => typeof e === "string");
  const missing: string[] = [];
  for (const entry of entries) {
    const found = resolveExtends(entry, tsconfig);
    if (found === undefined) missing.push(entry);
    else missing.push(...missingExtends(found, seen));
  }
  return missing;
}

function resolveExtends(entry: string, from: string): string | undefined {
  if (entry.startsWith(".") || isAbsolute(entry)) {
    const base = resolve(dirname(from), entry);
    return [base, `${base}.json`].find((f) => existsSync(f) && statSync(f).isFile());
  }
  const require = nodeModule.createRequire(from);
  for (const candidate of [entry, `${entry}.json`, `${entry}/tsconfig.json`]) {
    try {
      return require.resolve(candidate);
    } catch {}
  }
  return undefined;
}
