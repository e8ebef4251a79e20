import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WorkflowError } from "@cairn/core";
import type { WorkflowGraph } from "@cairn/diagram";
import { createCairn } from "@cairn/engine";
import { RemoteWorkers } from "@cairn/runtime";
import { parse as parseToml } from "smol-toml";
import { readDevSecrets } from "./dev-vars.ts";
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

/**
 * The environment a Python process of Cairn runs with: Cairn's SDK (and `extra` folders) first on
 * `PYTHONPATH`, no `__pycache__` written into the project (a dev reload must not see its own
 * byte-code as a change).
 */
export function pythonEnv(extra: string[] = [], env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const path = [PYTHON_SDK_DIR, ...extra, env.PYTHONPATH].filter(Boolean).join(delimiter);
  return { ...env, PYTHONPATH: path, PYTHONDONTWRITEBYTECODE: "1" };
}

/**
 * The diagram graphs of the workflow classes of a `.py` file, from the `ast` analyser of Cairn's
 * Python SDK (`python3 -m cairn_worker.diagram`; the code is parsed, never run).
 */
export async function pythonGraphs(path: string, python = checkPython().python): Promise<WorkflowGraph[]> {
  const stdout = await new Promise<string>((resolvePromise, reject) =>
    execFile(
      python,
      ["-m", "cairn_worker.diagram", path],
      { encoding: "utf8", env: pythonEnv(), maxBuffer: 16 * 1024 * 1024 },
      (error, out, err) =>
        error
          ? reject(
              new Error(`Cannot analyse ${path}: ${String(err).trim().split("\n").pop() || error.message}`),
            )
          : resolvePromise(out),
    ),
  );
  return JSON.parse(stdout) as WorkflowGraph[];
}

/**
 * The dependencies a `pyproject.toml` declares (`[project].dependencies`), which Cairn does not
 * install (SPEC §11.5): the warning naming them, or undefined when there are none. A file that is
 * not valid TOML is named in the warning too.
 */
export function pyprojectWarning(root: string): string | undefined {
  const path = join(root, "pyproject.toml");
  if (!existsSync(path)) return undefined;
  let deps: unknown;
  try {
    deps = (parseToml(readFileSync(path, "utf8")) as { project?: { dependencies?: unknown } }).project
      ?.dependencies;
  } catch (e) {
    return `pyproject.toml is not valid TOML (${(e as Error).message.split("\n")[0]}); its dependencies, if any, are not installed`;
  }
  if (!Array.isArray(deps) || deps.length === 0) return undefined;
  return (
    `pyproject.toml: Cairn does not install Python packages; these dependencies are not available ` +
    `unless present on PYTHONPATH or in python_modules/: ${deps.map(String).join(", ")}`
  );
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
  /**
   * Read `.dev.vars` / `.env` secrets into the worker's `self.env` (development, as for TypeScript
   * projects). `cairn dev` reloads by restarting the whole host (its watcher sees `.py` changes).
   */
  secrets?: boolean;
  /** Lines for people: worker output, `print()` with the instance id, restarts. */
  log?: (line: string) => void;
  /** Print the project's warnings (`⚠ …`) through `log`. Default true; `cairn dev` prints them itself. */
  printWarnings?: boolean;
}

/**
 * Serves a Python project: the API, dashboard routes and `fetch` (to `Default.fetch`) in this
 * process, its workflows run by a supervised `python3 -m cairn_worker <main>` over worker protocol
 * v1. The worker is restarted when it exits. Its `self.env` holds the configuration's `vars` (and
 * the `.dev.vars` secrets with `secrets`), passed as JSON in `CAIRN_VARS`.
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
  const secrets = options.secrets ? readDevSecrets(root, options.env) : { values: {}, files: [] };
  const vars: Record<string, unknown> = { ...config.vars, ...secrets.values };
  const warnings = [...config.warnings];
  const pyproject = pyprojectWarning(root);
  if (pyproject) warnings.push(pyproject);
  if (options.printWarnings ?? true) for (const w of warnings) log(`⚠ ${w}`);
  const storePath = options.store ?? join(root, ".cairn", "cairn.db");
  if (storePath !== ":memory:" && !storePath.includes("://"))
    mkdirSync(dirname(storePath), { recursive: true });
  const workers = new RemoteWorkers({
    workflows: config.workflows.map((w) => ({ name: w.name, className: w.class_name, binding: w.binding })),
    log: (l) => log(`[${l.instanceId ? `${l.workflow} ${l.instanceId}` : "python"}] ${l.message}`),
  });
  const cairn = await createCairn({
    store: storePath,
    workflows: workers.definitions().map((d) => {
      const schedules = config.workflows.find((w) => w.name === d.name)?.schedules;
      return { ...d, binding: d.binding ?? d.name, ...(schedules?.length ? { schedules } : {}) };
    }),
    env: { ...vars },
  });
  workers.attach(cairn.runtime);
  const workflows = config.workflows.map((w) => ({
    binding: w.binding,
    name: w.name,
    className: w.class_name,
  }));
  const info = {
    ...(config.name ? { name: config.name } : {}),
    config: relative(root, config.path),
    ...(options.env ? { env: options.env } : {}),
    workflows,
    vars: Object.keys(config.vars).filter((k) => !(k in secrets.values)),
    secrets: Object.keys(secrets.values),
    secretsFiles: secrets.files,
    store: storePath,
    warnings,
  } as ServedProject["info"];
  // Diagrams: the module is analysed with `ast` once, at the first request for a graph.
  let graphs: Promise<Map<string, WorkflowGraph>> | undefined;
  const graph = async (workflow: string) => {
    graphs ??= pythonGraphs(entry, python).then(
      (all) =>
        new Map(
          config.workflows.flatMap((w) => {
            const g = all.find((x) => x.workflow.class_name === w.class_name);
            return g ? [[w.name, g] as const] : [];
          }),
        ),
      (e) => {
        log(`Cairn: no diagram for ${config.main}: ${(e as Error).message}`);
        return new Map();
      },
    );
    return (await graphs).get(workflow);
  };
  const app = options.createApi({
    runtime: cairn.runtime,
    workers,
    graph,
    project: () => info,
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
  const spawnWorker = () => {
    child = spawn(python, ["-m", "cairn_worker", entry, "--server", server.url], {
      cwd: root,
      env: {
        ...pythonEnv([join(root, "python_modules")]),
        CAIRN_WORKFLOWS: JSON.stringify(config.workflows),
        CAIRN_VARS: JSON.stringify(vars),
        CAIRN_PARENT_PID: String(process.pid),
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
        log("Cairn: the Python worker cannot start (see above); fix the module to retry");
        return;
      }
      log(`Cairn: the Python worker exited (${code ?? "signal"}); restarting it`);
      setTimeout(() => !closing && !child && spawnWorker(), 500).unref();
    });
  };
  spawnWorker();

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
    info,
    async close() {
      closing = true;
      child?.kill("SIGTERM");
      workers.close();
      await server.close();
      await cairn.close();
    },
  };
}
