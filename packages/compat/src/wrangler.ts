import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseSchedules } from "@cairn/core";
import { type ParseError, parse as parseJsonc, printParseErrorCode } from "jsonc-parser";
import { parse as parseToml } from "smol-toml";
import { z } from "zod";

/** The files `loadWranglerConfig` looks for, in this order; the first one found is used. */
export const WRANGLER_CONFIG_FILES = ["wrangler.jsonc", "wrangler.json", "wrangler.toml"] as const;

/** Workflow and binding names: the pattern and length Cloudflare accepts. */
const NAME = /^[a-zA-Z0-9_][a-zA-Z0-9-_]*$/;
/** Binding names become `env` properties: JavaScript identifiers. */
const BINDING = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** One entry of wrangler's `workflows[]`, as Cairn uses it. */
export interface WranglerWorkflow {
  /** The `env` property the workflow's binding appears as, e.g. "MY_WORKFLOW". */
  binding: string;
  /** The workflow's name, e.g. "my-workflow". */
  name: string;
  /** The exported class of the entry module that implements it. */
  class_name: string;
  /** `schedules` (SPEC §9.4): cron expressions, each slot creating one instance; absent when none. */
  schedules?: string[];
  /** `limits.steps`: `step.do` calls allowed per instance (1 … 25,000); absent for the default. */
  limits?: { steps?: number };
}

/** One entry of wrangler's `durable_objects.bindings[]`. */
export interface WranglerDurableObject {
  /** The `env` property of the namespace, e.g. "COUNTER". */
  name: string;
  /** The exported class of the entry module. */
  class_name: string;
}

/** One entry of wrangler's `migrations[]`. */
export interface WranglerMigration {
  tag: string;
  new_sqlite_classes?: string[];
  new_classes?: string[];
  renamed_classes?: { from: string; to: string }[];
  deleted_classes?: string[];
}

/** The part of a wrangler configuration Cairn runs. Other keys are accepted and ignored. */
export interface WranglerConfig {
  name?: string;
  /** The entry module, relative to the configuration file. */
  main: string;
  workflows: WranglerWorkflow[];
  /** `durable_objects.bindings[]` (empty when there are none). */
  durableObjects: WranglerDurableObject[];
  /** `containers[].class_name`: Durable Object classes that get `ctx.container` (Sandboxes). */
  containers?: string[];
  /** `migrations[]` (empty when there are none). */
  migrations: WranglerMigration[];
  /** Plain-text environment variables, visible in `env`. */
  vars: Record<string, string | number | boolean | object>;
  /** `triggers.crons`: cron expressions calling the Worker's `scheduled()`; absent when there are none. */
  crons?: string[];
  /** `limits.cpu_ms`: the CPU time an attempt may use, reported (not enforced) per attempt. */
  cpuLimitMs?: number;
  /** `send_email[]`: bindings agents send mail through (docs/agents.md); absent when there are none. */
  sendEmail?: WranglerSendEmail[];
  /** The file the configuration was read from (absolute). */
  path: string;
  /** The wrangler environment selected (`env.<name>`), if any. */
  env?: string;
  /**
   * One line per configuration section Cairn does not provide (its bindings would be undefined),
   * and per binding an environment does not inherit; each starts with the file's name.
   */
  warnings: string[];
}

/** One `send_email` binding: `env[name].send(message)`, optionally restricted in its recipients. */
export interface WranglerSendEmail {
  name: string;
  destination_address?: string;
  allowed_destination_addresses?: string[];
}

/** Options of `loadWranglerConfig` and `parseWranglerConfig`. */
export interface WranglerConfigOptions {
  /** Selects the wrangler environment `env.<name>` (like `wrangler dev --env <name>`). */
  env?: string;
}

/**
 * Sections of a wrangler configuration that Cairn does not provide, with what a user would miss.
 * Each present one gets a warning naming its bindings instead of leaving them `undefined` silently.
 */
