import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { watch } from "chokidar";
import { DEFAULT_HOST, DEFAULT_PORT } from "./host.ts";
import type { LoadFailure } from "./load-error.ts";
import { bannerLines, type ProjectInfo } from "./project-info.ts";

export interface DevOptions {
  /** Default 8787; 0 picks a free port once, kept across reloads. */
  port?: number;
  /** Default "127.0.0.1". */
  host?: string;
  token?: string;
  /**
   * Host names requests may be addressed to besides loopback names (see `startServer`'s
   * `hostAllow`); every other `Host` is refused.
   */
  hostAllow?: string[];
  /** Store path; default `<dir>/.cairn/cairn.db` (shared by every reload). */
  store?: string;
  /** A configuration file to use instead of looking in `dir`. */
  config?: string;
  /** The wrangler environment to use (`env.<name>`), like `wrangler dev --env <name>`. */
  env?: string;
  /**
   * The module that exports `createApi` and `startServer` (a specifier or file URL), imported by
   * the child process. Default "@cairn/server"; the CLI passes `import.meta.resolve("@cairn/server")`.
   */
  server?: string;
  /** Notices (ready, reloading, crashed). Default: console.log. */
  log?: (line: string) => void;
  /** Where the child's stdout/stderr go. Default: this process's. */
  output?: (chunk: string, stream: "stdout" | "stderr") => void;
  /** Quiet time after the last file change before reloading. Default 150 ms. */
  debounceMs?: number;
}

/** A running `cairn dev`. */
export interface DevServer {
  /** Where the project is served, e.g. "http://127.0.0.1:8787". */
  readonly url: string;
  /** The current child process's id (undefined while it is down). */
  readonly pid: number | undefined;
  /** Restarts the child now (also after it crashed); resolves when it is ready again or failed. */
  restart(): Promise<void>;
  /** Stops watching and stops the child. */
  close(): Promise<void>;
}

/** Paths under the project that never trigger a reload (`__pycache__`: Python's byte-code). */
const IGNORED = new Set([".cairn", "node_modules", ".git", ".wrangler", "dist", "__pycache__"]);

