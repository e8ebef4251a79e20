import { createHash } from "node:crypto";
import type { SerializedError, StepKey } from "@cairn/core";

/**
 * OpenTelemetry traces (SPEC §12.4) through `@opentelemetry/api`, an optional peer dependency:
 * without it, or without a tracer provider registered by the host, nothing is created. One trace
 * per instance: every run span is a child of the instance's `traceparent` (the one active at
 * `create()`, stored with the instance, or one derived from the instance's identity), so all runs of
 * an instance share its trace. Spans carry names, counts and outcomes, never step outputs.
 */

type OtelApi = typeof import("@opentelemetry/api");

/**
 * The part of an OpenTelemetry span a run uses, declared here so the types of this package do not
 * need `@opentelemetry/api` installed.
 */
export interface Span {
  setAttribute(key: string, value: string | number | boolean): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  recordException(exception: Error | string): void;
  addEvent(name: string, attributes?: Record<string, string | number>): unknown;
  isRecording(): boolean;
  end(): void;
}

/** `undefined`: not looked for yet; `null`: not installed. */
let api: OtelApi | null | undefined;
let loading: Promise<void> | undefined;

/** Looks for `@opentelemetry/api` once per thread; resolves when it is known whether it is there. */
export function loadTracing(): Promise<void> {
  loading ??= import("@opentelemetry/api").then(
    (m) => {
      api = m;
    },
    () => {
      api = null;
    },
  );
  return loading;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Whether `value` is a valid W3C `traceparent` (version 00, ids not all zeros). */
export function isTraceparent(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const m = TRACEPARENT.exec(value);
  return m !== null && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!);
}

/** The `traceparent` of the span active now (its context), when tracing is on and one is active. */
export function activeTraceparent(): string | undefined {
  if (!api) return undefined;
  const sc = api.trace.getSpanContext(api.context.active());
  if (!sc || !api.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1).toString(16).padStart(2, "0")}`;
}

/** The trace of an instance created with none: derived from its identity, the same in every run. */
function derivedTraceparent(workflow: string, id: string, createdAt: number): string {
  const h = createHash("sha256").update(`${workflow}\0${id}\0${createdAt}`).digest("hex");
  return `00-${h.slice(0, 32)}-${h.slice(32, 48)}-01`;
}

export type RunReason = "start" | "wake-up" | "restart" | "recovery";

/** One drive of `run()` as a `workflow.run` span, with a `workflow.step` span per attempt. */
export interface RunTrace {
  /** A step attempt (or a rollback's) starts: its span, ended by `endAttempt`. */
  startAttempt(key: StepKey, attempt: number): Span;
  endAttempt(span: Span, outcome: "ok" | "error" | "timeout", error?: unknown): void;
  /** A sleep or an event wait: a span event of the run, not a span (it may last a year). */
  event(name: string, key: StepKey): void;
  /** The run ended (`status` the instance's, or how the run stopped). */
  end(outcome: string, replayedSteps: number, error?: SerializedError | null): void;
}

/**
 * Starts the run's span, or returns `undefined` when tracing is off (no API, or the provider does
 * not record: the host registered none).
 */
export function startRunTrace(run: {
  workflow: string;
  id: string;
  createdAt: number;
  traceparent?: string | null;
  reason: RunReason;
}): RunTrace | undefined {
  if (!api) return undefined;
  const otel = api;
  const tracer = otel.trace.getTracer("cairn");
  const tp = isTraceparent(run.traceparent)
    ? run.traceparent
    : derivedTraceparent(run.workflow, run.id, run.createdAt);
  const m = TRACEPARENT.exec(tp)!;
  const parent = otel.trace.setSpanContext(otel.ROOT_CONTEXT, {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: Number.parseInt(m[3]!, 16),
    isRemote: true,
  });
  const span = tracer.startSpan(
    "workflow.run",
    {
      attributes: {
        "cairn.workflow.name": run.workflow,
        "cairn.instance.id": run.id,
        "cairn.run.reason": run.reason,
      },
    },
    parent,
  );
  if (!span.isRecording()) {
    span.end();
    return undefined;
  }
  const ctx = otel.trace.setSpan(parent, span);
  return {
    startAttempt(key, attempt) {
      return tracer.startSpan(
        key.kind === "rollback" ? "workflow.rollback" : "workflow.step",
        {
          attributes: {
            "cairn.step.name": key.name,
            "cairn.step.count": key.count,
            "cairn.step.kind": key.kind,
            "cairn.step.attempt": attempt,
          },
        },
        ctx,
      );
    },
    endAttempt(s, outcome, error) {
      s.setAttribute("cairn.step.outcome", outcome);
      if (outcome !== "ok") {
        if (error instanceof Error) s.recordException(error);
        else if (error !== undefined) s.recordException(String(error));
        s.setStatus({
          code: otel.SpanStatusCode.ERROR,
          message: error instanceof Error ? error.message : undefined,
        });
      }
      s.end();
    },
    event(name, key) {
      span.addEvent(name, { "cairn.step.name": key.name, "cairn.step.count": key.count });
    },
    end(outcome, replayedSteps, error) {
      span.setAttribute("cairn.run.replayed_steps", replayedSteps);
      span.setAttribute("cairn.run.outcome", outcome);
      if (outcome === "errored") span.setStatus({ code: otel.SpanStatusCode.ERROR, message: error?.message });
      span.end();
    },
  };
}