export const UNSUPPORTED_SECTIONS: Readonly<Record<string, string>> = {
  kv_namespaces: "KV namespaces",
  d1_databases: "D1 databases",
  r2_buckets: "R2 buckets",
  ai: "Workers AI",
  queues: "Queues",
  assets: "static assets",
  site: "Workers Sites",
  services: "service bindings",
  vectorize: "Vectorize indexes",
  hyperdrive: "Hyperdrive",
  analytics_engine_datasets: "Analytics Engine datasets",
  browser: "Browser Rendering",
  images: "Images",
  dispatch_namespaces: "dispatch namespaces",
  mtls_certificates: "mTLS certificates",
  tail_consumers: "tail consumers",
  pipelines: "Pipelines",
  secrets_store_secrets: "Secrets Store secrets",
  version_metadata: "version metadata",
  unsafe: "unsafe bindings",
};

/**
 * Keys that wrangler environments do not inherit from the top level: an `env.<name>` section that
 * lacks one has none (wrangler's rule). Inheritable keys (`main`, `compatibility_date`, …) are.
 */
const NOT_INHERITED = [
  "define",
  "vars",
  "durable_objects",
  "workflows",
  "kv_namespaces",
  "d1_databases",
  "r2_buckets",
  "services",
  "queues",
  "ai",
  "vectorize",
  "hyperdrive",
  "analytics_engine_datasets",
  "browser",
  "images",
  "dispatch_namespaces",
  "mtls_certificates",
  "send_email",
  "tail_consumers",
  "pipelines",
  "secrets_store_secrets",
  "version_metadata",
  "unsafe",
];

