/**
 * Child processes for the crash tests of Durable Objects and agents (tests/objects-crash,
 * tests/agents-crash): runs a TypeScript script on the repository's Node 24 with the workspace
 * packages' sources (`--conditions=source`), reads the JSON lines it prints (one event each, the
 * first `{"event":"ready","port"}`), and SIGKILLs it. `cleanUp()` (for afterEach) kills what is
 * still alive and removes the temporary directories made by `tempDir`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
/** Node 24 from the repository's devDependencies (the system node may be older). */
export const NODE = join(ROOT, "node_modules/.bin/node");

/** One JSON line printed by the child. */
export type ChildEvent = Record<string, any> & { event: string };

export interface Child {
  proc: ChildProcess;
  /** `http://127.0.0.1:<port>` of the ready event. */
  base: string;
  events: ChildEvent[];
  /** The next event named `event` after the last one `next` returned (waits for it). */
  next(event: string): Promise<ChildEvent>;
  /** Resolves when the process has exited (for any reason). */
  exited: Promise<void>;
  get(path: string): Promise<any>;
  post(path: string): Promise<Response>;
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();
const dirs: string[] = [];

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export async function cleanUp(): Promise<void> {
  await Promise.all(
    [...live].map((p) => {
      const gone = new Promise<void>((r) =>
        p.exitCode !== null || p.signalCode !== null ? r() : p.once("exit", () => r()),
      );
      p.kill("SIGKILL");
      return gone;
    }),
  );
  live.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Starts `node --conditions=source <script> ...args` and waits for its ready event. */
export async function startChild(script: string, args: string[]): Promise<Child> {
  const proc = spawn(
    NODE,
    ["--conditions=source", "--disable-warning=ExperimentalWarning", script, ...args],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  live.add(proc);
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  void exited.then(() => live.delete(proc));
  const events: ChildEvent[] = [];
  let wake: (() => void)[] = [];
  let buffer = "";
  proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        events.push(JSON.parse(line));
      } catch {
        // not an event line (the child's own output)
      }
    }
    for (const w of wake.splice(0)) w();
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
    for (const w of wake.splice(0)) w();
  });
  let seen = 0;
  const next = async (event: string): Promise<ChildEvent> => {
    for (;;) {
      const i = events.findIndex((e, j) => j >= seen && e.event === event);
      if (i >= 0) {
        seen = i + 1;
        return events[i]!;
      }
      if (gone) throw new Error(`the child exited (code ${proc.exitCode}) before "${event}"`);
      await new Promise<void>((r) => wake.push(r));
    }
  };
  const ready = await next("ready");
  const base = `http://127.0.0.1:${ready.port}`;
  return {
    proc,
    base,
    events,
    next,
    exited,
    get: async (path) => (await fetch(`${base}${path}`)).json(),
    post: (path) => fetch(`${base}${path}`, { method: "POST" }),
    kill: async () => {
      proc.kill("SIGKILL");
      await exited;
      wake = [];
    },
  };
}
