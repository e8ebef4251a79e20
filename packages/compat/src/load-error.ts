import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** A project that failed to load, described for people: where (file:line:col) and what. */
export interface LoadFailure {
  /** One line (more only for several syntax errors): `src/index.ts:6:9: Unexpected "="`. */
  message: string;
  /** The file, relative to the project, when known. */
  file?: string;
  line?: number;
  column?: number;
}

interface EsbuildMessage {
  text: string;
  location?: { file: string; line: number; column: number } | null;
}

/**
 * Describes why a project did not load, without Cairn's own stack frames: a syntax error (from
 * esbuild) or a module that cannot be found points at the file, line and column of the user's code;
 * an error thrown while the module runs points at the user's frame nearest the throw; a
 * configuration error keeps its message (it names the file and field).
 */
export function describeLoadError(error: unknown, root: string): LoadFailure {
  let e = error as (Error & { cause?: unknown; errors?: EsbuildMessage[]; code?: string }) | undefined;
  // ProjectError("Cannot load <file>: …") wraps the module's own error.
  if (e?.name === "ProjectError" && e.cause) e = e.cause as typeof e;
  const shown = (file: string) => {
    const abs = file.startsWith("file:") ? fileURLToPath(file) : file;
    const rel = relative(root, abs);
    return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
  };
  if (!e || typeof e !== "object") return { message: String(error) };

  const syntax = Array.isArray(e.errors) ? e.errors.filter((m) => m?.location) : [];
  if (syntax.length > 0) {
    const lines = syntax.map((m) => {
      const l = m.location!;
      return `${shown(resolve(root, l.file))}:${l.line}:${l.column + 1}: ${m.text}`;
    });
    const first = syntax[0]!.location!;
    return {
      message: lines.join("\n"),
      file: shown(resolve(root, first.file)),
      line: first.line,
      column: first.column + 1,
    };
  }

  if (e.code === "ERR_CAIRN_NOT_PROVIDED") {
    const { specifier, parentURL } = e as unknown as { specifier: string; parentURL?: string };
    const text = e.message.replace(/; imported from .*$/, "");
    const importer = parentURL?.startsWith("file:") ? fileURLToPath(parentURL) : parentURL;
    const found = importer ? findImport(importer, specifier, true) : undefined;
    if (importer && found)
      return {
        message: `${shown(importer)}:${found.line}:${found.column}: ${text}`,
        file: shown(importer),
        line: found.line,
        column: found.column,
      };
    return { message: importer ? `${shown(importer)}: ${text}` : text };
  }

  // esbuild's TransformError (through tsx) carries its messages only as text:
  // "<file>:<line>:<column>: ERROR: <text>", the column counted from 0.
  if (e.name === "TransformError" || /^Transform failed with \d+ error/.test(e.message ?? "")) {
    const found = [...(e.message ?? "").matchAll(/^(.+?):(\d+):(\d+): ERROR: (.*)$/gm)];
    if (found.length > 0) {
      const [, file, line, column] = found[0]!;
      return {
        message: found.map(([, f, l, c, text]) => `${shown(f!)}:${l}:${Number(c) + 1}: ${text}`).join("\n"),
        file: shown(file!),
        line: Number(line),
        column: Number(column) + 1,
      };
    }
  }

  // require() of a file that is not there (tsx loads TypeScript outside "type": "module" as CommonJS).
  if (e.code === "MODULE_NOT_FOUND" && Array.isArray((e as { requireStack?: unknown }).requireStack)) {
    const specifier = /^Cannot find module '([^']+)'/.exec(e.message)?.[1];
    const importer = String((e as unknown as { requireStack: string[] }).requireStack[0] ?? "").replace(
      /\?.*$/,
      "",
    );
    if (specifier && importer) {
      const found = findImport(importer, specifier, true);
      const what = specifier.startsWith(".") || isAbsolute(specifier) ? "module" : "package";
      return {
        message: `${shown(importer)}${found ? `:${found.line}:${found.column}` : ""}: cannot find ${what} "${specifier}"`,
        file: shown(importer),
        ...(found ? { line: found.line, column: found.column } : {}),
      };
    }
  }

  if (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "MODULE_NOT_FOUND") {
    const m = /Cannot find (module|package) '([^']+)' imported from (.+)$/m.exec(e.message);
    if (m) {
      const [, what, target, importerRaw] = m;
      const importer = importerRaw!.trim().startsWith("file:")
        ? fileURLToPath(importerRaw!.trim())
        : importerRaw!.trim();
      const found = findImport(importer, target!, what === "package");
      const specifier = found?.specifier ?? target!;
      const where = found ? `${shown(importer)}:${found.line}:${found.column}` : shown(importer);
      return {
        message: `${where}: cannot find ${what} "${specifier}"`,
        file: shown(importer),
        ...(found ? { line: found.line, column: found.column } : {}),
      };
    }
  }

  const message = `${e.name && e.name !== "Error" ? `${e.name}: ` : ""}${e.message ?? String(e)}`;
  if (e.name === "ProjectError" || e.name === "WranglerConfigError") return { message: e.message };
  const frame = userFrame(e.stack, root);
  if (frame)
    return {
      message: `${shown(frame.file)}:${frame.line}:${frame.column}: ${message}`,
      file: shown(frame.file),
      line: frame.line,
      column: frame.column,
    };
  return { message };
}

/** The first stack frame in the project's own files (not node_modules, not Node's internals). */
function userFrame(stack: string | undefined, root: string) {
  for (const line of (stack ?? "").split("\n").slice(1)) {
    const m = /\(?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/.exec(line);
    if (!m) continue;
    const file = m[1]!.startsWith("file:") ? fileURLToPath(m[1]!) : m[1]!;
    if (!file.startsWith(root) || file.includes("/node_modules/")) continue;
    return { file, line: Number(m[2]), column: Number(m[3]) };
  }
  return undefined;
}

/** Where `importer` imports the module that resolved to `target` (a path, or a package name). */
function findImport(importer: string, target: string, isPackage: boolean) {
  if (!existsSync(importer)) return undefined;
  const text = readFileSync(importer, "utf8");
  const strip = (p: string) => p.replace(/\.(m|c)?(t|j)sx?$/, "");
  const pattern = /\b(?:from|import|require)\s*\(?\s*(["'])([^"'\n]+)\1/g;
  for (const m of text.matchAll(pattern)) {
    const spec = m[2]!;
    const matches = isPackage
      ? spec === target || spec.startsWith(`${target}/`)
      : spec.startsWith(".") && strip(resolve(dirname(importer), spec)) === strip(target);
    if (!matches) continue;
    const offset = m.index + m[0].indexOf(m[1]!);
    const before = text.slice(0, offset);
    return {
      specifier: spec,
      line: before.split("\n").length,
      column: offset - before.lastIndexOf("\n"),
    };
  }
  return undefined;
}
