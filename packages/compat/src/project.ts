import { existsSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { parseStoreLocation, type StoreLocation, type WorkflowClass, WorkflowError } from "@cairn/core";
import type { CairnOptions } from "@cairn/engine";
import { type DurableObjectClass, type Migration, missingMigration, planMigrations } from "@cairn/objects";
import { withContainer } from "@cairn/sandbox";
import { readDevSecrets } from "./dev-vars.ts";
import { importProjectModule } from "./loader.ts";
import { fetchHandler } from "./worker-exports.ts";
import { findWranglerConfig, loadWranglerConfig, type WranglerSendEmail } from "./wrangler.ts";

/** The files of a Cairn-native project, in the order they are looked for. */
export const CAIRN_CONFIG_FILES = [
  "cairn.config.ts",
  "cairn.config.mts",
  "cairn.config.js",
  "cairn.config.mjs",
];

/** Cloudflare's `ExecutionContext` as the fetch handler sees it. */
export interface FetchContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
  props: Record<string, unknown>;
}

/** A Worker's `fetch(request, env, ctx)` handler. */
export type FetchHandler = (
  request: Request,
  env: Record<string, unknown>,
  ctx: FetchContext,
) => Response | Promise<Response>;

export interface ProjectWorkflow {
  binding: string;
  name: string;
  class: WorkflowClass;
  /** The export naming the class (wrangler's `class_name`), when it came from a wrangler config. */
  className?: string;
  /** Cron expressions (wrangler's `workflows[].schedules`), when it has any. */
  schedules?: string | string[];
  /** `step.do` calls allowed per instance (wrangler's `workflows[].limits.steps`), when set. */
  stepLimit?: number;
}

/** A Worker's `scheduled(controller, env, ctx)` handler. */
export type ScheduledWorkerHandler = (
  controller: { cron: string; scheduledTime: number; type: "scheduled"; noRetry(): void },
  env: Record<string, unknown>,
  ctx: FetchContext,
) => unknown;

/** A Durable Object binding of a project. */
export interface ProjectObject {
  binding: string;
  class: DurableObjectClass;
  /** The export naming the class (wrangler's `class_name`). */
  className: string;
}

/** A project ready to run: what `createCairn` needs, plus the optional fetch handler. */
export interface LoadedProject {
  /** The wrangler `name`, the config's `name`, or the directory's name. */
  name: string;
  /** "wrangler" for a Cloudflare project, "cairn" for one with `cairn.config.ts`. */
  kind: "wrangler" | "cairn";
  /** The project directory (absolute). */
  dir: string;
  /** The configuration file read (absolute). */
  configPath: string;
  /** The module imported: wrangler's `main`, or the Cairn config itself (absolute). */
  entry: string;
  workflows: ProjectWorkflow[];
  /** Durable Object bindings (wrangler's `durable_objects.bindings`, or the Cairn config's `objects`). */
  objects: ProjectObject[];
  /** Wrangler's `migrations` (undefined for a Cairn-native project without them). */
  migrations?: Migration[];
  /** Wrangler `vars`, or the Cairn config's `env`: visible in `env` next to the workflow bindings. */
  vars: Record<string, unknown>;
  /** Wrangler `send_email` bindings (absent when there are none). */
  sendEmail?: WranglerSendEmail[];
  /** The default export's `fetch`, bound to it, when the entry module has one. */
  fetch?: FetchHandler;
  /** Wrangler's `triggers.crons` (absent when there are none). */
  crons?: string[];
  /** The default export's `scheduled`, when the entry module has one. */
  scheduled?: ScheduledWorkerHandler;
  /** The entry module's exports (for `exports` of `cloudflare:workers`). */
  module: Record<string, unknown>;
  /** Where the project keeps its state by default: `<dir>/.cairn/cairn.db`, or the Cairn config's `store`. */
  storePath: string;
  /** Other `createCairn` options of a Cairn-native project (maxConcurrent, hooks, …). */
  options: Partial<Omit<CairnOptions, "workflows" | "env" | "store" | "objects" | "migrations">>;
  /** The wrangler environment selected with `env`, if any. */
  env?: string;
  /** Names of the secrets read into `vars` from `.dev.vars` or `.env` (with `secrets: true`). */
  secrets: string[];
  /** The files those secrets came from, relative to the project. */
  secretsFiles: string[];
  /**
   * Things that loaded but will not work as on Cloudflare, one line each: unsupported wrangler
   * sections, a tsconfig.json whose `extends` is missing, an `--env` a Cairn config ignores.
   */
  warnings: string[];
}