const CHILD = new URL(`./dev-child${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

/**
 * `cairn dev`: runs the project (see `hostProject`) in a child process and restarts it when a file
 * under the project changes (ignoring .cairn/, node_modules/, .git/), whether the editor writes the
 * file in place or writes a new file and renames it over the old one. The store is shared, so
 * instances in flight continue on the new code. Secrets come from `.dev.vars` (or `.env`).
 *
 * A project that does not load (a syntax error, a missing import, a bad wrangler config) does not
 * take the server down: the API and dashboard keep answering, the project's routes answer 500 with
 * the error, the error is logged once (file:line:col, no stack), and the next change tries again.
 * Resolves once the first start is serving (the project or its error); rejects only when nothing
 * can be served (the port is in use), with a one-line message.
 *
 * ```ts
 * const dev = await runDev("./my-worker", { port: 8787, server: import.meta.resolve("@cairn/server") });
 * process.on("SIGINT", () => dev.close());
 * ```
 */
export async function runDev(dir: string, options: DevOptions = {}): Promise<DevServer> {
  const root = resolve(dir);
  if (!existsSync(root)) throw new Error(`Project directory ${root} does not exist`);
  const log = options.log ?? ((line: string) => console.log(line));
  const output =
    options.output ??
    ((chunk: string, stream: "stdout" | "stderr") =>
      (stream === "stdout" ? process.stdout : process.stderr).write(chunk));
  const host = options.host ?? DEFAULT_HOST;
  let port = options.port ?? DEFAULT_PORT;
  let url = "";
  let child: ChildProcess | undefined;
  let closed = false;
  let queue: Promise<void> = Promise.resolve();
  const stopped = new WeakSet<ChildProcess>();

  let lastWarnings = "";
  const start = () =>
    new Promise<void>((resolveStart, rejectStart) => {
      const proc = spawn(process.execPath, [fileURLToPath(CHILD)], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe", "ipc"],
        env: {
          ...process.env,
          CAIRN_DEV_CHILD: JSON.stringify({
            dir: root,
            config: options.config,
            env: options.env,
            store: options.store,
            host,
            port,
            token: options.token,
            hostAllow: options.hostAllow,
            server: options.server ?? "@cairn/server",
            shutdownTimeoutMs: 0,
          }),
        },
      });
      child = proc;
      proc.stdout?.setEncoding("utf8").on("data", (c: string) => output(c, "stdout"));
      proc.stderr?.setEncoding("utf8").on("data", (c: string) => output(c, "stderr"));
      let settled = false;
      const first = !url;
      proc.on("message", (m: any) => {
        if (settled) return;
        settled = true;
        if (m?.type === "ready" || m?.type === "failed") {
          url = m.url;
          port = Number(new URL(m.url).port) || port;
        }
        if (m?.type === "ready") {
          const info = m.info as ProjectInfo;
          if (first) for (const line of bannerLines(info, url)) log(line);
          else log(`Cairn dev: reloaded on ${m.url}`);
          const warnings = info.warnings.join("\n");
          if (first || warnings !== lastWarnings) for (const w of info.warnings) log(`⚠ ${w}`);
          lastWarnings = warnings;
          resolveStart();
        } else if (m?.type === "failed") {
          const failure = m.failure as LoadFailure;
          log(`✘ ${failure.message}`);
          log(
            `Cairn dev: the project did not load; its routes answer 500 until it is fixed ` +
              `(dashboard ${url}/_cairn/, API ${url}/api/v1). Waiting for changes`,
          );
          lastWarnings = "";
          resolveStart();
        } else {
          // A fatal start: the child exits by itself; that is not a crash to report.
          stopped.add(proc);
          rejectStart(new Error(m?.message ?? "the project failed to start"));
        }
      });
      proc.on("exit", (code, signal) => {
        if (child === proc) child = undefined;
        if (!settled) {
          settled = true;
          rejectStart(
            new Error(`the project process exited (${signal ?? `code ${code}`}) before it was ready`),
          );
        } else if (!stopped.has(proc) && !closed)
          log(`Cairn dev: the project process exited (${signal ?? `code ${code}`}); waiting for changes`);
      });
    });

  const stop = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    stopped.add(proc);
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };

  const restart = (reason?: string) =>
    (queue = queue.then(async () => {
      if (closed) return;
      if (reason) log(`Cairn dev: ${reason}, reloading`);
      await stop();
      if (closed) return;
      try {
        await start();
      } catch (e) {
        log(`Cairn dev: ${(e as Error).message}; waiting for changes`);
      }
    }));

  let timer: NodeJS.Timeout | undefined;
  let changed = new Set<string>();
  // chokidar watches each directory (not inodes), so files replaced by a rename are still seen.
  const watcher = watch(root, {
    ignoreInitial: true,
    ignored: (path: string) => {
      const rel = relative(root, path);
      return rel !== "" && rel.split(sep).some((part) => IGNORED.has(part));
    },
  });
  await new Promise<void>((r) => watcher.once("ready", () => r()));
  watcher.on("all", (_event, path) => {
    if (closed) return;
    changed.add(relative(root, path) || path);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const files = [...changed];
      changed = new Set();
      void restart(`${files.slice(0, 3).join(", ")}${files.length > 3 ? ", …" : ""} changed`);
    }, options.debounceMs ?? 150);
  });

  try {
    await start();
  } catch (e) {
    closed = true;
    await watcher.close();
    throw e;
  }

  return {
    get url() {
      return url;
    },
    get pid() {
      return child?.pid;
    },
    restart: () => restart(),
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      await watcher.close();
      await queue;
      await stop();
    },
  };
}
