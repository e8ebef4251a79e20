import { z } from "zod";

/**
 * The worker protocol (SPEC §11.3): what a worker in another language (the Python SDK's
 * `cairn_worker`) sends under `/api/v1/workers`, and what it gets back. Commands are JSON objects
 * with an `op`; replies are the `reply` of `{ seq, reply }`. Version 2 adds `commits` (successful
 * attempts carried by the next command, op `commit` to send them alone) and `{ wait_ms }` replies
 * to short sleeps; a version-1 worker is served as before.
 */

/** The newest protocol version (the server also speaks 1). */
export const WORKER_PROTOCOL = 2;

const stepName = z.string().min(1).max(256);
const count = z.number().int().min(1);
const errorShape = z
  .object({
    name: z.string().max(256),
    message: z.string().max(65_536),
    non_retryable: z.boolean().optional(),
    /** The value could not be encoded (not JSON): the instance fails at once, as in TypeScript. */
    fatal: z.boolean().optional(),
  })
  .strict();

export const workerRegisterSchema = z
  .object({
    language: z.string().min(1).max(64),
    sdk: z.string().min(1).max(64),
    /** Checked by the server: a version it does not speak is `protocol.unsupported`. */
    protocol: z.number().int(),
    workflows: z
      .array(z.object({ name: z.string().min(1), class_name: z.string().min(1) }).strict())
      .max(1000),
    /** The worker serves the project's `fetch` handler (`Default.fetch`). */
    fetch: z.boolean().optional(),
    concurrency: z.number().int().min(1).max(10_000),
  })
  .strict();
export type WorkerRegister = z.infer<typeof workerRegisterSchema>;

export const workerRegisteredSchema = z.object({
  worker_id: z.string(),
  lease_ms: z.number(),
  poll_timeout_ms: z.number(),
  /** The version the server speaks with this worker. */
  protocol: z.number(),
});

export const workerPollSchema = z.object({ free: z.number().int().min(0).max(10_000) }).strict();

export const workerTaskSchema = z.object({
  task_id: z.string(),
  kind: z.enum(["run", "fetch"]),
  epoch: z.number(),
  workflow: z.string().optional(),
  class_name: z.string().optional(),
  instance: z.object({ id: z.string(), params: z.unknown(), created_at: z.number() }).optional(),
  event: z.record(z.string(), z.unknown()).optional(),
  steps: z.array(z.record(z.string(), z.unknown())).optional(),
  request: z
    .object({
      method: z.string(),
      url: z.string(),
      headers: z.array(z.tuple([z.string(), z.string()])),
      body_b64: z.string(),
    })
    .optional(),
});
export const workerPollReplySchema = z.object({ tasks: z.array(workerTaskSchema) });

/** Protocol 2: a successful attempt the worker went on from, committed before the command it rides on. */
const commit = z
  .object({
    name: stepName,
    count,
    attempt: z.number().int().min(1),
    value: z.unknown().optional(),
    cpu_ms: z.number().min(0).optional(),
    started_at: z.number().optional(),
    ended_at: z.number().optional(),
  })
  .strict();
const base = {
  seq: z.number().int().min(1),
  epoch: z.number().int().min(0),
  commits: z.array(commit).max(10_000).optional(),
};

/** One command of a task (`op` selects the shape). */
export const workerCommandSchema = z.discriminatedUnion("op", [
  z
    .object({
      ...base,
      op: z.literal("step"),
      name: stepName,
      count,
      config: z.record(z.string(), z.unknown()).nullish(),
    })
    .strict(),
  z
    .object({
      ...base,
      op: z.literal("attempt"),
      name: stepName,
      count,
      attempt: z.number().int().min(1),
      ok: z.boolean(),
      value: z.unknown().optional(),
      error: errorShape.optional(),
      cpu_ms: z.number().min(0).optional(),
      started_at: z.number().optional(),
      ended_at: z.number().optional(),
    })
    .strict(),
  z.object({ ...base, op: z.literal("commit") }).strict(),
  z
    .object({
      ...base,
      op: z.literal("sleep"),
      name: stepName,
      count,
      duration: z.union([z.string(), z.number()]).optional(),
      until: z.union([z.string(), z.number()]).optional(),
    })
    .strict(),
  z
    .object({ ...base, op: z.literal("wake"), name: stepName, count, kind: z.enum(["sleep", "wait", "do"]) })
    .strict(),
  z
    .object({
      ...base,
      op: z.literal("wait"),
      name: stepName,
      count,
      type: z.string(),
      timeout: z.union([z.string(), z.number()]).optional(),
    })
    .strict(),
  z
    .object({
      ...base,
      op: z.literal("heartbeat"),
      running: z.array(z.object({ name: z.string(), count, attempt: z.number().int() }).strict()).optional(),
    })
    .strict(),
  z
    .object({
      ...base,
      op: z.literal("finish"),
      ok: z.boolean(),
      output: z.unknown().optional(),
      error: errorShape.optional(),
    })
    .strict(),
  z
    .object({ ...base, op: z.literal("log"), level: z.string().max(16), message: z.string().max(1_048_576) })
    .strict(),
  z
    .object({
      ...base,
      op: z.literal("respond"),
      status: z.number().int().min(100).max(599),
      headers: z.array(z.tuple([z.string(), z.string()])).optional(),
      body_b64: z.string().optional(),
    })
    .strict(),
]);
export type WorkerCommand = z.infer<typeof workerCommandSchema>;

export const workerCommandReplySchema = z.object({
  seq: z.number(),
  reply: z.record(z.string(), z.unknown()),
});
