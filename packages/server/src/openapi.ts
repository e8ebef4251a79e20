import {
  API_PREFIX,
  type AttemptDetail,
  changeStatusBody,
  createBatchBody,
  createInstanceBody,
  type DeleteBatchResult,
  deleteBatchBody,
  ERROR_STATUS,
  type InstanceDetail,
  type InstanceSummary,
  instanceStatusSchema,
  listInstancesQuery,
  type StatusChange,
  type StepResult,
  stepQuery,
  subscribeQuery,
  type WorkflowSummary,
} from "@cairn/api";
import { INSTANCE_STATUSES, type InstanceStatus } from "@cairn/core";
import { z } from "zod";

/**
 * The OpenAPI 3.1 document of the API, built from the contract's zod request schemas and the zod
 * mirrors of its response shapes below (each checked against the contract's interface at compile
 * time, so the document cannot drift from the types).
 */

const serializedError = z.object({ name: z.string(), message: z.string() });
const iso = z.string().describe("ISO 8601 date and time");

const workflowSummary = z.object({
  id: z.string(),
  name: z.string(),
  class_name: z.string(),
  instances: z.object(
    Object.fromEntries(INSTANCE_STATUSES.map((s) => [s, z.number().int()])) as Record<
      InstanceStatus,
      z.ZodNumber
    >,
  ),
  triggered_on: iso.nullable(),
});

const instanceSummary = z.object({
  id: z.string(),
  status: instanceStatusSchema,
  workflow: z.string(),
  created_on: iso,
  modified_on: iso,
  started_on: iso.nullable(),
  ended_on: iso.nullable(),
});

const attempt = z.object({
  start: iso,
  end: iso.nullable(),
  success: z.boolean().nullable(),
  error: serializedError.nullable(),
});

const stepCommon = {
  name: z.string(),
  label: z.string().describe('"<name>-<count>"'),
  count: z.number().int(),
};
const output = z
  .unknown()
  .describe(
    'JSON form of the value; "[REDACTED]" for sensitive steps; in the instance detail, outputs over 4 KiB of JSON are { $truncated: true, bytes, preview }',
  );

const stepDetail = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("step"),
    ...stepCommon,
    start: iso,
    end: iso.nullable(),
    success: z.boolean().nullable(),
    output,
    error: serializedError.nullable(),
    config: z.unknown(),
    attempts: z.array(attempt),
    retry_at: iso.nullable().optional(),
  }),
  z.object({
    type: z.literal("sleep"),
    ...stepCommon,
    start: iso,
    end: iso.nullable(),
    until: iso.nullable(),
    finished: z.boolean(),
  }),
  z.object({
    type: z.literal("waitForEvent"),
    ...stepCommon,
    start: iso,
    end: iso.nullable(),
    finished: z.boolean(),
    event_type: z.string().nullable(),
    timeout_at: iso.nullable().optional(),
    output,
    error: serializedError.nullable(),
  }),
]);

const instanceDetail = instanceSummary.extend({
  params: z.unknown(),
  output: z.unknown(),
  error: serializedError.nullable(),
  queued: iso,
  start: iso.nullable(),
  end: iso.nullable(),
  success: z.boolean().nullable(),
  step_count: z.number().int(),
  steps: z.array(stepDetail),
});

const stepResult = z.object({
  status: z.enum(["running", "waiting", "complete", "errored"]),
  output: z.unknown(),
  error: serializedError.nullable(),
  event_type: z.string().nullable().optional(),
});

const statusChange = z.object({ status: instanceStatusSchema, timestamp: iso });

const deleteBatchResult = z.object({
  deleted: z.array(z.object({ id: z.string() })),
  errors: z.array(z.object({ id: z.string(), code: z.number().int(), message: z.string() })),
});

const subscribeEvent = z.looseObject({
  type: z.string().describe("the history event type, also the SSE `event`"),
  instanceId: z.string(),
  eventId: z.number().int().describe("also the SSE `id`; pass it back as `cursor` to resume"),
  timestamp: z.number().describe("epoch ms"),
  stepName: z.string().optional(),
  step: z
    .object({ type: z.enum(["do", "sleep", "waitForEvent"]), name: z.string(), count: z.number().int() })
    .optional(),
});

// Compile-time checks that the mirrors produce the contract's shapes.
const _checks: [
  WorkflowSummary,
  InstanceSummary,
  AttemptDetail,
  InstanceDetail,
  StepResult,
  StatusChange,
  DeleteBatchResult,
] = [] as unknown as [
  z.infer<typeof workflowSummary>,
  z.infer<typeof instanceSummary>,
  z.infer<typeof attempt>,
  z.infer<typeof instanceDetail> & { steps: InstanceDetail["steps"] },
  z.infer<typeof stepResult>,
  z.infer<typeof statusChange>,
  z.infer<typeof deleteBatchResult>,
];
void _checks;

