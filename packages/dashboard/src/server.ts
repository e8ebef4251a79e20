import { type ApiOptions, createApi as createServerApi, startServer } from "@cairn/server";
import type { Hono } from "hono";
import { dashboardDir } from "./index.ts";

export { startServer };

/**
 * `createApi` of `@cairn/server` with the dashboard served at `/_cairn/` (and `/` redirecting there
 * when `startServer` has no fetch handler). Pass `dashboard` to serve other files. This module has
 * the shape `hostProject`, `runStart` and `runDev` (`server:`) expect, so the CLI can load it in
 * place of `@cairn/server`.
 *
 * ```ts
 * const { createApi, startServer } = await import("@cairn/dashboard/server");
 * await startServer({ app: createApi({ runtime: cairn.runtime }), port: 8787 });
 * ```
 */
export function createApi(options: ApiOptions): Hono {
  return createServerApi({ dashboard: { dir: dashboardDir }, ...options });
}