export interface LoadProjectOptions {
  /** A configuration file to use instead of looking in the directory (wrangler.* or cairn.config.*). */
  config?: string;
  /** The wrangler environment to use (`env.<name>` of the config), like `wrangler dev --env`. */
  env?: string;
  /**
   * Read local secrets into `vars` as `wrangler dev` does: `.dev.vars` (`.dev.vars.<env>`), or the
   * `.env` files when there is no `.dev.vars` (see `readDevSecrets`). For development only.
   */
  secrets?: boolean;
}

/** A project that cannot be loaded: a missing export, a wrong class, a failing module. */
export class ProjectError extends Error {
  override name = "ProjectError";
}

/**
 * Loads a project without a build step: a Cloudflare project (`wrangler.jsonc|json|toml`, whose
 * `main` module exports each workflow's `class_name` and optionally a default `{ fetch }`), or a
 * Cairn-native one (`cairn.config.ts` whose default export is `createCairn` options, optionally with
 * `fetch`, or a named `fetch` export). `cairn.config.*` wins when both exist. `dir` may also name the
 * configuration file.
 *
 * ```ts
 * const project = await loadProject("./examples/cloudflare-starter");
 * const cairn = await createCairn({ store: project.storePath, workflows: project.workflows, env: project.vars });
 * ```
 */
export async function loadProject(dir: string, options: LoadProjectOptions = {}): Promise<LoadedProject> {
  let root = resolve(dir);
  let configPath = options.config ? resolve(root, options.config) : undefined;
  if (!configPath && existsSync(root) && statSync(root).isFile()) {
    configPath = root;
    root = dirname(root);
  }
  if (!existsSync(root)) throw new ProjectError(`Project directory ${root} does not exist`);
  configPath ??=
    CAIRN_CONFIG_FILES.map((f) => join(root, f)).find((f) => existsSync(f)) ?? findWranglerConfig(root);
  if (!configPath)
    throw new ProjectError(
      `No project in ${root}: expected wrangler.jsonc, wrangler.json, wrangler.toml or cairn.config.ts`,
    );
  if (!existsSync(configPath)) throw new ProjectError(`Configuration file ${configPath} does not exist`);
  const project = /(^|[\\/])cairn\.config\.[mc]?[jt]s$/.test(configPath)
    ? await loadCairnProject(root, configPath, options)
    : await loadWranglerProject(root, configPath, options);
  if (options.secrets) {
    const secrets = readDevSecrets(dirname(configPath), options.env);
    Object.assign(project.vars, secrets.values);
    project.secrets = Object.keys(secrets.values);
    project.secretsFiles = secrets.files;
  }
  return project;
}

async function loadWranglerProject(
  root: string,
  configPath: string,
  options: LoadProjectOptions,
): Promise<LoadedProject> {
  const config = loadWranglerConfig(configPath, options.env ? { env: options.env } : {});
  const warnings = [...config.warnings];
  const base = dirname(configPath);
  const entry = resolve(base, config.main);
  if (!existsSync(entry))
    throw new ProjectError(`${configPath}: main "${config.main}" does not exist (looked for ${entry})`);
  const mod = await importEntry(entry, base, (w) => warnings.push(w));
  const shown = relative(root, entry) || basename(entry);
  const workflows = config.workflows.map((w) => {
    const cls = mod[w.class_name];
    if (cls === undefined)
      throw new ProjectError(
        `${shown} does not export "${w.class_name}" (workflow "${w.name}" in ${basename(configPath)}); ` +
          `exports: ${Object.keys(mod).join(", ") || "none"}`,
      );
    checkWorkflowClass(cls, `${shown}: export "${w.class_name}" (workflow "${w.name}")`);
    return {
      binding: w.binding,
      name: w.name,
      class: cls as WorkflowClass,
      className: w.class_name,
      ...(w.schedules ? { schedules: w.schedules } : {}),
      ...(w.limits?.steps !== undefined ? { stepLimit: w.limits.steps } : {}),
    };
  });
  const classes = planMigrations(config.migrations, []).classes;
  const objects = config.durableObjects.map((o) => {
    const cls = mod[o.class_name];
    if (cls === undefined)
      throw new WorkflowError(
        "do.class_not_found",
        `${o.class_name}: ${shown} does not export it (Durable Object binding ${o.name} in ${basename(configPath)}); ` +
          `exports: ${Object.keys(mod).join(", ") || "none"}`,
      );
    if (typeof cls !== "function" || typeof (cls as Function).prototype !== "object")
      throw new WorkflowError(
        "do.class_not_found",
        `${o.class_name}: export "${o.class_name}" of ${shown} is not a class (Durable Object binding ${o.name})`,
      );
    if (!classes.has(o.class_name)) throw missingMigration(o.class_name, o.name);
    // A class in containers[] (a Sandbox) gets ctx.container, as on Cloudflare.
    const withCtr = config.containers?.includes(o.class_name)
      ? withContainer(cls as DurableObjectClass)
      : cls;
    return { binding: o.name, class: withCtr as DurableObjectClass, className: o.class_name };
  });
  const fetch = projectFetchHandler(mod.default, shown);
  const scheduled = scheduledHandler(mod.default);
  if (config.crons && !scheduled)
    throw new ProjectError(
      `${shown}: ${basename(configPath)} has triggers.crons, but the default export has no scheduled(controller, env, ctx) handler`,
    );
  return {
    name: config.name ?? basename(root),
    kind: "wrangler",
    dir: root,
    configPath,
    entry,
    workflows,
    objects,
    migrations: config.migrations,
    vars: { ...config.vars },
    ...(config.sendEmail ? { sendEmail: config.sendEmail } : {}),
    ...(fetch ? { fetch } : {}),
    ...(config.crons ? { crons: config.crons } : {}),
    ...(scheduled ? { scheduled } : {}),
    module: mod,
    storePath: join(root, ".cairn", "cairn.db"),
    options: config.cpuLimitMs !== undefined ? { cpuLimitMs: config.cpuLimitMs } : {},
    ...(config.env ? { env: config.env } : {}),
    secrets: [],
    secretsFiles: [],
    warnings,
  };
}