type JsonSchema = Record<string, unknown>;

const schema = (s: z.ZodType, io: "input" | "output" = "output"): JsonSchema => {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io, unrepresentable: "any" }) as JsonSchema;
  return rest;
};

function envelopeOf(result: JsonSchema, paged = false): JsonSchema {
  const properties: Record<string, unknown> = {
    success: { type: "boolean", const: true },
    errors: { type: "array", maxItems: 0 },
    messages: { type: "array", items: { type: "string" } },
    result,
  };
  if (paged)
    properties.result_info = {
      type: "object",
      properties: {
        cursor: {
          type: "string",
          description: "present when another page follows; pass it back as `cursor`",
        },
        per_page: { type: "integer" },
        count: { type: "integer" },
      },
      required: ["per_page", "count"],
    };
  return { type: "object", properties, required: ["success", "errors", "messages", "result"] };
}

const errorEnvelope: JsonSchema = {
  type: "object",
  properties: {
    success: { type: "boolean", const: false },
    errors: {
      type: "array",
      items: {
        type: "object",
        properties: {
          code: { type: "string", enum: Object.keys(ERROR_STATUS) },
          message: { type: "string", description: '"(<code>) <text>"' },
        },
        required: ["code", "message"],
      },
    },
    messages: { type: "array", items: { type: "string" } },
    result: { type: "null" },
  },
  required: ["success", "errors", "messages", "result"],
};

const json = (s: JsonSchema) => ({ "application/json": { schema: s } });

function ok(description: string, result: JsonSchema, status = "200", paged = false) {
  return { [status]: { description, content: json(envelopeOf(result, paged)) } };
}

function errors(...statuses: number[]) {
  const out: Record<string, unknown> = {};
  // Every route may refuse a cross-site browser request (403); routes with a body refuse non-JSON (415).
  const withBody = statuses.includes(413) ? [415] : [];
  for (const s of [...new Set([...statuses, ...withBody, 400, 401, 403, 500])].sort())
    out[String(s)] = {
      description: errorDescription(s),
      content: json({ $ref: "#/components/schemas/Error" }),
    };
  return out;
}

function errorDescription(status: number): string {
  const codes = Object.entries(ERROR_STATUS)
    .filter(([, s]) => s === status)
    .map(([c]) => c);
  return `error: ${codes.join(", ")}`;
}

const pathParam = (name: string, description: string) => ({
  name,
  in: "path",
  required: true,
  schema: { type: "string" },
  description,
});
const workflowParam = pathParam("name", "workflow name");
const instanceParam = pathParam("id", "instance id");

function queryParams(s: z.ZodObject): unknown[] {
  return Object.entries(s.shape).map(([name, field]) => {
    const fieldSchema = schema(field as z.ZodType, "input");
    const optional = (field as z.ZodType).safeParse(undefined).success;
    const p: Record<string, unknown> = { name, in: "query", required: !optional, schema: fieldSchema };
    if (typeof fieldSchema.description === "string") p.description = fieldSchema.description;
    return p;
  });
}

const body = (s: z.ZodType, required = true, description?: string) => ({
  required,
  ...(description ? { description } : {}),
  content: json(schema(s, "input")),
});

let cached: JsonSchema | undefined;

