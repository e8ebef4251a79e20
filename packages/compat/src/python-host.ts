import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, type FSWatcher, mkdirSync, readFileSync, watch } from "node:fs";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WorkflowError } from "@cairn/core";
import { RemoteWorkers } from "@cairn/runtime";
import { createCairn } from "cairnjs";
import type { CreateApi, StartServer } from "./host.ts";
import type { ServedProject } from "./worker-host.ts";
import { findWranglerConfig, loadWranglerConfig, type WranglerConfig } from "./wrangler.ts";

/** The Python SDK shipped with Cairn (modules `workers`, `workers.workflows`, `cairn_worker`). */
export const PYTHON_SDK_DIR = fileURLToPath(new URL("../../../python", import.meta.url));

/** Whether a wrangler configuration's `main` is a Python module (SPEC §11.5). */
export function isPythonMain(main: string): boolean {
  return main.endsWith(".py");
}

/** A wrangler project whose `main` is a `.py` file (served by `hostPythonProject`). */
export function pythonMain(dir: string, options: { config?: string; env?: string }): boolean {
  const path = options.config ?? findWranglerConfig(dir);
  if (!path || !/\.(jsonc?|toml)$/.test(path)) return false;
  try {
    return isPythonMain(loadWranglerConfig(path, options.env ? { env: options.env } : {}).main);
  } catch {
    return false;
  }
}

/**
 * `compatibility_date` and `compatibility_flags` of a wrangler file (they choose the `step.do` mode
 * of Python workflows, SPEC §10.2). Read from the text: the validated config does not keep them.
 */
export function compatibilityOf(path: string): { date?: string; flags: string[] } {
  const text = readFileSync(path, "utf8");
  const sep = path.endsWith(".toml") ? "=" : ":";
  const date = new RegExp(`["']?compatibility_date["']?\\s*${sep}\\s*["']([^"']+)["']`).exec(text)?.[1];
  const list = new RegExp(`["']?compatibility_flags["']?\\s*${sep}\\s*\\[([^\\]]*)\\]`).exec(text)?.[1] ?? "";
  const flags = [...list.matchAll(/["']([^"']+)["']/g)].map((m) => m[1]!);
  return { ...(date ? { date } : {}), flags };
}

/**
 * The interpreter Cairn runs Python workers with (`CAIRN_PYTHON`, else `python3`), checked:
 * `(python.not_found)` without one, `(python.too_old)` below 3.10.
 */
export function checkPython(python = process.env.CAIRN_PYTHON ?? "python3"): {
  python: string;
  version: string;
} {
  const r = spawnSync(python, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], {
    encoding: "utf8",
  });
  if (r.error || r.status !== 0)
    throw new WorkflowError(
      "python.not_found",
      `No Python interpreter "${python}" found: install python3 ≥ 3.10 or set CAIRN_PYTHON`,
    );
  const version = r.stdout.trim();
  const [major, minor] = version.split(".").map(Number);
  if (major! < 3 || (major === 3 && minor! < 10))
    throw new WorkflowError("python.too_old", `found ${version}, need ≥ 3.10 (${python}; set CAIRN_PYTHON)`);
  return { python, version };
}

export interface PythonHostOptions {
  config?: string;
  env?: string;
  store?: string;
  host?: string;
  port?: number;
  token?: string;
  hostAllow?: string[];
  startServer: StartServer;
  createApi: CreateApi;
  /** Restart the worker when a `.py` file of the project changes (`cairn dev`). */
  watch?: boolean;
  /** Lines for people: worker output, `print()` with the instance id, restarts. */
  log?: (line: string) => void;
}

/**
 * Serves a Python project: the API, dashboard routes and `fetch` (to `Default.fetch`) in this
 * process, its workflows run by a supervised `python3 -m cairn_worker <main>` over worker protocol
 * v1. The worker is restarted when it exits (and, with `watch`, when a `.py` file changes).
 */
