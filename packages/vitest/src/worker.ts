/**
 * The test side of `cairnjs/vitest`: starts the Worker of one test file on a fresh Cairn and publishes
 * its `env` and entrypoints to `cloudflare:workers` and `cloudflare:test`.
 */
import { dirname, relative, resolve } from "node:path";
import {
  ENV_SLOT,
  EXPORTS_SLOT,
  isWorkflowClass,
  loadWranglerConfig,
  trackedContext,
  type WorkerFetcher,
  workerExports,
} from "@cairn/compat";
import type { Duration, WorkflowClass } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import type { ResolvedWorkerOptions } from "./plugin.ts";

/** Where `SELF` of `cloudflare:test` finds the Worker's default entrypoint. */
export const SELF_SLOT: unique symbol = Symbol.for("cairn.vitest.self") as never;

export interface StartedWorker {
  cairn: Cairn;
  close(): Promise<void>;
}

const slots = globalThis as Record<symbol, unknown>;

/**
 * Reads the wrangler config, imports the entry module (through vitest, so TypeScript and
 * `cloudflare:*` imports work and `vi.mock` applies), and runs its workflows on a Cairn with an
 * in-memory store and real time.
 */
export async function startWorker(options: ResolvedWorkerOptions): Promise<StartedWorker> {
  const config = loadWranglerConfig(options.configPath);
  const entry = options.main ?? resolve(dirname(config.path), config.main);
  const shown = relative(process.cwd(), entry) || entry;
  const mod = (await import(/* @vite-ignore */ entry)) as Record<string, unknown>;
  const workflows = config.workflows.map((w) => {
    const cls = mod[w.class_name];
    if (!isWorkflowClass(cls))
      throw new Error(
        cls === undefined
          ? `cairnjs/vitest: ${shown} does not export "${w.class_name}" (workflow "${w.name}" in ${config.path})`
          : `cairnjs/vitest: ${shown}: export "${w.class_name}" is not a class that extends WorkflowEntrypoint`,
      );
    // Schedules are not followed here (real time; Cloudflare's pool does not fire crons either).
    return {
      binding: w.binding,
      name: w.name,
      class: cls as WorkflowClass,
      ...(w.limits?.steps !== undefined ? { stepLimit: w.limits.steps } : {}),
    };
  });
  const cairn = await createCairn({
    store: ":memory:",
    workflows,
    env: { ...config.vars, ...options.bindings },
    defaultRetryDelay: options.defaultRetryDelay as Duration,
  });
  const env = cairn.env as Record<string, unknown>;
  const entrypoints = workerExports(
    mod,
    () => env,
    () => trackedContext(),
  );
  slots[ENV_SLOT] = env;
  slots[EXPORTS_SLOT] = entrypoints;
  slots[SELF_SLOT] = entrypoints.default;
  return {
    cairn,
    async close() {
      await cairn.close();
      if (slots[ENV_SLOT] === env) delete slots[ENV_SLOT];
      if (slots[EXPORTS_SLOT] === entrypoints) delete slots[EXPORTS_SLOT];
      if (slots[SELF_SLOT] === entrypoints.default) delete slots[SELF_SLOT];
    },
  };
}

/** The Worker's default entrypoint, for `SELF`. */
export function selfFetcher(): WorkerFetcher {
  const self = slots[SELF_SLOT] as WorkerFetcher | undefined;
  if (!self)
    throw new Error(
      "cairnjs/vitest: SELF needs the Worker's entry module to export default a fetch handler (and the cloudflareTest plugin in vitest.config.ts)",
    );
  return self;
}