/** The OpenAPI 3.1 document served at `/api/v1/openapi.json`. */
export function openApiDocument(): JsonSchema {
  if (cached) return cached;
  const W = "/workflows/{name}";
  const I = `${W}/instances/{id}`;
  cached = {
    openapi: "3.1.0",
    info: {
      title: "Cairn API",
      version: "1",
      description:
        "Durable workflows with the Cloudflare Workflows API. Responses use Cloudflare's envelope { success, errors, messages, result, result_info? }.",
    },
    servers: [{ url: API_PREFIX }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "CAIRN_TOKEN" } },
      schemas: {
        Error: errorEnvelope,
        WorkflowSummary: schema(workflowSummary),
        InstanceSummary: schema(instanceSummary),
        InstanceDetail: schema(instanceDetail),
        StepResult: schema(stepResult),
        StatusChange: schema(statusChange),
        DeleteBatchResult: schema(deleteBatchResult),
        SubscribeEvent: schema(subscribeEvent),
      },
    },
    security: [{ bearer: [] }],
    paths: {
      "/openapi.json": {
        get: {
          operationId: "openapi",
          summary: "This document",
          security: [],
          responses: { "200": { description: "OpenAPI 3.1 document", content: json({ type: "object" }) } },
        },
      },
      "/workflows": {
        get: {
          operationId: "listWorkflows",
          summary: "Workflows with instance counts per status",
          responses: {
            ...ok(
              "workflows",
              { type: "array", items: { $ref: "#/components/schemas/WorkflowSummary" } },
              "200",
              true,
            ),
            ...errors(),
          },
        },
      },
      [W]: {
        get: {
          operationId: "getWorkflow",
          summary: "One workflow",
          parameters: [workflowParam],
          responses: {
            ...ok("the workflow", { $ref: "#/components/schemas/WorkflowSummary" }),
            ...errors(404),
          },
        },
      },
      [`${W}/graph`]: {
        get: {
          operationId: "getWorkflowGraph",
          summary: "The workflow's diagram graph",
          parameters: [workflowParam],
          responses: { ...ok("the graph", {}), ...errors(404) },
        },
      },
      [`${W}/instances`]: {
        post: {
          operationId: "createInstance",
          summary: "Create an instance",
          parameters: [workflowParam],
          requestBody: body(createInstanceBody, false),
          responses: {
            ...ok("the created instance", { $ref: "#/components/schemas/InstanceSummary" }, "201"),
            ...errors(404, 409, 413),
          },
        },
        get: {
          operationId: "listInstances",
          summary: "List instances, newest first by default, with cursor pagination",
          parameters: [workflowParam, ...queryParams(listInstancesQuery)],
          responses: {
            ...ok(
              "a page of instances",
              { type: "array", items: { $ref: "#/components/schemas/InstanceSummary" } },
              "200",
              true,
            ),
            ...errors(404),
          },
        },
      },
      [`${W}/instances/batch`]: {
        post: {
          operationId: "createInstances",
          summary: "Create up to 100 instances; ids that exist are skipped and left out of the result",
          parameters: [workflowParam],
          requestBody: body(createBatchBody),
          responses: {
            ...ok(
              "the created instances",
              { type: "array", items: { $ref: "#/components/schemas/InstanceSummary" } },
              "201",
            ),
            ...errors(404, 413),
          },
        },
      },
      [`${W}/instances/batch/delete`]: {
        post: {
          operationId: "deleteInstances",
          summary: "Delete up to 100 instances",
          parameters: [workflowParam],
          requestBody: body(deleteBatchBody),
          responses: {
            ...ok("what was deleted", { $ref: "#/components/schemas/DeleteBatchResult" }),
            ...errors(404, 413),
          },
        },
      },
      [I]: {
        get: {
          operationId: "getInstance",
          summary: "Status, params, output, error, timings and steps with attempts",
          parameters: [workflowParam, instanceParam],
          responses: {
            ...ok("the instance", { $ref: "#/components/schemas/InstanceDetail" }),
            ...errors(404),
          },
        },
      },
      [`${I}/step`]: {
        get: {
          operationId: "getStep",
          summary: "One step's full output or error",
          parameters: [workflowParam, instanceParam, ...queryParams(stepQuery)],
          responses: { ...ok("the step", { $ref: "#/components/schemas/StepResult" }), ...errors(404) },
        },
      },
      [`${I}/status`]: {
        patch: {
          operationId: "changeStatus",
          summary: "Pause, resume, terminate or restart",
          parameters: [workflowParam, instanceParam],
          requestBody: body(changeStatusBody),
          responses: {
            ...ok("the status after the change", { $ref: "#/components/schemas/StatusChange" }),
            ...errors(404, 409, 413),
          },
        },
      },
      [`${I}/events/{type}`]: {
        post: {
          operationId: "sendEvent",
          summary: "Send an event; the body (any JSON, empty for null) is its payload",
          parameters: [workflowParam, instanceParam, pathParam("type", "event type")],
          requestBody: { required: false, content: json({}) },
          responses: { ...ok("delivered or buffered", { type: "null" }), ...errors(404, 409, 413) },
        },
      },
      [`${I}/subscribe`]: {
        get: {
          operationId: "subscribe",
          summary:
            "Server-sent events: the stored history, then new entries; ends after workflow_completed, workflow_errored or workflow_terminated",
          parameters: [
            workflowParam,
            instanceParam,
            ...queryParams(subscribeQuery),
            {
              name: "token",
              in: "query",
              required: false,
              schema: { type: "string" },
              description: "the bearer token, for EventSource clients that cannot set headers",
            },
            {
              name: "Last-Event-ID",
              in: "header",
              required: false,
              schema: { type: "string" },
              description: "resume after this event id (when no cursor is given)",
            },
          ],
          responses: {
            "200": {
              description: "event: <type>, id: <eventId>, data: SubscribeEvent JSON",
              content: { "text/event-stream": { schema: { $ref: "#/components/schemas/SubscribeEvent" } } },
            },
            ...errors(404),
          },
        },
      },
    },
  };
  return cached;
}
