import type { InstanceDetail, StepDetail } from "@cairn/api";
import { isFinalStatus } from "@cairn/core";
import { formatDuration, formatTime, ms } from "./format.ts";

/** A step's identity on the page and in the URL: its detail type and `"<name>-<count>"` label. */
export interface StepRef {
  type: StepDetail["type"];
  label: string;
}

export const sameStep = (a: StepRef | undefined, b: StepRef) =>
  !!a && a.type === b.type && a.label === b.label;

interface Bar {
  from: number;
  to: number;
  kind:
    | "attempt-ok"
    | "attempt-fail"
    | "attempt-run"
    | "retry"
    | "sleep"
    | "wait"
    | "wait-ok"
    | "wait-fail"
    | "instance";
  title: string;
  live?: boolean;
}

/** What a step is doing, in one word. */
export function stepState(s: StepDetail): "running" | "waiting" | "complete" | "errored" {
  if (s.type === "step" || s.type === "rollback") {
    if (s.end === null) {
      const last = s.attempts[s.attempts.length - 1];
      return last && last.end !== null && !last.success ? "waiting" : "running";
    }
    return s.success ? "complete" : "errored";
  }
  if (s.type === "sleep") return s.finished ? "complete" : "waiting";
  if (!s.finished) return "waiting";
  return s.error ? "errored" : "complete";
}

function barsOf(s: StepDetail, now: number): Bar[] {
  const bars: Bar[] = [];
  const end = (iso: string | null) => ms(iso) ?? now;
  if (s.type === "step" || s.type === "rollback") {
    s.attempts.forEach((a, i) => {
      const from = ms(a.start)!;
      const to = end(a.end);
      const kind = a.end === null ? "attempt-run" : a.success ? "attempt-ok" : "attempt-fail";
      const result =
        a.end === null ? "running" : a.success ? "succeeded" : `failed: ${a.error?.message ?? "error"}`;
      bars.push({
        from,
        to,
        kind,
        live: a.end === null,
        title: `Attempt ${i + 1} ${result}\n${formatTime(a.start, true)} → ${a.end ? formatTime(a.end, true) : "now"} (${formatDuration(to - from)})`,
      });
      const next = s.attempts[i + 1];
      if (a.end !== null && !a.success && (next || (s.end === null && s.retry_at))) {
        const waitTo = next ? ms(next.start)! : Math.min(now, ms(s.retry_at) ?? now);
        bars.push({
          from: to,
          to: Math.max(to, waitTo),
          kind: "retry",
          live: !next,
          title: `Retry wait after attempt ${i + 1}: ${formatDuration(waitTo - to)}${!next && s.retry_at ? `, next attempt at ${formatTime(s.retry_at, true)}` : ""}`,
        });
      }
    });
    if (s.attempts.length === 0)
      bars.push({ from: ms(s.start)!, to: end(s.end), kind: "attempt-run", title: "Starting" });
  } else if (s.type === "sleep") {
    const from = ms(s.start)!;
    const to = end(s.end);
    bars.push({
      from,
      to,
      kind: "sleep",
      live: !s.finished,
      title: `Sleep ${s.finished ? "" : "until " + formatTime(s.until, true) + " "}\n${formatTime(s.start, true)} → ${s.end ? formatTime(s.end, true) : "now"} (${formatDuration(to - from)})`,
    });
  } else {
    const from = ms(s.start)!;
    const to = end(s.end);
    bars.push({
      from,
      to,
      kind: !s.finished ? "wait" : s.error ? "wait-fail" : "wait-ok",
      live: !s.finished,
      title: `Waiting for “${s.event_type ?? "event"}”${s.finished ? (s.error ? ": timed out" : ": received") : s.timeout_at ? `, times out at ${formatTime(s.timeout_at, true)}` : ""}\n${formatTime(s.start, true)} → ${s.end ? formatTime(s.end, true) : "now"} (${formatDuration(to - from)})`,
    });
  }
  return bars;
}

function stepDuration(s: StepDetail, now: number): number | undefined {
  const a = ms(s.start);
  return a === undefined ? undefined : (ms(s.end) ?? now) - a;
}

const KIND_LABEL: Record<StepDetail["type"], string> = {
  step: "do",
  sleep: "sleep",
  waitForEvent: "wait",
  rollback: "rollback",
};

function note(s: StepDetail): string {
  if (s.type === "step" || s.type === "rollback") {
    const n = s.attempts.length;
    const retry = s.end === null && s.retry_at ? ` · retry at ${formatTime(s.retry_at)}` : "";
    return n > 1 ? `${n} attempts${retry}` : retry.replace(" · ", "");
  }
  if (s.type === "sleep") return s.finished ? "" : `until ${formatTime(s.until)}`;
  return s.finished
    ? s.error
      ? `${s.event_type ?? ""} timed out`
      : `${s.event_type ?? ""}`
    : `for “${s.event_type}”`;
}

