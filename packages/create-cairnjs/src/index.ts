/**
 * `npm create cairnjs <dir> [-- --template default|cloudflare]`: scaffolds a ready Cairn project.
 *
 * Every argument is checked before anything is written: a directory that exists and is not empty, a
 * name that is not a valid npm package name, an unknown template or option each fail with one line
 * and leave the disk as it was.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import validateName from "validate-npm-package-name";

const PACKAGE_ROOT = fileURLToPath(new URL("..", import.meta.url));
const TEMPLATES_DIR = join(PACKAGE_ROOT, "templates");
/** Where the files shared with the repository's copy of Cloudflare's starter are put when packed. */
export const SHARED_DIR = join(TEMPLATES_DIR, "cloudflare-shared");
/** The version of Cairn's packages the scaffolded project depends on: this package's own (lockstep). */
export const VERSION: string = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).version;

export const TEMPLATES = {
  default: "a workflow (retried step, sleep, approval event), a fetch handler and tests with cairnjs/testing",
  cloudflare:
    "a plain Cloudflare Workflows project (wrangler.jsonc, cloudflare:workers) tested with cairnjs/vitest",
} as const;
export type TemplateName = keyof typeof TEMPLATES;

/** A mistake in the arguments: shown as one line, exit code 2; nothing was written. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface ScaffoldOptions {
  /** The directory to create (or an empty one to fill). */
  dir: string;
  template?: string;
  /** The package name; default: the directory's name. */
  name?: string;
}

export interface Scaffolded {
  dir: string;
  name: string;
  template: TemplateName;
  files: string[];
}

/** Checks the options and writes the project. Throws `UsageError` (having written nothing) on bad input. */
export function scaffold(options: ScaffoldOptions): Scaffolded {
  const dir = resolve(options.dir);
  const template = (options.template ?? "default") as TemplateName;
  if (!Object.hasOwn(TEMPLATES, template))
    throw new UsageError(
      `unknown template "${options.template}": use one of ${Object.keys(TEMPLATES).join(", ")}`,
    );
  const name = options.name ?? basename(dir);
  const check = validateName(name);
  if (!check.validForNewPackages)
    throw new UsageError(
      `"${name}" is not a valid package name (${[...(check.errors ?? []), ...(check.warnings ?? [])].join("; ")})` +
        (options.name ? "" : ": choose another directory name or pass --name"),
    );
  if (existsSync(dir)) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      throw new UsageError(`${options.dir} exists and is not a directory`);
    }
    if (entries.length > 0)
      throw new UsageError(`${options.dir} is not empty (${entries.length} entries): choose a new directory`);
  }
  const files = templateFiles(template);

  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [target, source] of files) {
    const path = join(dir, target);
    mkdirSync(dirname(path), { recursive: true });
    if (target === "package.json") writeFileSync(path, projectPackageJson(source, name));
    else if (/\.(md|jsonc)$/.test(target))
      writeFileSync(path, readFileSync(source, "utf8").replaceAll("{{name}}", name));
    else cpSync(source, path);
    written.push(target);
  }
  return { dir, name, template, files: written.sort() };
}

/** The template's files: target path in the project → source file. */
function templateFiles(template: TemplateName): Map<string, string> {
  const root = join(TEMPLATES_DIR, template);
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!(dir === root && entry.name === "shared.json"))
        // npm does not pack files named .gitignore: the templates hold them as "gitignore".
        files.set(relative(root, path).replace(/^gitignore$/, ".gitignore"), path);
    }
  };
  walk(root);
  const sharedList = join(root, "shared.json");
  if (existsSync(sharedList)) {
    const shared = JSON.parse(readFileSync(sharedList, "utf8")) as { from: string; files: string[] };
    // Packed: the copy made at pack time. In the repository: the shared copy itself.
    const from = existsSync(SHARED_DIR) ? SHARED_DIR : join(PACKAGE_ROOT, "..", "..", shared.from);
    for (const file of shared.files) {
      const source = join(from, file);
      if (!existsSync(source)) throw new Error(`create-cairnjs is incomplete: ${source} is missing`);
      files.set(file, source);
    }
  }
  return files;
}

/** The template's package.json with the project's name and Cairn's packages at this version. */
function projectPackageJson(source: string, name: string): string {
  const pkg = JSON.parse(readFileSync(source, "utf8"));
  pkg.name = name;
  for (const field of ["dependencies", "devDependencies"])
    for (const dep of Object.keys(pkg[field] ?? {}))
      if (pkg[field][dep] === "*") pkg[field][dep] = `^${VERSION}`;
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

const USAGE = `Usage: npm create cairnjs <directory> [-- --template <${Object.keys(TEMPLATES).join("|")}>] [--name <package name>]

Templates:
${Object.entries(TEMPLATES)
  .map(([k, v]) => `  ${k.padEnd(11)} ${v}`)
  .join("\n")}`;

/** The command: returns its exit code (0 done, 1 failed, 2 usage). */
export function main(
  argv: string[],
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  err: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): number {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    err(`✘ ${(e as Error).message}`);
    err(USAGE);
    return 2;
  }
  if (parsed.values.help) {
    out(USAGE);
    return 0;
  }
  const [dir, ...extra] = parsed.positionals;
  try {
    if (!dir) throw new UsageError("which directory? e.g. npm create cairnjs my-app");
    if (extra.length) throw new UsageError(`one directory only (got also ${extra.join(" ")})`);
    const done = scaffold({
      dir,
      ...(parsed.values.template !== undefined ? { template: parsed.values.template } : {}),
      ...(parsed.values.name !== undefined ? { name: parsed.values.name } : {}),
    });
    const shown = relative(process.cwd(), done.dir) || ".";
    out(`✔ Created ${done.name} in ${shown} (template ${done.template})`);
    out("");
    out("Next:");
    if (shown !== ".") out(`  cd ${shown}`);
    out("  npm install");
    out("  npm run dev     # http://localhost:8787, dashboard at /_cairn/");
    out("  npm test");
    return 0;
  } catch (e) {
    err(`✘ ${(e as Error).message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      template: { type: "string", short: "t" },
      name: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}