async function loadCairnProject(
  root: string,
  configPath: string,
  loadOptions: LoadProjectOptions,
): Promise<LoadedProject> {
  const warnings: string[] = [];
  const mod = await importEntry(configPath, dirname(configPath), (w) => warnings.push(w));
  const shown = basename(configPath);
  if (loadOptions.env)
    warnings.push(
      `${shown}: --env ${loadOptions.env} is ignored (environments are a wrangler configuration feature)`,
    );
  const config = mod.default as (Partial<CairnOptions> & { fetch?: unknown; name?: unknown }) | undefined;
  if (typeof config !== "object" || config === null)
    throw new ProjectError(`${shown} must export default the createCairn options ({ workflows: [...] })`);
  if (!Array.isArray(config.workflows) && !(Array.isArray(config.objects) && config.workflows === undefined))
    throw new ProjectError(`${shown}: workflows must be an array of { binding, name, class }`);
  if (config.objects !== undefined && !Array.isArray(config.objects))
    throw new ProjectError(`${shown}: objects must be an array of { binding, class }`);
  const objects = (config.objects ?? []).map((o, i) => {
    if (typeof o?.binding !== "string") throw new ProjectError(`${shown}: objects[${i}] needs a binding`);
    if (typeof o.class !== "function")
      throw new WorkflowError(
        "do.class_not_found",
        `objects[${i}] (binding ${o.binding}) of ${shown} is not a class`,
      );
    return { binding: o.binding, class: o.class, className: o.className ?? o.class.name };
  });
  const workflows = (config.workflows ?? []).map((w, i) => {
    if (typeof w?.name !== "string" || typeof w.binding !== "string")
      throw new ProjectError(`${shown}: workflows[${i}] needs a name and a binding`);
    checkWorkflowClass(w.class, `${shown}: workflows[${i}].class (workflow "${w.name}")`);
    return {
      binding: w.binding,
      name: w.name,
      class: w.class,
      ...(w.schedules !== undefined ? { schedules: w.schedules } : {}),
      ...(w.stepLimit !== undefined ? { stepLimit: w.stepLimit } : {}),
    };
  });
  const fetch = projectFetchHandler(
    config.fetch !== undefined ? config : mod.fetch ? { fetch: mod.fetch } : undefined,
    shown,
  );
  const { store, env, workflows: _w, fetch: _f, name, objects: _o, migrations, ...options } = config;
  if (store !== undefined && typeof store !== "string")
    throw new ProjectError(
      `${shown}: store must be a path (a Store object cannot be shared with the server)`,
    );
  let storePath = join(root, ".cairn", "cairn.db");
  if (store !== undefined) {
    let location: StoreLocation;
    try {
      location = parseStoreLocation(store);
    } catch (e) {
      throw new ProjectError(`${shown}: ${(e as Error).message}`);
    }
    storePath = location.kind === "sqlite" && !isAbsolute(store) ? resolve(root, store) : store;
  }
  return {
    name: typeof name === "string" ? name : basename(root),
    kind: "cairn",
    dir: root,
    configPath,
    entry: configPath,
    workflows,
    objects,
    ...(migrations ? { migrations } : {}),
    vars: { ...(env ?? {}) },
    ...(fetch ? { fetch } : {}),
    module: mod,
    storePath,
    options,
    secrets: [],
    secretsFiles: [],
    warnings,
  };
}

