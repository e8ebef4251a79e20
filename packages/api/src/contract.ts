import {
  type HistoryEventType,
  INSTANCE_STATUSES,
  type InstanceStatus,
  MAX_BATCH_SIZE,
  type SerializedError,
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

export interface ResultInfo {
  /** Present when another page follows; pass it back as `cursor`. */
  cursor?: string;
  per_page: number;
  count: number;
}

// ---- requests ------------------------------------------------------------------------------

export const instanceStatusSchema = z.enum(INSTANCE_STATUSES as [InstanceStatus, ...InstanceStatus[]]);

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
    status: instanceStatusSchema.optional(),
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
    type: z.enum(["step", "sleep", "waitForEvent"]).optional(),
  })
  .strict();
export type StepQuery = z.infer<typeof stepQuery>;

/** `PATCH /workflows/:name/instances/:id/status` */
export const changeStatusBody = z.discriminatedUnion("status", [
  z.object({ status: z.literal("pause") }).strict(),
  z.object({ status: z.literal("resume") }).strict(),
  z.object({ status: z.literal("terminate") }).strict(),
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

/** `GET /workflows` items and `GET /workflows/:name`. */
export interface WorkflowSummary {
  id: string;
  name: string;
  class_name: string;
  /** Instance counts per status (every status present, zero when none). */
  instances: Record<InstanceStatus, number>;
  /** When the most recent instance was created, if any. */
  triggered_on: string | null;
}

/** `POST …/instances` result and list items. */
export interface InstanceSummary {
  id: string;
  status: InstanceStatus;
  workflow: string;
  created_on: string;
  modified_on: string;
  started_on: string | null;
  ended_on: string | null;
}

export interface AttemptDetail {
  start: string;
  end: string | null;
  success: boolean | null;
  error: SerializedError | null;
}

export interface DoStepDetail {
  type: "step";
  name: string;
  /** `"<name>-<count>"` */
  label: string;
  count: number;
  start: string;
  end: string | null;
  success: boolean | null;
  /** JSON form of the result (see `toJson`); `"[REDACTED]"` for sensitive steps. */
  output: unknown;
  error: SerializedError | null;
  config: unknown;
  attempts: AttemptDetail[];
  /** When the next attempt starts, while waiting between retries. */
  retry_at?: string | null;
}

export interface SleepStepDetail {
  type: "sleep";
  name: string;
  label: string;
  count: number;
  start: string;
  end: string | null;
  /** When the sleep ends (or ended). */
  until: string | null;
  finished: boolean;
}

export interface WaitStepDetail {
  type: "waitForEvent";
  name: string;
  label: string;
  count: number;
  start: string;
  end: string | null;
  finished: boolean;
  event_type: string | null;
  /** When the wait times out, while waiting. */
  timeout_at?: string | null;
  output: unknown;
  error: SerializedError | null;
}

export type StepDetail = DoStepDetail | SleepStepDetail | WaitStepDetail;

/** `GET …/instances/:id` */
export interface InstanceDetail extends InstanceSummary {
  params: unknown;
  output: unknown;
  error: SerializedError | null;
  queued: string;
  start: string | null;
  end: string | null;
  success: boolean | null;
  step_count: number;
  steps: StepDetail[];
}

/** `GET …/instances/:id/step` */
export interface StepResult {
  status: "running" | "waiting" | "complete" | "errored";
  output: unknown;
  error: SerializedError | null;
  event_type?: string | null;
}

/** `PATCH …/status` result */
export interface StatusChange {
  status: InstanceStatus;
  timestamp: string;
}

/** `POST …/batch/delete` result */
export interface DeleteBatchResult {
  deleted: { id: string }[];
  errors: { id: string; code: number; message: string }[];
}

/** One server-sent event of `GET …/subscribe`: the SSE `event` is `type`, `id` is `eventId`. */
export interface SubscribeEvent {
  type: HistoryEventType;
  instanceId: string;
  eventId: number;
  /** Epoch ms. */
  timestamp: number;
  stepName?: string;
  step?: { type: "do" | "sleep" | "waitForEvent"; name: string; count: number };
  [detail: string]: unknown;
}

/** The HTTP status each error code maps to. */
export const ERROR_STATUS: Record<string, number> = {
  "instance.not_found": 404,
  "workflow.not_found": 404,
  "instance.already_exists": 409,
  "instance.cannot_terminate": 409,
  "instance.cannot_restart": 409,
  "instance.cannot_pause": 409,
  "instance.cannot_send_event": 409,
  "instance.invalid_id": 400,
  "workflow.invalid_name": 400,
  "workflow.invalid_event_type": 400,
  "step.invalid_name": 400,
  "step.invalid_config": 400,
  "step.output_too_large": 413,
  "step.limit_reached": 429,
  "payload.too_large": 413,
  body: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unsupported_media_type: 415,
  internal: 500,
};
