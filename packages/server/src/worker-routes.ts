import {
  workerCommandReplySchema,
  workerCommandSchema,
  workerPollReplySchema,
  workerPollSchema,
  workerRegisteredSchema,
  workerRegisterSchema,
} from "@cairn/api";
import type { RemoteWorkers } from "@cairn/runtime";
import type { Context } from "hono";
import { z } from "zod";
import { jsonBody } from "./body.ts";
import { envelope, HttpError } from "./errors.ts";
import { taskParams, workerParams } from "./params.ts";
import { defineRoute, type RouteDeclaration, type RouteGroup } from "./routes.ts";

/** What the worker protocol routes work with: the remote workers of this server's runtime. */
export interface WorkerApiDeps {
  workers: RemoteWorkers | undefined;
}

/** Commands and registrations are small; a `respond` carries up to 10 MiB of body in base64. */
const WORKER_BODY_LIMIT = 16 * 1024 * 1024;

const route = <
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  R extends boolean = true,
>(
  d: RouteDeclaration<WorkerApiDeps, B, Q, R>,
) => defineRoute(d);

function workersOf(deps: WorkerApiDeps): RemoteWorkers {
  if (!deps.workers) throw new HttpError("not_found", "This server runs no remote workflows", 404);
  return deps.workers;
}

const ok = (c: Context, result: unknown, status: 200 | 201 = 200) => c.json(envelope(result), status);

/** The worker protocol, versions 1 and 2 (SPEC §11.3, docs/python.md): workers in other languages, e.g. Python's `cairn_worker`. */
export const workerRoutes: RouteGroup<WorkerApiDeps> = {
  tag: "workers",
  description:
    "Worker protocol (versions 1 and 2): remote workers (Python) register, poll tasks and send step commands",
  routes: [
    route({
      method: "post",
      path: "/workers",
      operationId: "registerWorker",
      summary: "Register a worker",
      body: { schema: workerRegisterSchema },
      middleware: [jsonBody(WORKER_BODY_LIMIT)],
      response: { status: 201, description: "the worker's id and lease", result: workerRegisteredSchema },
      errors: [404],
      handle: ({ c, body }, deps) => ok(c, workersOf(deps).register(body), 201),
    }),
    route({
      method: "post",
      path: "/workers/{wid}/poll",
      operationId: "pollWorkerTasks",
      summary: "Long poll for tasks; renews the worker",
      params: workerParams,
      body: { schema: workerPollSchema },
      middleware: [jsonBody(WORKER_BODY_LIMIT)],
      response: { description: "tasks (none on timeout)", result: workerPollReplySchema },
      errors: [404],
      handle: async ({ c, param, body }, deps) => ok(c, await workersOf(deps).poll(param("wid"), body.free)),
    }),
    route({
      method: "post",
      path: "/workers/{wid}/tasks/{tid}",
      operationId: "sendWorkerCommand",
      summary:
        "One command of a task (step, attempt, commit, sleep, wait, wake, heartbeat, finish, log, respond)",
      params: taskParams,
      body: { schema: workerCommandSchema },
      middleware: [jsonBody(WORKER_BODY_LIMIT)],
      response: { description: "the reply", result: workerCommandReplySchema },
      errors: [404, 409],
      handle: async ({ c, param, body }, deps) =>
        ok(c, await workersOf(deps).command(param("wid"), param("tid"), body as never)),
    }),
    route({
      method: "delete",
      path: "/workers/{wid}",
      operationId: "deregisterWorker",
      summary: "Deregister a worker; its tasks go to other workers",
      params: workerParams,
      response: { description: "done", result: z.object({ ok: z.boolean() }) },
      handle: ({ c, param }, deps) => {
        workersOf(deps).deregister(param("wid"));
        return ok(c, { ok: true });
      },
    }),
  ],
};
