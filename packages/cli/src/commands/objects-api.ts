import type { Command } from "commander";
import type { CliContext } from "../context.ts";

/**
 * Calls an `/api/v1/objects` route (or another read-only route under `root`, e.g. `/agents`) of the
 * server named by `--url` and returns its `result`.
 */
export async function objectsApi(
  ctx: CliContext,
  command: Command,
  path: string,
  init: { method?: string; body?: unknown; root?: string } = {},
): Promise<any> {
  const { url, token } = ctx.globals(command);
  const request = new Request(`${url.replace(/\/$/, "")}/api/v1${init.root ?? "/objects"}${path}`, {
    method: init.method ?? "GET",
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  let response: Response;
  try {
    response = await (ctx.io.fetch ?? fetch)(request);
  } catch (e) {
    throw new Error(`Cannot reach the Cairn server at ${url}: ${(e as Error).message}`);
  }
  const body = (await response.json().catch(() => undefined)) as
    | { success?: boolean; result?: unknown; errors?: { message: string }[] }
    | undefined;
  if (!response.ok || !body?.success)
    throw new Error(
      body?.errors?.[0]?.message ?? `The server answered ${response.status} ${response.statusText}`,
    );
  return body.result;
}
