import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseStoreLocation } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import type { CreateApi, StartServer } from "./host.ts";
import type { LoadFailure } from "./load-error.ts";
import { describeStore } from "./project-info.ts";

export interface FallbackOptions {
  dir: string;
  store?: string;
  host: string;
  port: number;
  token?: string;
  hostAllow?: string[];
  createApi: CreateApi;
  startServer: StartServer;
}

/**
 * What `cairn dev` serves while the project does not load: the API and the dashboard on the store
 * (no workflows are run), `GET /api/v1/project` with the error for the dashboard's banner, and a
 * 500 with the error (file:line:col) for every route of the project.
 */
export async function serveLoadFailure(
  options: FallbackOptions,
  failure: LoadFailure,
): Promise<{ url: string; close(): Promise<void> }> {
  const store = options.store ?? join(options.dir, ".cairn", "cairn.db");
  let cairn: Cairn;
  try {
    const location = parseStoreLocation(store);
    if (location.kind === "sqlite") mkdirSync(dirname(location.path), { recursive: true });
    cairn = await createCairn({ store, workflows: [], worker: false, log: () => {} });
  } catch {
    cairn = await createCairn({ store: ":memory:", workflows: [], worker: false, log: () => {} });
  }
  const body =
    `Cairn could not load this project:\n\n${failure.message}\n\n` +
    "Fix the file and save: cairn dev reloads it. The API (/api/v1) and dashboard (/_cairn/) still answer.\n";
  try {
    const app = options.createApi({
      runtime: cairn.runtime,
      ...(options.token ? { token: options.token } : {}),
      project: () => ({
        workflows: [],
        vars: [],
        secrets: [],
        secretsFiles: [],
        store: describeStore(store),
        warnings: [],
        error: failure,
      }),
    });
    const server = (await options.startServer({
      app,
      host: options.host,
      port: options.port,
      ...(options.token ? { token: options.token } : {}),
      ...(options.hostAllow ? { hostAllow: options.hostAllow } : {}),
      fetch: () =>
        new Response(body, { status: 500, headers: { "content-type": "text/plain; charset=utf-8" } }),
    })) as { url: string; close(): Promise<void> };
    return {
      url: server.url,
      close: async () => {
        await server.close();
        await cairn.close();
      },
    };
  } catch (e) {
    await cairn.close();
    throw e;
  }
}
