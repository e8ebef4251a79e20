import type { WorkflowStepConfig } from "./config.ts";
import type { Duration } from "./durations.ts";
import type { SerializedError } from "./errors.ts";
import type { InstanceStatus } from "./status.ts";

/** What `run()` receives: the instance's params and identity (compatible with Cloudflare's type). */
export interface WorkflowEvent<T = unknown> {
  payload: Readonly<T>;
  /** When the instance was created. */
  timestamp: Date;
  instanceId: string;
  workflowName: string;
}

/** What a step callback receives: which step this is, which attempt, and the resolved config. */
export interface WorkflowStepContext {
  step: { name: string; count: number };
  /** 1 on the first try, 2 on the first retry, … */
  attempt: number;
  /** A fresh copy each attempt: changing it does not change the retry policy. */
  config: {
    retries: { limit: number; delay: string | number; backoff: "constant" | "linear" | "exponential" };
    timeout: string | number;
    sensitive?: "output";
  };
}

/** An event delivered to `step.waitForEvent`. */
export interface WorkflowStepEvent<T = unknown> {
  payload: Readonly<T>;
  timestamp: Date;
  type: string;
}

export type WorkflowSleepDuration = Duration;

/**
 * The `step` object passed to `run()`. Every method is durable: its outcome is stored before its
 * promise settles, and a replay of `run()` returns the stored outcome without doing the work again.
 */
export interface WorkflowStep {
  do<T>(name: string, callback: (ctx: WorkflowStepContext) => Promise<T> | T): Promise<T>;
  do<T>(
    name: string,
    config: WorkflowStepConfig,
    callback: (ctx: WorkflowStepContext) => Promise<T> | T,
  ): Promise<T>;
  sleep(name: string, duration: WorkflowSleepDuration): Promise<void>;
  sleepUntil(name: string, timestamp: Date | number): Promise<void>;
  waitForEvent<T = unknown>(
    name: string,
    options: { type: string; timeout?: WorkflowSleepDuration },
  ): Promise<WorkflowStepEvent<T>>;
}

/** Cloudflare's `ExecutionContext`, as far as a workflow can use it. */
export interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
  readonly props: Record<string, unknown>;
}

/**
 * Base class of every workflow (compatible with `WorkflowEntrypoint` from "cloudflare:workers").
 *
 * ```ts
 * export class Checkout extends WorkflowEntrypoint<Env, { orderId: string }> {
 *   async run(event: WorkflowEvent<{ orderId: string }>, step: WorkflowStep) {
 *     const order = await step.do("load order", async () => loadOrder(event.payload.orderId));
 *     await step.sleep("cool off", "10 minutes");
 *     return order;
 *   }
 * }
 * ```
 * `run()` may be called again from the top at any time (replay); completed steps return their stored
 * results, so code outside steps must be deterministic and free of side effects that matter.
 */
export abstract class WorkflowEntrypoint<Env = unknown, T = unknown> {
  protected ctx: ExecutionContext;
  protected env: Env;

  constructor(ctx: ExecutionContext, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }

  abstract run(event: Readonly<WorkflowEvent<T>>, step: WorkflowStep): Promise<unknown>;
}

export type WorkflowClass<Env = any, T = any> = new (
  ctx: ExecutionContext,
  env: Env,
) => WorkflowEntrypoint<Env, T>;

/** What `instance.status()` returns. */
export interface InstanceStatusDetails {
  status: InstanceStatus;
  error?: SerializedError;
  output?: unknown;
}

export interface WorkflowInstanceCreateOptions<P = unknown> {
  id?: string;
  params?: P;
  retention?: { successRetention?: Duration; errorRetention?: Duration };
}

export interface RestartOptions {
  from?: { name: string; count?: number; type?: "do" | "sleep" | "waitForEvent" };
}

/** A handle on one instance (compatible with Cloudflare's `WorkflowInstance`). */
export interface WorkflowInstance {
  readonly id: string;
  status(): Promise<InstanceStatusDetails>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  terminate(): Promise<void>;
  restart(options?: RestartOptions): Promise<void>;
  sendEvent(event: { type: string; payload?: unknown }): Promise<void>;
  delete(): Promise<void>;
}

/** A workflow binding, `env.MY_WORKFLOW` (compatible with Cloudflare's `Workflow<P>`). */
export interface Workflow<P = unknown> {
  create(options?: WorkflowInstanceCreateOptions<P>): Promise<WorkflowInstance>;
  createBatch(batch: WorkflowInstanceCreateOptions<P>[]): Promise<WorkflowInstance[]>;
  get(id: string): Promise<WorkflowInstance>;
  deleteBatch(
    ids: string[],
  ): Promise<{ deleted: { id: string }[]; errors: { id: string; code: number; message: string }[] }>;
}