export async function hostPythonProject(dir: string, options: PythonHostOptions): Promise<ServedProject> {
  const log = options.log ?? ((line: string) => console.log(line));
  const config: WranglerConfig = loadWranglerConfig(
    options.config ?? dir,
    options.env ? { env: options.env } : {},
  );
  const root = dirname(config.path);
  const entry = resolve(root, config.main);
  if (!existsSync(entry))
    throw new WorkflowError("workflow.not_found", `${config.path}: main "${config.main}" does not exist`);
  const { python } = checkPython();
  const compat = compatibilityOf(config.path);
  const storePath = options.store ?? join(root, ".cairn", "cairn.db");
  if (storePath !== ":memory:" && !storePath.includes("://"))
    mkdirSync(dirname(storePath), { recursive: true });
  const workers = new RemoteWorkers({
    workflows: config.workflows.map((w) => ({ name: w.name, className: w.class_name, binding: w.binding })),
    log: (l) => log(`[${l.instanceId ? `${l.workflow} ${l.instanceId}` : "python"}] ${l.message}`),
  });
  const cairn = await createCairn({
    store: storePath,
    workflows: workers.definitions().map((d) => ({ ...d, binding: d.binding ?? d.name })),
    env: { ...config.vars },
  });
  workers.attach(cairn.runtime);
  const app = options.createApi({
    runtime: cairn.runtime,
    workers,
    ...(options.token ? { token: options.token } : {}),
  });
  const server = (await options.startServer({
    app,
    ...(options.host ? { host: options.host } : {}),
    port: options.port ?? 8787,
    ...(options.token ? { token: options.token } : {}),
    ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
    fetch: (r) => workers.fetch(r),
  })) as { url: string; close(): Promise<void> };

  let child: ChildProcess | undefined;
  let closing = false;
  let broken = false;
  const spawnWorker = () => {
    const pythonPath = [PYTHON_SDK_DIR, join(root, "python_modules"), process.env.PYTHONPATH]
      .filter(Boolean)
      .join(delimiter);
    child = spawn(python, ["-m", "cairn_worker", entry, "--server", server.url], {
      cwd: root,
      env: {
        ...process.env,
        PYTHONPATH: pythonPath,
        CAIRN_WORKFLOWS: JSON.stringify(config.workflows),
        ...(compat.date ? { CAIRN_COMPATIBILITY_DATE: compat.date } : {}),
        CAIRN_COMPATIBILITY_FLAGS: compat.flags.join(","),
        ...(options.token ? { CAIRN_WORKER_TOKEN: options.token } : {}),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const me = child;
    for (const stream of [me.stdout, me.stderr])
      stream?.on("data", (d: Buffer) => {
        for (const line of d.toString("utf8").split("\n")) if (line.trim()) log(`[python] ${line}`);
      });
    me.on("exit", (code) => {
      if (closing || child !== me) return;
      child = undefined;
      if (code === 3) {
        broken = true;
        log("Cairn: the Python worker cannot start (see above); fix the module to retry");
        return;
      }
      log(`Cairn: the Python worker exited (${code ?? "signal"}); restarting it`);
      setTimeout(() => !closing && !child && spawnWorker(), 500).unref();
    });
  };
  spawnWorker();

  let watcher: FSWatcher | undefined;
  if (options.watch) {
    let timer: NodeJS.Timeout | undefined;
    watcher = watch(root, { recursive: true }, (_event, file) => {
      if (!file?.endsWith(".py") || file.includes("__pycache__") || file.startsWith(".cairn")) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        log(`Cairn: ${file} changed; restarting the Python worker`);
        const old = child;
        child = undefined;
        broken = false;
        old?.kill("SIGKILL");
        spawnWorker();
      }, 100);
    });
  }
  void broken;

  const workflows = config.workflows.map((w) => ({
    binding: w.binding,
    name: w.name,
    className: w.class_name,
  }));
  return {
    url: server.url,
    cairn,
    project: {
      name: config.name ?? root.split("/").pop() ?? "project",
      kind: "wrangler",
      dir: root,
      configPath: config.path,
      entry,
      storePath,
      workflows,
    },
    info: {
      ...(config.name ? { name: config.name } : {}),
      config: relative(root, config.path),
      workflows,
      vars: Object.keys(config.vars),
      secrets: [],
      secretsFiles: [],
      store: storePath,
      warnings: config.warnings,
    } as ServedProject["info"],
    async close() {
      closing = true;
      watcher?.close();
      child?.kill("SIGTERM");
      workers.close();
      await server.close();
      await cairn.close();
    },
  };
}