const workflowSchema = z
  .object({
    binding: z
      .string({ error: "needs a binding (a string)" })
      .regex(BINDING, { error: "binding must be a JavaScript identifier, like MY_WORKFLOW" }),
    name: z
      .string({ error: "needs a name (a string)" })
      .max(64, { error: "name must be at most 64 characters" })
      .regex(NAME, { error: "name must match ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$" }),
    class_name: z
      .string({ error: "needs a class_name (a string)" })
      .regex(/^[A-Za-z_$][A-Za-z0-9_$]*$/, { error: "class_name must be the name of an exported class" }),
    script_name: z.string().optional(),
    schedules: z
      .union([z.string(), z.array(z.string())], {
        error: "schedules must be a cron expression or a list of them",
      })
      .optional(),
    limits: z
      .object({
        steps: z
          .number({ error: "limits.steps must be a number" })
          .int({ error: "limits.steps must be a whole number" })
          .min(1, { error: "limits.steps must be at least 1" })
          .max(25_000, { error: "limits.steps must be at most 25,000" })
          .optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

const CLASS_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const classList = z.array(
  z.string().regex(CLASS_NAME, { error: "class names must be the names of exported classes" }),
  { error: "must be a list of class names" },
);

const durableObjectSchema = z
  .object({
    name: z
      .string({ error: "needs a name (a string)" })
      .regex(BINDING, { error: "name must be a JavaScript identifier, like MY_DURABLE_OBJECT" }),
    class_name: z
      .string({ error: "needs a class_name (a string)" })
      .regex(CLASS_NAME, { error: "class_name must be the name of an exported class" }),
    script_name: z.string().optional(),
  })
  .loose();

const migrationSchema = z
  .object({
    tag: z.string({ error: "needs a tag (a string)" }).min(1, { error: "needs a tag (a string)" }),
    new_sqlite_classes: classList.optional(),
    new_classes: classList.optional(),
    renamed_classes: z
      .array(z.object({ from: z.string(), to: z.string().regex(CLASS_NAME) }), {
        error: "must be a list of { from, to }",
      })
      .optional(),
    deleted_classes: classList.optional(),
  })
  .loose();

const configSchema = z
  .object({
    name: z.string({ error: "name must be a string" }).optional(),
    main: z.string({ error: 'needs "main", the entry module (e.g. "src/index.ts")' }).min(1, {
      error: 'needs "main", the entry module (e.g. "src/index.ts")',
    }),
    workflows: z
      .array(workflowSchema, { error: 'needs "workflows", a list of { binding, name, class_name }' })
      .optional(),
    durable_objects: z
      .object({
        bindings: z
          .array(durableObjectSchema, { error: "must be a list of { name, class_name }" })
          .optional(),
      })
      .loose()
      .optional(),
    migrations: z
      .array(migrationSchema, { error: "must be a list of { tag, new_sqlite_classes, … }" })
      .optional(),
    triggers: z
      .object({
        crons: z.array(z.string(), { error: "crons must be a list of cron expressions" }).optional(),
      })
      .loose()
      .optional(),
    send_email: z
      .array(
        z
          .object({
            name: z
              .string({ error: "needs a name (a string)" })
              .regex(BINDING, { error: "name must be a JavaScript identifier, like EMAIL" }),
            destination_address: z.string({ error: "destination_address must be a string" }).optional(),
            allowed_destination_addresses: z
              .array(z.string(), { error: "allowed_destination_addresses must be a list of strings" })
              .optional(),
          })
          .loose(),
        { error: "must be a list of { name, destination_address?, allowed_destination_addresses? }" },
      )
      .optional(),
    // Sandboxes (SPEC §14.1): the class runs as a Durable Object with a jail; `image` is not built.
    containers: z
      .array(
        z
          .object({
            class_name: z.string({ error: "needs a class_name (a string)" }),
            image: z.string({ error: "image must be a string" }).optional(),
            max_instances: z.number({ error: "max_instances must be a number" }).optional(),
          })
          .loose(),
        { error: "must be a list of { class_name, image, max_instances }" },
      )
      .optional(),
    vars: z
      .record(
        z.string(),
        z.union(
          [z.string(), z.number(), z.boolean(), z.record(z.string(), z.unknown()), z.array(z.unknown())],
          {
            error: "vars values must be strings, numbers, booleans or objects",
          },
        ),
        { error: "vars must be an object" },
      )
      .optional(),
    // The Worker's CPU limit (SPEC §12.2): reported per attempt, not enforced.
    limits: z
      .object({
        cpu_ms: z
          .number({ error: "limits.cpu_ms must be a number of milliseconds" })
          .int({ error: "limits.cpu_ms must be a whole number of milliseconds" })
          .positive({ error: "limits.cpu_ms must be more than 0" })
          .optional(),
      })
      .loose()
      .optional(),
  })
  .loose()
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    const names = new Map<string, number>();
    const objects = config.durable_objects?.bindings ?? [];
    if (objects.length === 0) {
      // A Worker with neither workflows nor Durable Objects gives Cairn nothing to run.
      if (config.workflows === undefined)
        ctx.addIssue({
          code: "custom",
          path: ["workflows"],
          message: 'needs "workflows", a list of { binding, name, class_name }',
        });
      else if (config.workflows.length === 0)
        ctx.addIssue({
          code: "custom",
          path: ["workflows"],
          message: 'needs at least one entry in "workflows"',
        });
    }
    objects.forEach((o, i) => {
      if (o.script_name !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["durable_objects", "bindings", i, "script_name"],
          message: "script_name (a Durable Object of another Worker) is not supported by Cairn",
        });
      const b = seen.get(o.name);
      if (b !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["durable_objects", "bindings", i, "name"],
          message: `binding "${o.name}" is already used`,
        });
      else seen.set(o.name, -1);
    });
    (config.workflows ?? []).forEach((w, i) => {
      const b = seen.get(w.binding);
      if (b !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["workflows", i, "binding"],
          message: `binding "${w.binding}" is already used by ${b < 0 ? "a Durable Object binding" : `workflows[${b}]`}`,
        });
      else seen.set(w.binding, i);
      const n = names.get(w.name);
      if (n !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["workflows", i, "name"],
          message: `workflow name "${w.name}" is already used by workflows[${n}]`,
        });
      else names.set(w.name, i);
      if (w.script_name !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["workflows", i, "script_name"],
          message: "script_name (a workflow of another Worker) is not supported by Cairn",
        });
    });
  });

