import {
  changeStatusBody,
  createBatchBody,
  createInstanceBody,
  type DeleteBatchResult,
  deleteBatchBody,
  deleteBatchResultSchema,
  type InstanceSummary,
  instanceDetailSchema,
  instanceSummarySchema,
  listInstancesQuery,
  type StatusChange,
  statusChangeSchema,
  stepQuery,
  stepResultSchema,
  subscribeEventSchema,
  subscribeQuery,
  type WorkflowMetrics,
  type WorkflowSummary,
  workflowMetricsQuery,
  workflowMetricsSchema,
  workflowSummarySchema,
} from "@cairn/api";
import {
  aggregateMetrics,
  apiStatus,
  INSTANCE_STATUSES,
  type InstanceStatus,
  MAX_PAYLOAD_BYTES,
  type MetricsGroup,
  parseMetricsQuery,
  parseStepLabel,
  type StepKind,
  WorkflowError,
} from "@cairn/core";
import type { Runtime } from "@cairn/runtime";
import type { InstanceRow } from "@cairn/store";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { jsonBody } from "./body.ts";
import { envelope, HttpError } from "./errors.ts";
import { eventParams, instanceParams, workflowParams } from "./params.ts";
import { component, defineRoute, type RouteDeclaration, type RouteGroup } from "./routes.ts";
import { subscribe } from "./subscribe.ts";
import { instanceDetail, instanceSummary, stepResult } from "./views.ts";

/** Largest body of a single create, event or control request: a 1 MiB payload plus room for JSON. */
export const SINGLE_BODY_LIMIT = MAX_PAYLOAD_BYTES + 64 * 1024;
/** Largest body of a batch create. */
export const BATCH_BODY_LIMIT = 8 * 1024 * 1024;

/** What the workflow routes work with. */
export interface WorkflowApiDeps {
  runtime: Runtime;
  graph?: (workflow: string) => unknown | Promise<unknown>;
  keepAliveMs: number;
  pollMs: number;
  log: (message: string, error: unknown) => void;
}

const WorkflowSummarySchema = component("WorkflowSummary", workflowSummarySchema);
const InstanceSummarySchema = component("InstanceSummary", instanceSummarySchema);
const InstanceDetailSchema = component("InstanceDetail", instanceDetailSchema);
const StepResultSchema = component("StepResult", stepResultSchema);
const StatusChangeSchema = component("StatusChange", statusChangeSchema);
const DeleteBatchResultSchema = component("DeleteBatchResult", deleteBatchResultSchema);
const WorkflowMetricsSchema = component("WorkflowMetrics", workflowMetricsSchema);

/** History entries one metrics query reads at most; a range with more answers `truncated: true`. */
export const METRICS_SCAN_LIMIT = 200_000;
const SubscribeEventSchema = component("SubscribeEvent", subscribeEventSchema);

const ok = (c: Context, result: unknown, status: ContentfulStatusCode = 200) =>
  c.json(envelope(result), status);

/** `date_start`/`date_end`: an ISO date or epoch milliseconds. */
function parseDate(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new WorkflowError(
      "body",
      `query ${field}: expected an ISO date or epoch milliseconds, got "${value}"`,
    );
  return ms;
}

const W = "/workflows/{name}";
const I = `${W}/instances/{id}` as const;

const route = <
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  R extends boolean = true,
>(
  d: RouteDeclaration<WorkflowApiDeps, B, Q, R>,
) => defineRoute(d);

