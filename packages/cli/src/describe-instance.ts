/**
 * The text of `cairn workflows instances describe`, modelled on wrangler's `instances/describe.ts`:
 * the instance header, then each step with its timings, outcome, (truncated) output and a table of
 * attempts. Lines fit in `width` columns; long values wrap under themselves.
 */
import type { AttemptDetail, DoStepDetail, InstanceDetail, RollbackStepDetail, StepDetail } from "@cairn/api";
import type { SerializedError } from "@cairn/core";
import {
  durationBetween,
  field,
  formatDate,
  formatDuration,
  formatTime,
  statusLabel,
  type TimeOptions,
  table,
  truncateJson,
} from "./format.ts";

export interface DescribeOptions extends TimeOptions {
  /** Epoch ms used for durations of unfinished things and "in X from now". */
  now: number;
  /** Terminal width (default 80). */
  width?: number;
  /** Print step outputs (default true). */
  stepOutput?: boolean;
  /** Characters of output shown before `[...output truncated]` (default 5000; 0 = no limit). */
  truncateOutputLimit?: number;
  /** The id was given as `latest`: say so in the first line. */
  latest?: boolean;
}

const STEP_TYPES: Record<StepDetail["type"], string> = {
  step: "🎯 Step",
  sleep: "💤 Sleeping",
  waitForEvent: "👀 Waiting for event",
  rollback: "↩️ Rollback",
};

export function describeInstance(detail: InstanceDetail, options: DescribeOptions): string {
  const width = options.width ?? 80;
  const limit = options.truncateOutputLimit ?? 5000;
  const showOutput = options.stepOutput ?? true;
  const date = (v: string | null | undefined) => formatDate(v, options);
  const header = (label: string, value: string) => field(label, value, { labelWidth: 22, width });
  const out: string[] = [];

  out.push(options.latest ? "Describing latest instance:" : "Describing instance:");
  out.push(header("Workflow Name", detail.workflow));
  out.push(header("Instance Id", detail.id));
  out.push(header("Status", statusLabel(detail.status)));
  out.push(header("Queued", date(detail.queued ?? detail.created_on)));
  out.push(header("Start", date(detail.start)));
  out.push(header("End", date(detail.end)));
  out.push(header("Duration", durationBetween(detail.start, detail.end, options.now)));
  out.push(header("Success", success(detail.success, detail.status)));
  const lastOk = lastSuccessfulStep(detail.steps);
  if (lastOk) out.push(header("Last Successful Step", lastOk));
  if (detail.error) {
    out.push(header("Error", errorText(detail.error)));
    const where = errorWhere(detail.error);
    if (where) out.push(header("Error In", where));
    if (detail.error.stack) {
      const frames = detail.error.stack.split("\n").filter((l) => /^\s+at /.test(l));
      if (frames.length) out.push(header("Error Stack", frames.map((f) => f.trim()).join("\n")));
    }
  }
  if (showOutput && detail.status === "complete")
    out.push(header("Output", truncateJson(detail.output, limit, "\n")));
  out.push(header("Step Count", String(detail.step_count ?? detail.steps.length)));
  // SPEC §12.2: what the instance cost, over the runs that parked or ended.
  const m = detail.metrics;
  if (m) {
    out.push(header("CPU Time", cpuTime(m.cpu_time_ms)));
    out.push(header("Wall Time", formatDuration(m.wall_time_ms)));
    out.push(header("Steps / Attempts", `${m.steps} / ${m.attempts}`));
    out.push(header("Storage", bytes(m.storage_bytes)));
  }

  if (detail.steps.length > 0) {
    out.push("", "Steps:");
    for (const step of detail.steps)
      out.push("", describeStep(step, { ...options, width, limit, showOutput }));
  }
  return out.join("\n");
}

function describeStep(
  step: StepDetail,
  options: DescribeOptions & { width: number; limit: number; showOutput: boolean },
): string {
  const indent = "  ";
  const line = (label: string, value: string) =>
    field(label, value, { labelWidth: 14, width: options.width, indent });
  const date = (v: string | null | undefined) => formatDate(v, options);
  const out: string[] = [];
  out.push(line("Name", step.label ?? `${step.name}-${step.count}`));
  out.push(line("Type", STEP_TYPES[step.type] ?? step.type));
  if (step.type === "waitForEvent" && step.event_type) out.push(line("Event Type", step.event_type));
  out.push(line("Start", date(step.start)));
  out.push(line("End", date(step.end)));
  out.push(line("Duration", durationBetween(step.start, step.end, options.now)));

  if (step.type === "step" || step.type === "rollback") {
    out.push(line("Success", success(step.success, step.end ? "complete" : "running")));
    const retries = Math.max(0, step.attempts.length - 1);
    out.push(line("Retries", String(retries)));
    const retryAt = retryTime(step);
    if (retryAt) out.push(line("Retries At", `${date(retryAt)} (${relative(retryAt, options.now)})`));
    if (step.error && step.success === false) out.push(line("Error", errorText(step.error)));
    if (options.showOutput && step.success)
      out.push(line("Output", truncateJson(step.output, options.limit, "\n")));
    if (step.attempts.length > 0) out.push("", attemptsTable(step.attempts, options));
  } else if (step.type === "sleep") {
    out.push(line("Success", step.finished ? "✅ Yes" : "▶ Running"));
    if (!step.finished && step.until)
      out.push(line("Until", `${date(step.until)} (${relative(step.until, options.now)})`));
  } else {
    const timedOut = step.finished && step.error !== null && step.error !== undefined;
    out.push(line("Success", timedOut ? "❌ No" : step.finished ? "✅ Yes" : "▶ Running"));
    if (!step.finished && step.timeout_at)
      out.push(line("Times Out At", `${date(step.timeout_at)} (${relative(step.timeout_at, options.now)})`));
    if (step.error) out.push(line("Error", errorText(step.error)));
    if (options.showOutput && step.finished && !timedOut)
      out.push(line("Output", truncateJson(step.output, options.limit, "\n")));
  }
  return out.join("\n");
}