/** A configuration file that cannot be read or is not valid. The message names the file and field. */
export class WranglerConfigError extends Error {
  override name = "WranglerConfigError";
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.file = file;
  }
}

/** The wrangler configuration file of `dir`, or `undefined` when it has none. */
export function findWranglerConfig(dir: string): string | undefined {
  for (const file of WRANGLER_CONFIG_FILES) {
    const path = join(dir, file);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/**
 * Reads the wrangler configuration of a project: `wrangler.jsonc`, `wrangler.json` or
 * `wrangler.toml` in `dir` (the first found), or the file `dir` itself when it names one.
 * Throws `WranglerConfigError` naming the file and the bad field.
 *
 * ```ts
 * const config = loadWranglerConfig("./my-worker");
 * // { name: "my-worker", main: "src/index.ts", workflows: [{ binding, name, class_name }], vars: {} }
 * ```
 */
export function loadWranglerConfig(dir: string, options: WranglerConfigOptions = {}): WranglerConfig {
  const path = /\.(jsonc?|toml)$/.test(dir) ? dir : findWranglerConfig(dir);
  if (!path)
    throw new WranglerConfigError(
      join(dir, "wrangler.jsonc"),
      `no wrangler configuration found (looked for ${WRANGLER_CONFIG_FILES.join(", ")})`,
    );
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new WranglerConfigError(path, `cannot read the file: ${(e as Error).message}`);
  }
  return parseWranglerConfig(text, path, options);
}

/** Parses and validates the text of a wrangler configuration; `path` decides the format and names errors. */
export function parseWranglerConfig(
  text: string,
  path: string,
  options: WranglerConfigOptions = {},
): WranglerConfig {
  const parsed = path.endsWith(".toml") ? parseTomlText(text, path) : parseJsoncText(text, path);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new WranglerConfigError(path, "the configuration must be an object");
  const file = basename(path);
  const warnings: string[] = [];
  const raw = options.env
    ? selectEnvironment(parsed as Record<string, unknown>, options.env, path, warnings)
    : (parsed as Record<string, unknown>);
  for (const [key, what] of Object.entries(UNSUPPORTED_SECTIONS))
    if (raw[key] !== undefined) warnings.push(`${file}: ${unsupportedWarning(key, what, raw[key])}`);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const field = issue.path.length ? formatPath(issue.path) : "";
      // A missing top-level key reads better as "needs ..." without the field name in front.
      return field ? `${field}: ${issue.message}` : issue.message;
    });
    throw new WranglerConfigError(options.env ? `${path} (env.${options.env})` : path, lines.join("; "));
  }
  const c = result.data;
  // Schedules are checked at load (SPEC §9.4): `(workflow.invalid_schedule) <binding>: <expr>: <why>`.
  const schedules = (c.workflows ?? []).map((w) => parseSchedules(w.schedules, w.binding).map((x) => x.cron));
  const crons = parseSchedules(c.triggers?.crons ?? [], "triggers.crons").map((x) => x.cron);
  for (const container of c.containers ?? [])
    if (container.image && !container.image.endsWith("/"))
      warnings.push(
        `${file}: containers (${container.class_name}): image ${JSON.stringify(container.image)} is not built by Cairn; sandboxes use the host's /usr read-only`,
      );
  return {
    ...(c.name !== undefined ? { name: c.name } : {}),
    main: c.main,
    workflows: (c.workflows ?? []).map((w, i) => ({
      binding: w.binding,
      name: w.name,
      class_name: w.class_name,
      ...(schedules[i]!.length ? { schedules: schedules[i]! } : {}),
      ...(w.limits?.steps !== undefined ? { limits: { steps: w.limits.steps } } : {}),
    })),
    durableObjects: (c.durable_objects?.bindings ?? []).map((o) => ({
      name: o.name,
      class_name: o.class_name,
    })),
    ...(c.containers?.length ? { containers: c.containers.map((x) => x.class_name) } : {}),
    migrations: (c.migrations ?? []).map((m) => ({
      tag: m.tag,
      ...(m.new_sqlite_classes ? { new_sqlite_classes: m.new_sqlite_classes } : {}),
      ...(m.new_classes ? { new_classes: m.new_classes } : {}),
      ...(m.renamed_classes ? { renamed_classes: m.renamed_classes } : {}),
      ...(m.deleted_classes ? { deleted_classes: m.deleted_classes } : {}),
    })),
    vars: (c.vars ?? {}) as WranglerConfig["vars"],
    ...(crons.length ? { crons } : {}),
    ...(c.limits?.cpu_ms !== undefined ? { cpuLimitMs: c.limits.cpu_ms } : {}),
    ...(c.send_email?.length
      ? {
          sendEmail: c.send_email.map((b) => ({
            name: b.name,
            ...(b.destination_address !== undefined ? { destination_address: b.destination_address } : {}),
            ...(b.allowed_destination_addresses
              ? { allowed_destination_addresses: b.allowed_destination_addresses }
              : {}),
          })),
        }
      : {}),
    path,
    ...(options.env ? { env: options.env } : {}),
    warnings,
  };
}

