/**
 * What `cairn dev` tells about running instances: a line when a step attempt fails or an instance
 * errors (workflow, instance, step, message), and the user's console output prefixed with the
 * instance (and step) it came from.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { format } from "node:util";
import type { WorkflowClass } from "@cairn/core";
import type { Runtime, StepHookInfo } from "@cairn/runtime";
import type { Logger } from "./logger.ts";

interface RunContext {
  workflow: string;
  instanceId: string;
  step?: string;
}

const context = new AsyncLocalStorage<RunContext>();

/** A subclass of `cls` (same name) whose `run()` and everything it starts know their instance. */
export function withRunContext(cls: WorkflowClass, workflow: string): WorkflowClass {
  const Base = cls as unknown as new (...args: any[]) => { run(event: any, step: any): unknown };
  const Traced = class extends Base {
    override run(event: { instanceId: string }, step: unknown) {
      return context.run({ workflow, instanceId: event.instanceId }, () => super.run(event, step));
    }
  };
  Object.defineProperty(Traced, "name", { value: cls.name });
  return Traced as unknown as WorkflowClass;
}

const stepName = (info: StepHookInfo) =>
  info.step.count > 1 ? `${info.step.name}-${info.step.count}` : info.step.name;

/**
 * Wraps one step attempt: its console output names the step, and a failure is logged (with the
 * attempt, and whether it will be retried) before it goes on to the engine.
 */
export async function observeAttempt<T>(
  logger: Logger,
  info: StepHookInfo & { attempt: number; config: { retries: { limit: number } } },
  next: () => Promise<T>,
): Promise<T> {
  const step = stepName(info);
  try {
    return await context.run({ workflow: info.workflow, instanceId: info.instanceId, step }, next);
  } catch (e) {
    const total = info.config.retries.limit + 1;
    const retried = info.attempt < total && (e as { name?: string })?.name !== "NonRetryableError";
    logger.warn(
      { workflow: info.workflow, instance: info.instanceId, step, attempt: info.attempt },
      `step "${step}" attempt ${info.attempt} of ${total} failed${retried ? " (will retry)" : ""}: ${describe(e)}`,
    );
    throw e;
  }
}

/** Logs every instance that errors, with the step (or run()) and the message. */
export function reportErroredInstances(runtime: Runtime, logger: Logger): () => void {
  return runtime.onChange((workflow, id, status) => {
    if (status !== "errored") return;
    void runtime.store.instances.get(workflow, id).then(
      (row) => {
        const error = row?.error;
        if (!error) return;
        const where =
          error.where === "step" && error.step
            ? `in step "${error.step.name}"`
            : error.where === "run"
              ? "in run()"
              : "";
        logger.error(
          { workflow, instance: id, ...(error.step ? { step: error.step.name } : {}) },
          `instance ${id} of ${workflow} errored${where ? ` ${where}` : ""}: ${error.name}: ${error.message}`,
        );
      },
      () => {},
    );
  });
}

/**
 * Prefixes console output made inside a run with `[<workflow> <instance>]` (and the step), so the
 * terminal tells which instance printed what. Installed once per process.
 */
export function attributeConsole(): void {
  if ((console as { __cairnAttributed?: boolean }).__cairnAttributed) return;
  (console as { __cairnAttributed?: boolean }).__cairnAttributed = true;
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      const ctx = context.getStore();
      if (!ctx) return original(...args);
      const prefix = `[${ctx.workflow} ${ctx.instanceId}${ctx.step ? ` step "${ctx.step}"` : ""}]`;
      return original(`${prefix} ${format(...args)}`);
    };
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name && e.name !== "Error" ? `${e.name}: ` : ""}${e.message}`;
  return String(e);
}