function attemptsTable(attempts: AttemptDetail[], options: DescribeOptions & { width: number }): string {
  // below 72 columns the End column goes (start + duration tell it) so errors keep some room
  const withEnd = options.width >= 72;
  // The CPU column only when the server measured some (SPEC §12.2); "!" marks one over limits.cpu_ms.
  const withCpu = attempts.some((a) => a.cpu_time_ms !== undefined);
  const rows = attempts.map((a, i) => [
    String(i + 1),
    formatTime(a.start, options),
    ...(withEnd ? [formatTime(a.end, options)] : []),
    a.end ? durationBetween(a.start, a.end, options.now) : "-",
    ...(withCpu
      ? [a.cpu_time_ms === undefined ? "-" : `${cpuTime(a.cpu_time_ms)}${a.cpu_limit_exceeded ? " !" : ""}`]
      : []),
    a.success === true ? "✅ Success" : a.success === false ? "❌ Error" : "🔄 Working",
    a.error ? errorText(a.error) : "",
  ]);
  const headers = [
    "#",
    "Start",
    ...(withEnd ? ["End"] : []),
    "Duration",
    ...(withCpu ? ["CPU"] : []),
    "State",
    "Error",
  ];
  return table(headers, rows, { indent: "    ", width: options.width });
}

/** When a failed step tries again: the server's `retry_at`, else last attempt end + raw delay (wrangler). */
function retryTime(step: DoStepDetail | RollbackStepDetail): string | null {
  if (step.end || step.success !== null) return null;
  if (step.retry_at) return step.retry_at;
  const last = step.attempts.at(-1);
  if (last?.success !== false || !last.end) return null;
  const delay = (step.config as { retries?: { delay?: unknown } } | null)?.retries?.delay;
  const ms = typeof delay === "number" ? delay : typeof delay === "string" ? parseDelay(delay) : undefined;
  return ms === undefined ? null : new Date(new Date(last.end).getTime() + ms).toISOString();
}

function parseDelay(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week|month|year)s?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit: Record<string, number> = {
    second: 1e3,
    minute: 6e4,
    hour: 36e5,
    day: 864e5,
    week: 6048e5,
    month: 2592e6,
    year: 31536e6,
  };
  return Number(m[1]) * unit[m[2]!.toLowerCase()]!;
}

/** CPU time in ms, to 0.01 ms below 10 ms (it is approximate anyway), else like durations. */
function cpuTime(ms: number): string {
  return ms < 10 ? `${Number(ms.toFixed(2))}ms` : formatDuration(ms);
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Number((n / 1024).toFixed(1))} KiB`;
  return `${Number((n / 1024 / 1024).toFixed(1))} MiB`;
}

function relative(at: string, now: number): string {
  const ms = new Date(at).getTime() - now;
  return ms >= 0 ? `in ${formatDuration(ms)} from now` : `${formatDuration(-ms)} ago`;
}

function success(value: boolean | null, status: string): string {
  if (value === true) return "✅ Yes";
  if (value === false) return "❌ No";
  if (status === "terminated") return "🚫 Terminated";
  if (status === "paused") return "⏸️ Paused";
  return "▶ Running";
}

function lastSuccessfulStep(steps: StepDetail[]): string | undefined {
  let last: StepDetail | undefined;
  for (const s of steps) {
    const ok =
      s.type === "step" || s.type === "rollback"
        ? s.success === true
        : s.finished && !(s.type === "waitForEvent" && s.error);
    if (ok && (!last || (s.end ?? "") >= (last.end ?? ""))) last = s;
  }
  return last ? (last.label ?? `${last.name}-${last.count}`) : undefined;
}

/** Where an instance error happened: `step "charge card" (charge card-1)`, or `run() outside any step`. */
function errorWhere(error: SerializedError): string | undefined {
  if (error.where === "run") return "run() outside any step";
  if (error.where === "step" && error.step) {
    const kind = error.step.type === "step" ? "step" : error.step.type;
    return `${kind} "${error.step.name}" (${error.step.name}-${error.step.count})`;
  }
  return undefined;
}

function errorText(error: SerializedError): string {
  return error.name && !error.message.startsWith(`${error.name}:`)
    ? `${error.name}: ${error.message}`
    : error.message;
}