/**
 * The configuration of wrangler environment `name`: the top level's inheritable keys, overridden by
 * `env.<name>`; the name becomes `<name>-<env>` unless the environment sets one (as wrangler does).
 */
function selectEnvironment(
  raw: Record<string, unknown>,
  name: string,
  path: string,
  warnings: string[],
): Record<string, unknown> {
  const envs = raw.env;
  const available =
    typeof envs === "object" && envs !== null && !Array.isArray(envs) ? Object.keys(envs) : [];
  const section = available.includes(name) ? (envs as Record<string, unknown>)[name] : undefined;
  if (typeof section !== "object" || section === null || Array.isArray(section))
    throw new WranglerConfigError(
      path,
      `no environment "${name}" (--env): ${available.length ? `it has ${available.map((e) => `"${e}"`).join(", ")}` : "it defines no env sections"}`,
    );
  const own = section as Record<string, unknown>;
  if (raw.workflows !== undefined && own.workflows === undefined)
    throw new WranglerConfigError(
      path,
      `env.${name} has no "workflows": environments do not inherit them from the top level (as in wrangler); copy them into env.${name}`,
    );
  const merged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw))
    if (key !== "env" && !NOT_INHERITED.includes(key)) merged[key] = value;
  Object.assign(merged, own);
  if (own.name === undefined && typeof raw.name === "string") merged.name = `${raw.name}-${name}`;
  for (const key of NOT_INHERITED)
    if (raw[key] !== undefined && own[key] === undefined)
      warnings.push(
        `${basename(path)}: "${key}" exists at the top level but not in env.${name}; environments do not inherit it, so env.${name} has none`,
      );
  return merged;
}

/** The warning for an unsupported section, naming the bindings it would have made. */
function unsupportedWarning(key: string, what: string, value: unknown): string {
  const items = Array.isArray(value) ? value : [value];
  const bindings = items
    .map((v) => (typeof v === "object" && v !== null ? (v as { binding?: unknown }).binding : undefined))
    .filter((b): b is string => typeof b === "string");
  const missing = bindings.length
    ? `; ${bindings.map((b) => `env.${b}`).join(", ")} will be undefined`
    : "; it is ignored";
  return `${key} (${what}) is not supported by Cairn${missing}`;
}

function parseJsoncText(text: string, path: string): unknown {
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  const first = errors[0];
  if (first) {
    const before = text.slice(0, first.offset);
    const line = before.split("\n").length;
    const column = first.offset - before.lastIndexOf("\n");
    throw new WranglerConfigError(
      path,
      `invalid JSON at line ${line}, column ${column}: ${printParseErrorCode(first.error)}`,
    );
  }
  return value;
}

function parseTomlText(text: string, path: string): unknown {
  try {
    return parseToml(text);
  } catch (e) {
    throw new WranglerConfigError(path, `invalid TOML: ${(e as Error).message.split("\n")[0]}`);
  }
}

function formatPath(path: PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}
