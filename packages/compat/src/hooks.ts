/**
 * Module resolution hooks: `cloudflare:workers` and `cloudflare:workflows` resolve to Cairn's
 * modules, and `cairnjs` resolves from this package (where one is installed next to it) when the
 * importing project has none of its own.
 *
 * `loader.ts` installs `resolveSync` in-thread with `module.registerHooks` where Node has it (it
 * covers `require()` too, which tsx uses for TypeScript files outside a `"type": "module"` package),
 * and otherwise this module's `initialize`/`resolve` with `module.register`.
 */
import { createRequire, type ResolveFnOutput, type ResolveHook, type ResolveHookContext } from "node:module";
import { pathToFileURL } from "node:url";

export interface HookData {
  /** Module URLs for each `cloudflare:*` specifier. */
  modules: Record<string, string>;
  /** Where to resolve `cairnjs` from when the importing project cannot. */
  fallbackParent: string;
}

type NextSync = (specifier: string, context?: Partial<ResolveHookContext>) => ResolveFnOutput;

/** The synchronous resolve hook for `module.registerHooks`. */
export function resolveSync(
  data: HookData,
): (specifier: string, context: ResolveHookContext, next: NextSync) => ResolveFnOutput {
  return (specifier, context, next) => {
    const target = data.modules[specifier];
    if (target) return { url: target, shortCircuit: true };
    if (specifier.startsWith("cloudflare:")) throw notProvided(specifier, context.parentURL, data);
    if (specifier === "cairnjs" || specifier.startsWith("cairnjs/")) {
      try {
        return next(specifier, context);
      } catch {
        return fallback(specifier, data);
      }
    }
    return next(specifier, context);
  };
}

/** The error for a `cloudflare:*` module Cairn has no implementation of (code `ERR_CAIRN_NOT_PROVIDED`). */
function notProvided(specifier: string, parentURL: string | undefined, data: HookData): Error {
  const provided = Object.keys(data.modules).filter((m) => m.startsWith("cloudflare:"));
  const error = new Error(
    `"${specifier}" is not provided by Cairn (it provides ${provided.join(", ")})` +
      (parentURL ? `; imported from ${parentURL}` : ""),
  ) as Error & { code: string; specifier: string; parentURL?: string };
  error.code = "ERR_CAIRN_NOT_PROVIDED";
  error.specifier = specifier;
  if (parentURL) error.parentURL = parentURL;
  return error;
}

/** Resolves `cairnjs` (or a subpath) from this package, when the project has no Cairn of its own. */
function fallback(specifier: string, data: HookData): ResolveFnOutput {
  const file = createRequire(data.fallbackParent).resolve(specifier);
  return { url: pathToFileURL(file).href, shortCircuit: true };
}

let data: HookData = { modules: {}, fallbackParent: import.meta.url };

/** `module.register` initialisation: receives the `HookData`. */
export function initialize(init: HookData): void {
  data = init;
}

/** The asynchronous resolve hook for `module.register`. */
export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  const target = data.modules[specifier];
  if (target) return { url: target, shortCircuit: true };
  if (specifier.startsWith("cloudflare:")) throw notProvided(specifier, context.parentURL, data);
  if (specifier === "cairnjs" || specifier.startsWith("cairnjs/")) {
    try {
      return await nextResolve(specifier, context);
    } catch {
      return fallback(specifier, data);
    }
  }
  return nextResolve(specifier, context);
};
