/**
 * The package graph is one-way. Reads every workspace package's package.json and the imports of its
 * code (src, test, bin, app: every .ts/.tsx/.js/.mjs file outside node_modules, dist and fixture
 * projects) and fails on:
 * - a workspace package missing from LAYERS (adding a package is one line there);
 * - an import of a package the importing package does not declare (workspace packages must be
 *   declared by the package itself; other packages by it or by the repository's devDependencies, the
 *   tools every package's tests share: vitest, typescript, @types/node);
 * - an import or a declared dependency that points up LAYERS (DESIGN.md's "Layers" table);
 * - a cycle between packages (declared dependencies of any kind, and imports).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseSync } from "oxc-parser";
import { describe, expect, it } from "vitest";

/**
 * DESIGN.md's layer table, top first: a package may import packages of its own row or of rows above
 * it, never below. Differences from DESIGN.md's table (see docs/decisions.md, "Packages"):
 * `@cairn/engine` (createCairn) sits under objects/agents/sandbox and above everything that embeds a
 * Cairn; `@cairn/diagram` (pure, imports no workspace package) sits above `compat`, which bundles and
 * analyses a project's sources with it.
 */
const LAYERS: readonly (readonly string[])[] = [
  ["@cairn/core"],
  ["@cairn/store"],
  ["@cairn/store-sqlite", "@cairn/store-postgres"],
  ["@cairn/runtime"],
  ["@cairn/objects"],
  ["@cairn/agents", "@cairn/sandbox"],
  ["@cairn/engine"],
  ["@cairn/api", "@cairn/server"],
  ["@cairn/client"],
  ["@cairn/diagram"],
  ["@cairn/compat"],
  ["@cairn/testing", "@cairn/vitest"],
  ["@cairn/cli", "@cairn/dashboard", "create-cairnjs"],
  ["cairnjs"],
];

/**
 * Same-row imports allowed, in this direction only (a row's packages are otherwise independent).
 * Each pair is "importer → imported".
 */
const WITHIN_ROW: readonly string[] = [
  "@cairn/server → @cairn/api",
  "@cairn/vitest → @cairn/testing",
  "@cairn/cli → @cairn/dashboard",
];

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The repository's code outside the packages (the root package is private: it may import any package). */
const ROOT_CODE = ["tests", "examples", "bench", "scripts"];
// Fixtures and templates are projects of users (they import cairnjs as a user does), not the package's code.
const SKIP_DIRS = new Set(["node_modules", "dist", "fixtures", "templates", "cloudflare-fixtures", ".cairn"]);
const CODE = /\.(ts|tsx|mts|js|mjs)$/;

interface Pkg {
  name: string;
  dir: string;
  /** Every name in dependencies, devDependencies, peerDependencies and optionalDependencies. */
  declared: Set<string>;
  /** Declared dependencies on other workspace packages, by field. */
  workspaceDeps: { name: string; field: string }[];
  /** Bare specifiers imported by its code: package name → files importing it. */
  imports: Map<string, string[]>;
}

const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8"));
const root = readJson(join(ROOT, "package.json"));
const rootDev = new Set(Object.keys(root.devDependencies ?? {}));

function codeFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (SKIP_DIRS.has(entry)) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...codeFiles(path));
    else if (CODE.test(entry) && !entry.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** The bare specifiers a file imports: static imports and re-exports, and `import("…")` with a literal. */
function specifiersOf(file: string): string[] {
  const source = readFileSync(file, "utf8");
  const { module, errors } = parseSync(file, source);
  if (errors.length) throw new Error(`${file}: ${errors[0]!.message}`);
  const out = module.staticImports.map((i) => i.moduleRequest.value);
  for (const e of module.staticExports)
    for (const entry of e.entries) if (entry.moduleRequest) out.push(entry.moduleRequest.value);
  for (const d of module.dynamicImports) {
    const text = source.slice(d.moduleRequest.start, d.moduleRequest.end);
    const literal = /^(["'`])([^"'`$]+)\1$/.exec(text);
    if (literal) out.push(literal[2]!);
  }
  return out;
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`; relative, builtin and virtual → undefined. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("#")) return undefined;
  if (isBuiltin(specifier) || specifier.startsWith("node:")) return undefined;
  // Cloudflare's modules are provided by @cairn/compat's resolution hooks, not installed.
  if (specifier.startsWith("cloudflare:")) return undefined;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

function loadPackages(): Pkg[] {
  const dirs: string[] = root.workspaces;
  const names = new Set(dirs.map((d) => readJson(join(ROOT, d, "package.json")).name as string));
  return dirs.map((d) => {
    const dir = join(ROOT, d);
    const json = readJson(join(dir, "package.json"));
    const declared = new Set<string>();
    const workspaceDeps: Pkg["workspaceDeps"] = [];
    for (const field of ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"])
      for (const name of Object.keys(json[field] ?? {})) {
        declared.add(name);
        if (names.has(name)) workspaceDeps.push({ name, field });
      }
    const imports = new Map<string, string[]>();
    for (const file of codeFiles(dir))
      for (const specifier of specifiersOf(file)) {
        const name = packageOf(specifier);
        if (!name || name === json.name) continue;
        imports.set(name, [...(imports.get(name) ?? []), relative(ROOT, file)]);
      }
    return { name: json.name, dir: d, declared, workspaceDeps, imports };
  });
}

const packages = loadPackages();
const workspaceNames = new Set(packages.map((p) => p.name));
const rowOf = new Map(LAYERS.flatMap((row, i) => row.map((name) => [name, i] as const)));

/** The imports of `p` that its package.json does not declare (workspace packages: itself only). */
function undeclared(p: Pick<Pkg, "name" | "declared" | "imports">): string[] {
  const problems: string[] = [];
  for (const [name, files] of p.imports) {
    const ok = p.declared.has(name) || (!workspaceNames.has(name) && rootDev.has(name));
    if (!ok) problems.push(`${p.name} imports ${name} without declaring it (${files.join(", ")})`);
  }
  return problems;
}

/** Why `from` may not depend on `to`, or undefined when it may. */
function layerProblem(from: string, to: string): string | undefined {
  const a = rowOf.get(from);
  const b = rowOf.get(to);
  if (a === undefined || b === undefined) return undefined; // reported by the LAYERS test
  if (b < a) return undefined;
  if (b === a && WITHIN_ROW.includes(`${from} → ${to}`)) return undefined;
  return b === a ? "a package of the same row (add it to WITHIN_ROW if it is meant)" : "a package below it";
}

describe("workspace packages", () => {
  it("finds the packages and their imports", () => {
    expect(packages.length).toBeGreaterThanOrEqual(16);
    expect(packages.find((p) => p.name === "cairnjs")?.imports.has("@cairn/engine")).toBe(true);
  });

  it("lists every workspace package in LAYERS", () => {
    const missing = packages.filter((p) => !rowOf.has(p.name)).map((p) => `${p.name} (${p.dir})`);
    expect(missing, "add these to LAYERS in tests/architecture/layers.test.ts").toEqual([]);
  });

  it("declares every package it imports", () => {
    expect(packages.flatMap(undeclared)).toEqual([]);
  });

  it("the repository's own tests, examples, benchmarks and scripts declare what they import (root package.json)", () => {
    const problems: string[] = [];
    for (const dir of ROOT_CODE)
      for (const file of codeFiles(join(ROOT, dir)))
        for (const specifier of specifiersOf(file)) {
          const name = packageOf(specifier);
          if (name && !workspaceNames.has(name) && !rootDev.has(name))
            problems.push(
              `${relative(ROOT, file)} imports ${name}, not in the root package.json's devDependencies`,
            );
        }
    expect(problems).toEqual([]);
  });

  it("imports and depends only up the layer table", () => {
    const problems: string[] = [];
    for (const p of packages) {
      for (const [name, files] of p.imports) {
        const why = workspaceNames.has(name) ? layerProblem(p.name, name) : undefined;
        if (why) problems.push(`${p.name} imports ${name}, ${why} (${files.join(", ")})`);
      }
      for (const d of p.workspaceDeps) {
        const why = layerProblem(p.name, d.name);
        if (why) problems.push(`${p.name} declares ${d.name} in ${d.field}, ${why}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("has no cycle", () => {
    const edges = new Map<string, Set<string>>();
    for (const p of packages) {
      const to = new Set(p.workspaceDeps.map((d) => d.name));
      for (const name of p.imports.keys()) if (workspaceNames.has(name)) to.add(name);
      edges.set(p.name, to);
    }
    expect(findCycle(edges)).toBeUndefined();
  });
});

describe("the checks themselves", () => {
  it("find a cycle", () => {
    const edges = new Map([
      ["a", new Set(["b"])],
      ["b", new Set(["c"])],
      ["c", new Set(["a"])],
      ["d", new Set(["a"])],
    ]);
    expect(findCycle(edges)).toEqual(["a", "b", "c", "a"]);
    expect(
      findCycle(
        new Map([
          ["a", new Set(["b"])],
          ["b", new Set<string>()],
        ]),
      ),
    ).toBeUndefined();
  });

  it("reject an import down the table and an undeclared one", () => {
    expect(layerProblem("@cairn/core", "@cairn/runtime")).toBe("a package below it");
    expect(layerProblem("@cairn/engine", "cairnjs")).toBe("a package below it");
    expect(layerProblem("@cairn/testing", "@cairn/engine")).toBeUndefined();
    expect(layerProblem("@cairn/testing", "@cairn/vitest")).toMatch(/same row/);
    expect(packageOf("@cairn/store/conformance")).toBe("@cairn/store");
    expect(packageOf("node:sqlite")).toBeUndefined();
    expect(packageOf("fs")).toBeUndefined();
    expect(packageOf("vitest/config")).toBe("vitest");
  });

  it("reject an import of a workspace package that is not declared, even one the root has", () => {
    const imports = new Map([
      ["@cairn/core", ["a.ts"]],
      ["@cairn/runtime", ["b.test.ts"]],
      ["vitest", ["b.test.ts"]],
      ["left-pad", ["c.ts"]],
    ]);
    expect(undeclared({ name: "@cairn/x", declared: new Set(["@cairn/core"]), imports })).toEqual([
      "@cairn/x imports @cairn/runtime without declaring it (b.test.ts)",
      "@cairn/x imports left-pad without declaring it (c.ts)",
    ]);
  });

  it("read imports with a parser: a specifier inside a string is not an import", () => {
    const file = join(ROOT, "tests/architecture/layers.test.ts");
    const found = specifiersOf(file);
    expect(found).toContain("oxc-parser");
    // This file's text holds `import("…")` and quoted names in comments and strings only.
    expect(found).not.toContain("@cairn/engine");
  });
});

/** The first cycle found in a directed graph, as a path that ends where it starts. */
function findCycle(edges: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    state.set(node, "open");
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of [...edges.keys()].sort()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}