async function importEntry(
  file: string,
  projectDir: string,
  warn: (message: string) => void,
): Promise<Record<string, unknown>> {
  try {
    const mod = await importProjectModule(file, projectDir, warn);
    // A TypeScript file outside a `"type": "module"` package is compiled to CommonJS: its
    // `export default` is then `default.default`.
    const cjs = mod.default as { __esModule?: boolean; default?: unknown } | undefined;
    if (cjs && typeof cjs === "object" && cjs.__esModule) return { ...cjs, default: cjs.default };
    return mod;
  } catch (e) {
    const err = new ProjectError(`Cannot load ${file}: ${(e as Error)?.message ?? String(e)}`);
    (err as Error).cause = e;
    throw err;
  }
}

/** Whether `cls` is a class that extends `WorkflowEntrypoint` (any copy of it: Cairn's or the shim's). */
export function isWorkflowClass(cls: unknown): cls is WorkflowClass {
  if (typeof cls !== "function" || typeof cls.prototype !== "object") return false;
  for (let p = Object.getPrototypeOf(cls); typeof p === "function"; p = Object.getPrototypeOf(p))
    if (p.name === "WorkflowEntrypoint") return typeof cls.prototype.run === "function";
  return false;
}

function checkWorkflowClass(cls: unknown, what: string): void {
  if (typeof cls !== "function" || typeof (cls as Function).prototype !== "object")
    throw new ProjectError(`${what} is not a class (it is ${cls === null ? "null" : typeof cls})`);
  if (!isWorkflowClass(cls)) {
    const extendsIt = (() => {
      for (let p = Object.getPrototypeOf(cls); typeof p === "function"; p = Object.getPrototypeOf(p))
        if (p.name === "WorkflowEntrypoint") return true;
      return false;
    })();
    throw new ProjectError(
      extendsIt
        ? `${what} has no run(event, step) method`
        : `${what} does not extend WorkflowEntrypoint (import it from "cloudflare:workers" or "cairnjs")`,
    );
  }
}

/**
 * The `scheduled` handler of a default export: an object's `scheduled(controller, env, ctx)`, or a
 * class's (e.g. a `WorkerEntrypoint`) whose instance, made per call with `(ctx, env)`, has
 * `scheduled(controller)`.
 */
export function scheduledHandler(def: unknown): ScheduledWorkerHandler | undefined {
  if (typeof def === "function" && typeof def.prototype?.scheduled === "function") {
    const Cls = def as new (
      ctx: FetchContext,
      env: Record<string, unknown>,
    ) => { scheduled(c: unknown): unknown };
    return (controller, env, ctx) => new Cls(ctx, env).scheduled(controller);
  }
  if (
    typeof def === "object" &&
    def !== null &&
    typeof (def as { scheduled?: unknown }).scheduled === "function"
  )
    return (def as { scheduled: ScheduledWorkerHandler }).scheduled.bind(def);
  return undefined;
}

/**
 * `createCairn`'s `triggers` for a project: its `triggers.crons`, calling its `scheduled()` with
 * `env` and a fresh context whose `waitUntil` promises are awaited. `undefined` without crons.
 */
export function projectTriggers(
  project: Pick<LoadedProject, "crons" | "scheduled">,
  context: () => FetchContext & { settle(): Promise<void> },
): CairnOptions["triggers"] | undefined {
  const handler = project.scheduled;
  if (!project.crons?.length || !handler) return undefined;
  return {
    crons: project.crons,
    scheduled: async (controller, env) => {
      const ctx = context();
      try {
        await handler(controller, env, ctx);
      } finally {
        await ctx.settle();
      }
    },
  };
}

/** The fetch handler of a default export (see `fetchHandler`), failing with a `ProjectError`. */
function projectFetchHandler(def: unknown, shown: string): FetchHandler | undefined {
  try {
    return fetchHandler(def, shown);
  } catch (e) {
    throw new ProjectError((e as Error).message);
  }
}
