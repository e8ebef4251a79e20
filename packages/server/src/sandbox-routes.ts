import {
  SANDBOX_ERROR_STATUS,
  type SandboxApiErrorCode,
  sandboxExecBodySchema,
  sandboxExecResultSchema,
  sandboxLogsSchema,
  sandboxSchema,
} from "@cairn/api";
import { z } from "zod";
import { jsonBody } from "./body.ts";
import { envelope, HttpError } from "./errors.ts";
import { processParams, sandboxParams } from "./params.ts";
import { defineRoute, type RouteDeclaration, type RouteGroup } from "./routes.ts";

/**
 * What the Sandboxes routes work with: `@cairn/sandbox`'s `listSandboxes`, `describeSandbox`,
 * `execInSandbox` and `sandboxProcessLogs` (the jails of this process) have this shape.
 */
export interface SandboxesView {
  listSandboxes(): Promise<unknown[]>;
  describeSandbox(id: string): Promise<unknown | undefined>;
  execInSandbox(id: string, command: string, options?: { timeout?: number }): Promise<unknown>;
  sandboxProcessLogs(id: string, processId: string): Promise<unknown>;
}

export interface SandboxApiDeps {
  sandboxes: () => Promise<SandboxesView>;
}

const route = <
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  R extends boolean = true,
>(
  d: RouteDeclaration<SandboxApiDeps, B, Q, R>,
) => defineRoute(d);

/** A `SandboxError` (code `sandbox.*`, message `(<code>) <text>`) as the HTTP error with that code. */
async function sandboxCall<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code in SANDBOX_ERROR_STATUS) {
      const message = (e as Error).message.replace(/^\([^)]*\) /, "");
      throw new HttpError(code as SandboxApiErrorCode, message);
    }
    throw e;
  }
}

/** Sandboxes of the server's process: list, one sandbox, run a command, a process's logs. */
export const sandboxRoutes: RouteGroup<SandboxApiDeps> = {
  tag: "sandboxes",
  description: "Sandboxes: state, limits, processes, exposed ports, recent commands; exec and logs",
  routes: [
    route({
      method: "get",
      path: "/sandboxes",
      operationId: "listSandboxes",
      summary: "The sandboxes of the project, running ones first",
      response: { description: "sandboxes", result: z.array(sandboxSchema) },
      handle: async ({ c }, { sandboxes }) => c.json(envelope(await (await sandboxes()).listSandboxes())),
    }),
    route({
      method: "get",
      path: "/sandboxes/{id}",
      operationId: "getSandbox",
      summary: "One sandbox",
      params: sandboxParams,
      response: { description: "the sandbox", result: sandboxSchema },
      errors: [404],
      async handle({ c, param }, { sandboxes }) {
        const view = await sandboxes();
        const found = await sandboxCall(() => view.describeSandbox(param("id")));
        if (!found) throw new HttpError("not_found", `No sandbox ${param("id")}`, 404);
        return c.json(envelope(found));
      },
    }),
    route({
      method: "post",
      path: "/sandboxes/{id}/exec",
      operationId: "execInSandbox",
      summary: "Runs a command line in a running sandbox and answers its result",
      params: sandboxParams,
      body: { schema: sandboxExecBodySchema, description: "{ command, timeout? }" },
      middleware: [jsonBody(1024 * 1024)],
      response: { description: "exit code and output", result: sandboxExecResultSchema },
      errors: [409, 413, 504],
      async handle({ c, param, body }, { sandboxes }) {
        const view = await sandboxes();
        const result = await sandboxCall(() =>
          view.execInSandbox(
            param("id"),
            body.command,
            body.timeout !== undefined ? { timeout: body.timeout } : {},
          ),
        );
        return c.json(envelope(result));
      },
    }),
    route({
      method: "get",
      path: "/sandboxes/{id}/processes/{processId}/logs",
      operationId: "getSandboxProcessLogs",
      summary: "The logs of one process of a running sandbox (the last 1 MiB of each stream)",
      params: processParams,
      response: { description: "stdout and stderr", result: sandboxLogsSchema },
      errors: [404, 409],
      async handle({ c, param }, { sandboxes }) {
        const view = await sandboxes();
        return c.json(
          envelope(await sandboxCall(() => view.sandboxProcessLogs(param("id"), param("processId")))),
        );
      },
    }),
  ],
};
