import { nodeVersionProblem } from "@cairn/core";

/**
 * `node:sqlite`, loaded when a store is opened rather than imported statically, so that importing
 * Cairn on a Node.js without it fails with a line saying which version is needed instead of
 * "No such built-in module: node:sqlite".
 */
export function sqlite(): typeof import("node:sqlite") {
  const mod = process.getBuiltinModule?.("node:sqlite") as typeof import("node:sqlite") | undefined;
  if (mod) return mod;
  throw new Error(
    nodeVersionProblem(process.versions.node) ??
      `node:sqlite is not available in this Node.js ${process.versions.node} (it needs no flag from Node.js 22.13)`,
  );
}
