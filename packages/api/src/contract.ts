import {
  API_INSTANCE_STATUSES,
  type ApiInstanceStatus,
  type ErrorCode,
  HISTORY_EVENT_TYPES,
  INSTANCE_STATUSES,
  type InstanceStatus,
  MAX_BATCH_SIZE,
} from "@cairn/core";
import { z } from "zod";

/**
 * The contract of Cairn's HTTP API (SPEC §5), rooted at `/api/v1`. Shapes follow Cloudflare's
 * Workflows REST API. Every response is an envelope:
 *
 * ```json
 * { "success": true, "errors": [], "messages": [], "result": …, "result_info": { "cursor": "…" } }
 * { "success": false, "errors": [{ "code": "instance.not_found", "message": "(instance.not_found) …" }], "messages": [], "result": null }
 * ```
 * Request bodies and queries are validated with the zod schemas below; the server and the typed
 * client share them.
 */
export const API_PREFIX = "/api/v1";

// ---- envelopes -----------------------------------------------------------------------------

export interface ApiError {
  /** An `ApiErrorCode`; clients should accept codes they do not know. */
  code: string;
  message: string;
}

export interface Envelope<T> {
  success: boolean;
  errors: ApiError[];
  messages: string[];
  result: T;
  result_info?: ResultInfo;
}

export const resultInfoSchema = z.object({
  cursor: z.string().optional().describe("present when another page follows; pass it back as `cursor`"),
  per_page: z.number().int(),
  count: z.number().int(),
});
export type ResultInfo = z.infer<typeof resultInfoSchema>;

/** The envelope of a successful response around `result` (with `result_info` for pages). */
export function envelopeSchema<S extends z.ZodType>(result: S, paged = false) {
  const base = z.object({
    success: z.literal(true),
    errors: z.array(z.unknown()).max(0).describe("empty on success"),
    messages: z.array(z.string()),
    result,
  });
  return paged ? base.extend({ result_info: resultInfoSchema }) : base;
}

// ---- requests ------------------------------------------------------------------------------

/** Stored statuses and `rollingBack` (a rollback phase under way, SPEC §9.1). */
export const instanceStatusSchema = z.enum(
  API_INSTANCE_STATUSES as [ApiInstanceStatus, ...ApiInstanceStatus[]],
);
/** The statuses an instance is stored with (list filters): `rollingBack` is not one. */
export const storedStatusSchema = z.enum(INSTANCE_STATUSES as [InstanceStatus, ...InstanceStatus[]]);

/** `POST /workflows/:name/instances` */
export const createInstanceBody = z
  .object({
    instance_id: z.string().optional(),
    /** Any JSON value: the instance's params. */
    params: z.unknown().optional(),
  })
  .strict();
export type CreateInstanceBody = z.infer<typeof createInstanceBody>;

/** `POST /workflows/:name/instances/batch` */
export const createBatchBody = z.array(createInstanceBody).min(1).max(MAX_BATCH_SIZE);
export type CreateBatchBody = z.infer<typeof createBatchBody>;

/** `GET /workflows/:name/instances` */
export const listInstancesQuery = z
  .object({
    status: storedStatusSchema.optional(),
    cursor: z.string().optional(),
    per_page: z.coerce.number().int().min(1).max(1000).default(50),
    direction: z.enum(["asc", "desc"]).default("desc"),
    /** ISO date or epoch ms: created at or after. */
    date_start: z.string().optional(),
    /** ISO date or epoch ms: created at or before. */
    date_end: z.string().optional(),
    /** Substring of the instance id. */
    search: z.string().max(100).optional(),
  })
  .strict();
export type ListInstancesQuery = z.input<typeof listInstancesQuery>;

/** `GET /workflows/:name/instances/:id/step` */
export const stepQuery = z
  .object({
    /** `"<name>-<count>"`, as the instance detail shows it. */
    name: z.string().min(1),
    type: z.enum(["step", "sleep", "waitForEvent", "rollback"]).optional(),
  })
  .strict();
export type StepQuery = z.infer<typeof stepQuery>;