/**
 * The instance as a Gantt chart: one row per step on a shared time axis, with a bar per attempt,
 * hatched retry waits between failed attempts, sleeps and event waits. Active bars grow with `now`.
 */
export function Timeline({
  detail,
  now,
  selected,
  onSelect,
}: {
  detail: InstanceDetail;
  now: number;
  selected: StepRef | undefined;
  onSelect: (step: StepRef) => void;
}) {
  const active = !isFinalStatus(detail.status);
  const steps = detail.steps;
  const starts = steps.map((s) => ms(s.start)!).filter((t) => t !== undefined);
  const t0 = Math.min(ms(detail.start) ?? ms(detail.queued) ?? now, ...starts);
  const ends: number[] = [ms(detail.end) ?? (active ? now : t0)];
  for (const s of steps) {
    ends.push(ms(s.end) ?? now);
    if (s.type === "step") for (const a of s.attempts) ends.push(ms(a.end) ?? now);
  }
  const t1 = Math.max(t0 + 1, ...ends);
  const span = t1 - t0;
  const pct = (t: number) => `${(((Math.min(Math.max(t, t0), t1) - t0) / span) * 100).toFixed(3)}%`;
  const width = (a: number, b: number) =>
    `max(3px, ${(((Math.min(b, t1) - Math.max(a, t0)) / span) * 100).toFixed(3)}%)`;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const instanceEnd = ms(detail.end) ?? now;

  return (
    <div className="timeline" data-testid="timeline">
      <div className="tl-row tl-axis" aria-hidden="true">
        <div className="tl-label muted small">{formatTime(t0, true)}</div>
        <div className="tl-track">
          {ticks.map((f) => (
            <span key={f} className="tick" style={{ left: `${f * 100}%` }}>
              +{formatDuration(f * span)}
            </span>
          ))}
        </div>
        <div className="tl-dur muted small">duration</div>
      </div>
      <div className="tl-row tl-instance">
        <div className="tl-label">
          <span className="kind">run</span> instance
        </div>
        <div className="tl-track">
          {ms(detail.start) !== undefined ? (
            <span
              className={`bar instance s-${detail.status} ${active ? "live" : ""}`}
              style={{ left: pct(ms(detail.start)!), width: width(ms(detail.start)!, instanceEnd) }}
              title={`Instance ${detail.status}: ${formatTime(detail.start, true)} → ${detail.end ? formatTime(detail.end, true) : "now"}`}
            />
          ) : null}
        </div>
        <div className="tl-dur">{detail.start ? formatDuration(instanceEnd - ms(detail.start)!) : "—"}</div>
      </div>
      {steps.length === 0 ? (
        <div className="muted tl-empty">{active ? "No steps yet." : "This instance ran no steps."}</div>
      ) : null}
      <ol className="tl-steps">
        {steps.map((s) => {
          const ref = { type: s.type, label: s.label };
          const isSel = sameStep(selected, ref);
          const state = stepState(s);
          return (
            <li key={`${s.type}/${s.label}`}>
              <button
                type="button"
                className={`tl-row step ${isSel ? "selected" : ""}`}
                aria-pressed={isSel}
                data-step={s.label}
                data-type={s.type}
                data-state={state}
                onClick={() => onSelect(ref)}
              >
                <span className="tl-label">
                  <span className={`kind k-${s.type}`}>{KIND_LABEL[s.type]}</span>
                  <span className="name" title={s.label}>
                    {s.label}
                  </span>
                  <span className={`state-dot st-${state}`} title={state} />
                </span>
                <span className="tl-track">
                  {barsOf(s, now).map((b, i) => (
                    <span
                      // biome-ignore lint/suspicious/noArrayIndexKey: bars are positional
                      key={i}
                      className={`bar ${b.kind} ${b.live ? "live" : ""}`}
                      style={{ left: pct(b.from), width: width(b.from, b.to) }}
                      title={b.title}
                    />
                  ))}
                  <span className="tl-note small">{note(s)}</span>
                </span>
                <span className="tl-dur">{formatDuration(stepDuration(s, now))}</span>
              </button>
            </li>
          );
        })}
      </ol>
      <div className="legend small muted" aria-hidden="true">
        <span>
          <i className="bar attempt-ok" /> attempt ok
        </span>
        <span>
          <i className="bar attempt-fail" /> failed attempt
        </span>
        <span>
          <i className="bar retry" /> retry wait
        </span>
        <span>
          <i className="bar sleep" /> sleep
        </span>
        <span>
          <i className="bar wait" /> event wait
        </span>
      </div>
    </div>
  );
}