/** SPEC §5: workflows, their instances, steps, events and event streams. */
export const workflowRoutes: RouteGroup<WorkflowApiDeps> = {
  tag: "workflows",
  description: "Workflows and their instances (Cloudflare's Workflows REST API)",
  routes: [
    route({
      method: "get",
      path: "/workflows",
      operationId: "listWorkflows",
      summary: "Workflows with instance counts per status",
      response: { description: "workflows", result: z.array(WorkflowSummarySchema), paged: true },
      async handle({ c }, { runtime }) {
        const store = runtime.store;
        const counts = await store.instances.countByStatus();
        const result: WorkflowSummary[] = [];
        for (const def of runtime.workflows) {
          const latest = await store.instances.list({ workflow: def.name, limit: 1, direction: "desc" });
          result.push(
            summarize(
              def.name,
              def.class.name,
              counts.filter((r) => r.workflow === def.name),
              latest.items[0],
              runtime.schedules(def.name),
            ),
          );
        }
        return c.json(envelope(result, { per_page: result.length, count: result.length }));
      },
    }),

    route({
      method: "get",
      path: W,
      operationId: "getWorkflow",
      summary: "One workflow",
      params: workflowParams,
      response: { description: "the workflow", result: WorkflowSummarySchema },
      errors: [404],
      async handle({ c, param }, { runtime }) {
        const name = param("name");
        const def = runtime.definition(name);
        const counts = await runtime.store.instances.countByStatus(name);
        const latest = await runtime.store.instances.list({ workflow: name, limit: 1, direction: "desc" });
        return ok(c, summarize(def.name, def.class.name, counts, latest.items[0], runtime.schedules(name)));
      },
    }),

    route({
      method: "get",
      path: `${W}/graph`,
      operationId: "getWorkflowGraph",
      summary: "The workflow's diagram graph",
      params: workflowParams,
      response: { description: "the graph", result: z.unknown() },
      errors: [404],
      async handle({ c, param }, { runtime, graph }) {
        const name = param("name");
        runtime.definition(name);
        const g = graph ? await graph(name) : undefined;
        if (g === undefined || g === null)
          throw new HttpError("not_found", `No graph for workflow "${name}"`, 404);
        return ok(c, g);
      },
    }),

    route({
      method: "get",
      path: `${W}/metrics`,
      operationId: "getWorkflowMetrics",
      summary:
        "Counts, summed wall and CPU time and wall-time quantiles of the workflow's history entries in a range, grouped (SPEC §12.2)",
      params: workflowParams,
      query: workflowMetricsQuery,
      response: { description: "the groups", result: WorkflowMetricsSchema },
      errors: [404],
      async handle({ c, param, query: q }, { runtime }) {
        const name = param("name");
        runtime.definition(name);
        const { from, to, groupBy } = parseMetricsQuery(q, runtime.clock.now());
        const rows = await runtime.store.history.metrics(name, from, to, METRICS_SCAN_LIMIT);
        let groups = aggregateMetrics(rows, groupBy);
        if (q.order_by) {
          const by = q.order_by;
          const value = (g: MetricsGroup) => (by === "count" ? g.count : g.sum[by]);
          groups = groups.sort((a, b) => value(b) - value(a));
        }
        if (q.limit !== undefined) groups = groups.slice(0, q.limit);
        const result: WorkflowMetrics = {
          date_start: new Date(from).toISOString(),
          date_end: new Date(to).toISOString(),
          group_by: groupBy,
          groups,
          cpu_limit_ms: runtime.cpuLimitMs,
          truncated: rows.length === METRICS_SCAN_LIMIT,
        };
        return ok(c, result);
      },
    }),

    route({
      method: "post",
      path: `${W}/instances`,
      operationId: "createInstance",
      summary: "Create an instance",
      params: workflowParams,
      body: { schema: createInstanceBody, required: false },
      middleware: [jsonBody(SINGLE_BODY_LIMIT)],
      response: { status: 201, description: "the created instance", result: InstanceSummarySchema },
      errors: [404, 409, 413],
      async handle({ c, param, body }, { runtime }) {
        const name = param("name");
        // A W3C traceparent of the request: the instance's runs join that trace (SPEC §12.4).
        const traceparent = c.req.header("traceparent");
        const id = await runtime.create(
          name,
          { id: body?.instance_id, params: body?.params },
          traceparent ? { traceparent } : undefined,
        );
        return ok(c, instanceSummary(await runtime.instance(name, id)), 201);
      },
    }),

    route({
      method: "post",
      path: `${W}/instances/batch`,
      operationId: "createInstances",
      summary: "Create up to 100 instances; ids that exist are skipped and left out of the result",
      params: workflowParams,
      body: { schema: createBatchBody },
      middleware: [jsonBody(BATCH_BODY_LIMIT)],
      response: { status: 201, description: "the created instances", result: z.array(InstanceSummarySchema) },
      errors: [404, 413],
      async handle({ c, param, body }, { runtime }) {
        const name = param("name");
        const ids = await runtime.createBatch(
          name,
          body.map((b) => ({ id: b.instance_id, params: b.params })),
        );
        const rows = await Promise.all(ids.map((id) => runtime.store.instances.get(name, id)));
        const result: InstanceSummary[] = rows
          .filter((r): r is InstanceRow => r !== undefined)
          .map(instanceSummary);
        return ok(c, result, 201);
      },
    }),

    route({
      method: "post",
      path: `${W}/instances/batch/delete`,
      operationId: "deleteInstances",
      summary: "Delete up to 100 instances",
      params: workflowParams,
      body: { schema: deleteBatchBody },
      middleware: [jsonBody(SINGLE_BODY_LIMIT)],
      response: { description: "what was deleted", result: DeleteBatchResultSchema },
      errors: [404, 413],
      async handle({ c, param, body }, { runtime }) {
        const result: DeleteBatchResult = await runtime.deleteBatch(param("name"), body.instances);
        return ok(c, result);
      },
    }),

    route({
      method: "get",
      path: `${W}/instances`,
      operationId: "listInstances",
      summary: "List instances, newest first by default, with cursor pagination",
      params: workflowParams,
      query: listInstancesQuery,
      response: { description: "a page of instances", result: z.array(InstanceSummarySchema), paged: true },
      errors: [404],
      async handle(input, { runtime }) {
        const { c, param } = input;
        const name = param("name");
        runtime.definition(name);
        const q = input.query;
        const createdAfter = parseDate(q.date_start, "date_start");
        const createdBefore = parseDate(q.date_end, "date_end");
        let page: Awaited<ReturnType<typeof runtime.store.instances.list>>;
        try {
          page = await runtime.store.instances.list({
            workflow: name,
            status: q.status,
            cursor: q.cursor,
            limit: q.per_page,
            direction: q.direction,
            createdAfter,
            createdBefore,
            search: q.search,
          });
        } catch (e) {
          if (q.cursor !== undefined && !WorkflowError.is(e))
            throw new WorkflowError("body", "query cursor: not a cursor from a previous page");
          throw e;
        }
        const items = page.items.map(instanceSummary);
        const info: { cursor?: string; per_page: number; count: number } = {
          per_page: q.per_page,
          count: items.length,
        };
        if (page.cursor !== undefined) info.cursor = page.cursor;
        return c.json(envelope(items, info));
      },
    }),

    route({
      method: "get",
      path: I,
      operationId: "getInstance",
      summary: "Status, params, output, error, timings and steps with attempts",
      params: instanceParams,
      response: { description: "the instance", result: InstanceDetailSchema },
      errors: [404],
      async handle({ c, param }, { runtime }) {
        const name = param("name");
        const id = param("id");
        const row = await runtime.instance(name, id);
        const [steps, history, events] = await Promise.all([
          runtime.store.steps.list(name, id),
          runtime.store.history.list(name, id),
          runtime.store.events.list(name, id),
        ]);
        return ok(c, instanceDetail(row, steps, history, events));
      },
    }),

    route({
      method: "get",
      path: `${I}/step`,
      operationId: "getStep",
      summary: "One step's full output or error",
      params: instanceParams,
      query: stepQuery,
      response: { description: "the step", result: StepResultSchema },
      errors: [404],
      async handle({ c, param, query: q }, { runtime }) {
        const name = param("name");
        const id = param("id");
        await runtime.instance(name, id);
        const { name: stepName, count } = parseStepLabel(q.name);
        const kinds: StepKind[] =
          q.type === "step"
            ? ["do"]
            : q.type === "sleep"
              ? ["sleep"]
              : q.type === "waitForEvent"
                ? ["waitForEvent"]
                : q.type === "rollback"
                  ? ["rollback"]
                  : ["do", "waitForEvent", "sleep"];
        for (const kind of kinds) {
          const row = await runtime.store.steps.get(name, id, kind, stepName, count);
          if (row) return ok(c, stepResult(row));
        }
        throw new HttpError("not_found", `Step "${q.name}" not found in instance "${id}"`, 404);
      },
    }),

    route({
      method: "patch",
      path: `${I}/status`,
      operationId: "changeStatus",
      summary: "Pause, resume, terminate or restart",
      params: instanceParams,
      body: { schema: changeStatusBody },
      middleware: [jsonBody(SINGLE_BODY_LIMIT)],
      response: { description: "the status after the change", result: StatusChangeSchema },
      errors: [404, 409, 413],
      async handle({ c, param, body }, { runtime }) {
        const name = param("name");
        const id = param("id");
        switch (body.status) {
          case "pause":
            await runtime.pause(name, id);
            break;
          case "resume":
            await runtime.resume(name, id);
            break;
          case "terminate":
            await runtime.terminate(name, id, body.rollback ? { rollback: true } : undefined);
            break;
          case "restart":
            await runtime.restart(name, id, body.from ? { from: body.from } : {});
            break;
        }
        const row = await runtime.instance(name, id);
        const result: StatusChange = {
          status: apiStatus(row),
          timestamp: new Date(runtime.clock.now()).toISOString(),
        };
        return ok(c, result);
      },
    }),

    route({
      method: "post",
      path: `${I}/events/{type}`,
      operationId: "sendEvent",
      summary: "Send an event; the body (any JSON, empty for null) is its payload",
      params: eventParams,
      body: { schema: z.unknown(), required: false },
      middleware: [jsonBody(SINGLE_BODY_LIMIT)],
      response: { description: "delivered or buffered", result: z.null() },
      errors: [404, 409, 413],
      async handle({ c, param, body }, { runtime }) {
        await runtime.sendEvent(param("name"), param("id"), { type: param("type"), payload: body ?? null });
        return ok(c, null);
      },
    }),

    route({
      method: "get",
      path: `${I}/subscribe`,
      operationId: "subscribe",
      summary:
        "Server-sent events: the stored history, then new entries; ends after workflow_completed, workflow_errored or workflow_terminated",
      params: instanceParams,
      query: subscribeQuery,
      extraQuery: { token: "the bearer token, for EventSource clients that cannot set headers" },
      headers: { "Last-Event-ID": "resume after this event id (when no cursor is given)" },
      response: {
        description: "event: <type>, id: <eventId>, data: SubscribeEvent JSON",
        content: { "text/event-stream": { schema: SubscribeEventSchema } },
      },
      errors: [404],
      async handle({ c, param, query: q }, { runtime, keepAliveMs, pollMs, log }) {
        const name = param("name");
        const id = param("id");
        await runtime.instance(name, id);
        let cursor = q.cursor;
        const lastEventId = c.req.header("last-event-id");
        if (cursor === undefined && lastEventId !== undefined && /^\d+$/.test(lastEventId))
          cursor = Number(lastEventId);
        return subscribe(c, { runtime, workflow: name, id, cursor, keepAliveMs, pollMs, log });
      },
    }),
  ],
};

function summarize(
  name: string,
  className: string,
  counts: { status: InstanceStatus; count: number }[],
  latest: InstanceRow | undefined,
  schedules: { cron: string; nextAt: number | null }[],
): WorkflowSummary {
  const instances = Object.fromEntries(INSTANCE_STATUSES.map((s) => [s, 0])) as Record<
    InstanceStatus,
    number
  >;
  for (const r of counts) instances[r.status] = (instances[r.status] ?? 0) + r.count;
  return {
    id: name,
    name,
    class_name: className,
    instances,
    triggered_on: latest ? new Date(latest.createdAt).toISOString() : null,
    schedules: schedules.map((x) => ({
      cron: x.cron,
      next_at: x.nextAt === null ? null : new Date(x.nextAt).toISOString(),
    })),
  };
}