/** `PATCH /workflows/:name/instances/:id/status` */
export const changeStatusBody = z.discriminatedUnion("status", [
  z.object({ status: z.literal("pause") }).strict(),
  z.object({ status: z.literal("resume") }).strict(),
  z.object({ status: z.literal("terminate"), rollback: z.boolean().optional() }).strict(),
  z
    .object({
      status: z.literal("restart"),
      from: z
        .object({
          name: z.string().min(1),
          count: z.number().int().min(1).optional(),
          type: z.enum(["do", "sleep", "waitForEvent"]).optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
]);
export type ChangeStatusBody = z.infer<typeof changeStatusBody>;

/** `POST /workflows/:name/instances/batch/delete` */
export const deleteBatchBody = z
  .object({ instances: z.array(z.string()).min(1).max(MAX_BATCH_SIZE) })
  .strict();
export type DeleteBatchBody = z.infer<typeof deleteBatchBody>;

/** `GET /workflows/:name/instances/:id/subscribe` */
export const subscribeQuery = z
  .object({
    /** Resume after this history event id. */
    cursor: z.coerce.number().int().min(0).optional(),
  })
  .strict();

// ---- responses -----------------------------------------------------------------------------
// Each response shape is a zod schema (documented in the OpenAPI document) and its type is inferred.

export const serializedErrorSchema = z.object({
  name: z.string(),
  message: z.string(),
  /** The stack trimmed to the user's frames (instance errors). */
  stack: z.string().optional(),
  /** Where an instance error happened: in a step, or in `run()` outside any step. */
  where: z.enum(["step", "run"]).optional(),
  step: z
    .object({
      type: z.enum(["step", "sleep", "waitForEvent", "rollback"]),
      name: z.string(),
      count: z.number().int(),
    })
    .optional(),
});
const iso = z.string().describe("ISO 8601 date and time");

/** `GET /workflows` items and `GET /workflows/:name`. */
export const workflowSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  class_name: z.string(),
  instances: z
    .object(
      Object.fromEntries(INSTANCE_STATUSES.map((s) => [s, z.number().int()])) as Record<
        InstanceStatus,
        z.ZodNumber
      >,
    )
    .describe("instance counts per status (every status present, zero when none)"),
  triggered_on: iso.nullable().describe("when the most recent instance was created, if any"),
  schedules: z
    .array(
      z.object({
        cron: z.string().describe("a cron expression of workflows[].schedules (UTC)"),
        next_at: iso.nullable().describe("when its next slot fires; null when it never will again"),
      }),
    )
    .describe("the workflow's schedules (SPEC §9.4), each creating one instance per slot; empty when none"),
});
export type WorkflowSummary = z.infer<typeof workflowSummarySchema>;

/** `POST …/instances` result and list items. */
export const instanceSummarySchema = z.object({
  id: z.string(),
  status: instanceStatusSchema,
  workflow: z.string(),
  created_on: iso,
  modified_on: iso,
  started_on: iso.nullable(),
  ended_on: iso.nullable(),
});
export type InstanceSummary = z.infer<typeof instanceSummarySchema>;

export const attemptDetailSchema = z.object({
  start: iso,
  end: iso.nullable(),
  success: z.boolean().nullable(),
  error: serializedErrorSchema.nullable(),
  cpu_time_ms: z
    .number()
    .optional()
    .describe("CPU time of the attempt's callback (approximate, SPEC §12.2), once it ended"),
  wall_time_ms: z.number().optional().describe("end − start, once it ended"),
  cpu_limit_exceeded: z
    .literal(true)
    .optional()
    .describe("the attempt used more CPU time than limits.cpu_ms (reported, not enforced)"),
});
export type AttemptDetail = z.infer<typeof attemptDetailSchema>;

const stepCommon = {
  name: z.string(),
  label: z.string().describe('"<name>-<count>"'),
  count: z.number().int(),
  start: iso,
  end: iso.nullable(),
};
const output = z
  .unknown()
  .describe(
    'JSON form of the value (see toJson); "[REDACTED]" for sensitive steps; in the instance detail, outputs over 4 KiB of JSON are { $truncated: true, bytes, preview }',
  );

export const doStepDetailSchema = z.object({
  type: z.literal("step"),
  ...stepCommon,
  success: z.boolean().nullable(),
  output,
  error: serializedErrorSchema.nullable(),
  config: z.unknown(),
  attempts: z.array(attemptDetailSchema),
  retry_at: iso.nullable().optional().describe("when the next attempt starts, while waiting between retries"),
});
export type DoStepDetail = z.infer<typeof doStepDetailSchema>;

/** The compensation of the `do` step of the same name and count (SPEC §9.1). */
export const rollbackStepDetailSchema = doStepDetailSchema.extend({
  type: z.literal("rollback"),
});
export type RollbackStepDetail = z.infer<typeof rollbackStepDetailSchema>;

export const sleepStepDetailSchema = z.object({
  type: z.literal("sleep"),
  ...stepCommon,
  until: iso.nullable().describe("when the sleep ends (or ended)"),
  finished: z.boolean(),
});
export type SleepStepDetail = z.infer<typeof sleepStepDetailSchema>;

export const waitStepDetailSchema = z.object({
  type: z.literal("waitForEvent"),
  ...stepCommon,
  finished: z.boolean(),
  event_type: z.string().nullable(),
  timeout_at: iso.nullable().optional().describe("when the wait times out, while waiting"),
  output,
  error: serializedErrorSchema.nullable(),
});
export type WaitStepDetail = z.infer<typeof waitStepDetailSchema>;

export const stepDetailSchema = z.discriminatedUnion("type", [
  doStepDetailSchema,
  rollbackStepDetailSchema,
  sleepStepDetailSchema,
  waitStepDetailSchema,
]);
export type StepDetail = z.infer<typeof stepDetailSchema>;

/** What an instance cost (SPEC §12.2). */
export const instanceMetricsSchema = z.object({
  cpu_time_ms: z
    .number()
    .describe("CPU time of its runs (attempts and run() code), of runs that parked or ended"),
  wall_time_ms: z
    .number()
    .describe("time loaded in a worker, paused time excluded, of runs that parked or ended"),
  steps: z.number().int().describe("step.do, sleep, sleepUntil and waitForEvent calls (the billing count)"),
  attempts: z.number().int().describe("attempts of its do steps and rollbacks"),
  storage_bytes: z.number().int().describe("params, output, step results and event payloads, encoded"),
});
export type InstanceMetrics = z.infer<typeof instanceMetricsSchema>;

/** `GET …/instances/:id` */
export const instanceDetailSchema = instanceSummarySchema.extend({
  params: z.unknown(),
  output: z.unknown(),
  error: serializedErrorSchema.nullable(),
  queued: iso,
  start: iso.nullable(),
  end: iso.nullable(),
  success: z.boolean().nullable(),
  step_count: z.number().int(),
  steps: z.array(stepDetailSchema),
  rollback: z
    .object({ outcome: z.enum(["complete", "failed"]), error: serializedErrorSchema.optional() })
    .nullable()
    .optional()
    .describe("the rollback phase's outcome; absent when nothing was eligible (SPEC §9.1)"),
  metrics: instanceMetricsSchema,
});
export type InstanceDetail = z.infer<typeof instanceDetailSchema>;

/** `GET /workflows/:name/metrics` query (SPEC §12.2). */
export const workflowMetricsQuery = z.object({
  /** ISO date or epoch ms; default one day before date_end. */
  date_start: z.string().optional(),
  /** ISO date or epoch ms; default now. */
  date_end: z.string().optional(),
  /** Comma-separated: eventType, stepName, instanceId, datetimeHour, datetimeMinute. */
  group_by: z.string().optional(),
  /** Order groups by their summed CPU or wall time, largest first (e.g. top instances by CPU). */
  order_by: z.enum(["cpuTime", "wallTime", "count"]).optional(),
  /** At most this many groups. */
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

export type WorkflowMetricsQuery = z.input<typeof workflowMetricsQuery>;

/** One group of `GET /workflows/:name/metrics`: GraphQL-shaped, like `workflowsAdaptiveGroups`. */
export const metricsGroupSchema = z.object({
  count: z.number().int(),
  sum: z.object({ wallTime: z.number(), cpuTime: z.number() }).describe("ms, over attempt ends"),
  quantiles: z.object({
    wallTimeP50: z.number().nullable(),
    wallTimeP90: z.number().nullable(),
    wallTimeP99: z.number().nullable(),
  }),
  dimensions: z.record(z.string(), z.string().nullable()),
});
export const workflowMetricsSchema = z.object({
  date_start: iso,
  date_end: iso,
  group_by: z.array(z.string()),
  groups: z.array(metricsGroupSchema),
  cpu_limit_ms: z
    .number()
    .describe("limits.cpu_ms: attempts over it are marked cpu_limit_exceeded (reported, not enforced)"),
  truncated: z
    .boolean()
    .describe("the range held more entries than one query reads; the groups count the oldest"),
});
export type WorkflowMetrics = z.infer<typeof workflowMetricsSchema>;

/** `GET …/instances/:id/step` */
export const stepResultSchema = z.object({
  status: z.enum(["running", "waiting", "complete", "errored"]),
  output: z.unknown(),
  error: serializedErrorSchema.nullable(),
  event_type: z.string().nullable().optional(),
});
export type StepResult = z.infer<typeof stepResultSchema>;

/** `PATCH …/status` result */
export const statusChangeSchema = z.object({ status: instanceStatusSchema, timestamp: iso });
export type StatusChange = z.infer<typeof statusChangeSchema>;

/** `POST …/batch/delete` result */
export const deleteBatchResultSchema = z.object({
  deleted: z.array(z.object({ id: z.string() })),
  errors: z.array(z.object({ id: z.string(), code: z.number().int(), message: z.string() })),
});
export type DeleteBatchResult = z.infer<typeof deleteBatchResultSchema>;

/** One server-sent event of `GET …/subscribe`: the SSE `event` is `type`, `id` is `eventId`. */
export const subscribeEventSchema = z.looseObject({
  type: z.enum(HISTORY_EVENT_TYPES).describe("the history event type, also the SSE `event`"),
  instanceId: z.string(),
  eventId: z.number().int().describe("also the SSE `id`; pass it back as `cursor` to resume"),
  timestamp: z.number().describe("epoch ms"),
  stepName: z.string().optional(),
  step: z
    .object({
      type: z.enum(["do", "sleep", "waitForEvent", "rollback"]),
      name: z.string(),
      count: z.number().int(),
    })
    .optional(),
});
export type SubscribeEvent = z.infer<typeof subscribeEventSchema>;

/** Codes the HTTP layer answers with itself, beside the engine's `ErrorCode`s. */
export type HttpErrorCode =
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "unsupported_media_type"
  | "internal";

/** Codes of Sandboxes (SPEC §14.6) the sandbox routes answer with. */
export type SandboxApiErrorCode =
  | "sandbox.invalid_id"
  | "sandbox.invalid_argument"
  | "sandbox.not_running"
  | "sandbox.process_not_found"
  | "sandbox.command_timeout"
  | "sandbox.output_limit";

/** Every `code` an error response can carry. */
export type ApiErrorCode = ErrorCode | HttpErrorCode | SandboxApiErrorCode;

/** The HTTP status each error code maps to: keyed by the code union, so a new code must get one. */
export const ERROR_STATUS: Readonly<Record<ErrorCode | HttpErrorCode, number>> = {
  "instance.not_found": 404,
  "workflow.not_found": 404,
  "instance.already_exists": 409,
  "instance.cannot_terminate": 409,
  "instance.cannot_restart": 409,
  "instance.cannot_pause": 409,
  "instance.cannot_send_event": 409,
  "instance.changed": 409,
  "instance.rate_limited": 429,
  "instance.invalid_id": 400,
  "workflow.invalid_name": 400,
  "workflow.invalid_event_type": 400,
  "workflow.invalid_schedule": 400,
  "step.invalid_name": 400,
  "step.invalid_config": 400,
  "step.output_too_large": 413,
  "step.limit_reached": 429,
  "payload.too_large": 413,
  // Project configuration errors (refused at load); never caused by a request.
  "do.missing_migration": 500,
  "do.class_not_found": 500,
  // Another live worker holds the Durable Object (requests are not forwarded to it yet).
  "do.owned_elsewhere": 503,
  // Worker protocol (SPEC §11.3): a command of a task the worker no longer holds; an unknown worker.
  "lease.lost": 409,
  "worker.not_found": 404,
  "step.nondeterministic": 409,
  "python.not_found": 500,
  "python.too_old": 500,
  "protocol.unsupported": 400,
  body: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unsupported_media_type: 415,
  internal: 500,
};

/** The HTTP status of each Sandboxes code the sandbox routes answer with. */
export const SANDBOX_ERROR_STATUS: Readonly<Record<SandboxApiErrorCode, number>> = {
  "sandbox.invalid_id": 400,
  "sandbox.invalid_argument": 400,
  "sandbox.not_running": 409,
  "sandbox.process_not_found": 404,
  "sandbox.command_timeout": 504,
  "sandbox.output_limit": 413,
};

/** The status of any error code. */
export function errorStatus(code: ApiErrorCode): number {
  return (
    (ERROR_STATUS as Record<string, number>)[code] ??
    (SANDBOX_ERROR_STATUS as Record<string, number>)[code] ??
    500
  );
}

/** The body of every error response (Cloudflare's envelope with `success: false`). */
export const errorEnvelopeSchema = z.object({
  success: z.literal(false),
  errors: z.array(
    z.object({
      code: z.enum([...Object.keys(ERROR_STATUS), ...Object.keys(SANDBOX_ERROR_STATUS)] as [
        ApiErrorCode,
        ...ApiErrorCode[],
      ]),
      message: z.string().describe('"(<code>) <text>"'),
    }),
  ),
  messages: z.array(z.string()),
  result: z.null(),
});
