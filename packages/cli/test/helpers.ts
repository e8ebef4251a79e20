/** Running the built `cairn` binary as a child process, for the end-to-end tests. */
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const BIN = fileURLToPath(new URL("../bin/cairn.js", import.meta.url));
const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
/** Node 24 from the `node` devDependency (the system Node may be older). */
export const NODE = existsSync(`${ROOT}node_modules/.bin/node`)
  ? `${ROOT}node_modules/.bin/node`
  : process.execPath;

/**
 * Builds the CLI (and what it depends on) so the binary runs current code. Test files run in
 * parallel, so builds take a lock (a directory) and run one at a time.
 */
export async function buildCli(): Promise<void> {
  const lock = `${ROOT}packages/cli/dist/.build-lock`;
  mkdirSync(`${ROOT}packages/cli/dist`, { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 120_000) rmSync(lock, { recursive: true, force: true }); // left by a killed run
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    build();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function build(): void {
  try {
    execFileSync(NODE, [`${ROOT}node_modules/typescript/bin/tsc`, "-b", "packages/cli"], {
      cwd: ROOT,
      stdio: "pipe",
    });
  } catch (e) {
    const out = String((e as { stdout?: Buffer }).stdout ?? e);
    if (!existsSync(MAIN)) throw new Error(`tsc -b packages/cli failed and there is no build:\n${out}`);
    console.warn(`tsc -b packages/cli reported errors; using the existing build:\n${out.slice(0, 2000)}`);
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `cairn <args…>` with `env` added to a clean environment (no CAIRN_* from the outside). */
export function cairn(args: string[], env: Record<string, string> = {}, cwd = ROOT): Promise<CliResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CAIRN_")));
  return new Promise((resolve) => {
    execFile(
      NODE,
      [BIN, ...args],
      { env: { ...base, ...env }, cwd, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A long-running `cairn` (dev, start): resolves once it printed its `{ url }` (run with `--json`). */
export function cairnServer(args: string[], env: Record<string, string> = {}, cwd = ROOT) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CAIRN_")));
  const child = spawn(NODE, [BIN, ...args], {
    env: { ...base, ...env },
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      stdout += d;
      const m = /"url":\s*"([^"]+)"/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`cairn ${args.join(" ")} exited with ${code}:\n${stderr}`)));
  });
  return {
    child,
    ready,
    exited,
    output: () => ({ stdout, stderr }),
    async stop(): Promise<number | null> {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** Polls `check` until it returns something other than undefined. */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
