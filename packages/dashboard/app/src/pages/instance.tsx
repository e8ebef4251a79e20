import type { ChangeStatusBody, InstanceDetail, StepDetail, StepResult, SubscribeEvent } from "@cairn/api";
import { FINAL_HISTORY_EVENTS, HISTORY_EVENT_TYPES, isFinalStatus } from "@cairn/core";
import { useEffect, useMemo, useRef, useState } from "react";
import { call, errorMessage, subscribeUrl, useAuth, useLoad } from "../api.ts";
import { Diagram, stepRuns, useGraph } from "../diagram.tsx";
import { between, formatDuration, formatTime, ms } from "../format.ts";
import { SendEventForm } from "../forms.tsx";
import { navigate, paths } from "../router.tsx";
import { type StepRef, sameStep, stepState, Timeline } from "../timeline.tsx";
import { ErrorBox, Json, Loading, Section, StatusBadge } from "../ui.tsx";
import { formatCpu } from "./metrics.tsx";

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const FINAL = new Set<string>(FINAL_HISTORY_EVENTS);

type LiveState = "connecting" | "live" | "ended" | "error";

/**
 * The instance's history then live events, from `GET …/subscribe` with `EventSource` (which
 * reconnects by itself with `Last-Event-ID`). Closed after a final event; `key` reopens it (after a
 * restart, whose history starts afresh).
 */
function useSubscription(workflow: string, id: string, key: number, onEvent: (e: SubscribeEvent) => void) {
  const { generation } = useAuth();
  const [events, setEvents] = useState<SubscribeEvent[]>([]);
  const [state, setState] = useState<LiveState>("connecting");
  const onEventRef = useRef(onEvent);
  onEventRef.current = onEvent;
  // biome-ignore lint/correctness/useExhaustiveDependencies: reopened on these changes
  useEffect(() => {
    setEvents([]);
    setState("connecting");
    const source = new EventSource(subscribeUrl(workflow, id));
    let buffer: SubscribeEvent[] = [];
    let flush: number | undefined;
    const handle = (m: MessageEvent<string>) => {
      let event: SubscribeEvent;
      try {
        event = JSON.parse(m.data) as SubscribeEvent;
      } catch {
        return;
      }
      buffer.push(event);
      // Batch a replayed history into one render.
      flush ??= window.setTimeout(() => {
        const batch = buffer;
        buffer = [];
        flush = undefined;
        setEvents((prev) => {
          const seen = new Set(prev.map((e) => e.eventId));
          return [...prev, ...batch.filter((e) => !seen.has(e.eventId))];
        });
      }, 30);
      onEventRef.current(event);
      if (FINAL.has(event.type)) {
        source.close();
        setState("ended");
      }
    };
    for (const t of HISTORY_EVENT_TYPES) source.addEventListener(t, handle as EventListener);
    source.onopen = () => setState("live");
    source.onerror = () =>
      setState(
        source.readyState === EventSource.CLOSED ? (s) => (s === "ended" ? s : "error") : "connecting",
      );
    return () => {
      source.close();
      if (flush !== undefined) clearTimeout(flush);
    };
  }, [workflow, id, key, generation]);
  return { events, state };
}

function useNow(active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    setNow(Date.now());
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

export function InstancePage({
  workflow,
  id,
  query,
}: {
  workflow: string;
  id: string;
  query: URLSearchParams;
}) {
  const detail = useLoad((c) => c.getInstance(workflow, id), [workflow, id]);
  const graph = useGraph(workflow);
  const [streamKey, setStreamKey] = useState(0);
  const reloadTimer = useRef<number | undefined>(undefined);
  const scheduleReload = () => {
    if (reloadTimer.current !== undefined) return;
    reloadTimer.current = window.setTimeout(() => {
      reloadTimer.current = undefined;
      detail.reload();
    }, 80);
  };
  useEffect(() => () => clearTimeout(reloadTimer.current), []);
  const live = useSubscription(workflow, id, streamKey, scheduleReload);
  const d = detail.data;
  const active = d ? !isFinalStatus(d.status) : false;
  const now = useNow(active);

  // A safety net for changes the stream does not carry (e.g. a status flip with no history entry).
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => document.visibilityState === "visible" && detail.reload(), 5000);
    return () => clearInterval(t);
  }, [active, detail.reload]);

  const stepParam = query.get("step");
  const selected: StepRef | undefined = stepParam
    ? {
        label: stepParam,
        type:
          (query.get("type") as StepRef["type"]) ??
          d?.steps.find((s) => s.label === stepParam)?.type ??
          "step",
      }
    : undefined;
  const select = (ref: StepRef | undefined) =>
    navigate(paths.instance(workflow, id, ref ? { step: ref.label, type: ref.type } : {}), { replace: true });
  const selectedStep = d && selected ? d.steps.find((s) => sameStep(selected, s)) : undefined;
  const overlay = useMemo(
    () =>
      d
        ? { runs: stepRuns(d.steps), finished: isFinalStatus(d.status), running: d.status === "running" }
        : undefined,
    [d],
  );

  const afterChange = (action: ChangeStatusBody["status"]) => {
    if (action === "restart") setStreamKey((k) => k + 1);
    detail.reload();
  };

  if (detail.error && !d)
    return (
      <div className="page">
        <ErrorBox error={detail.error} retry={detail.reload} />
      </div>
    );
  if (!d) return <Loading what="Loading instance" />;

  const waitingFor = d.steps.find((s) => s.type === "waitForEvent" && !s.finished) as
    | Extract<StepDetail, { type: "waitForEvent" }>
    | undefined;

  return (
    <div className="page">
      <div className="page-head">
        <h1 className="mono" data-testid="instance-id">
          {d.id}
        </h1>
        <StatusBadge status={d.status} />
        <LiveBadge state={live.state} final={!active} />
        <div className="spacer" />
        <Actions workflow={workflow} id={id} detail={d} onChanged={afterChange} />
      </div>
      {detail.error ? <ErrorBox error={detail.error} retry={detail.reload} /> : null}
      <dl className="meta">
        <div>
          <dt>Workflow</dt>
          <dd>{d.workflow}</dd>
        </div>
        <div>
          <dt>Queued</dt>
          <dd title={d.queued}>{formatTime(d.queued, true)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd title={d.start ?? undefined}>{formatTime(d.start, true)}</dd>
        </div>
        <div>
          <dt>Ended</dt>
          <dd title={d.end ?? undefined}>{formatTime(d.end, true)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{d.start ? formatDuration(between(d.start, d.end, now)) : "—"}</dd>
        </div>
        <div>
          <dt>Steps</dt>
          <dd>{d.step_count}</dd>
        </div>
        {d.metrics ? (
          <>
            <div>
              <dt>CPU time</dt>
              <dd data-testid="cpu-time" title="CPU time of runs that parked or ended (approximate)">
                {formatCpu(d.metrics.cpu_time_ms)}
              </dd>
            </div>
            <div>
              <dt>Wall time</dt>
              <dd title="Time loaded in a worker, of runs that parked or ended">
                {formatDuration(d.metrics.wall_time_ms)}
              </dd>
            </div>
            <div>
              <dt>Attempts</dt>
              <dd>{d.metrics.attempts}</dd>
            </div>
            <div>
              <dt>Storage</dt>
              <dd>{formatBytes(d.metrics.storage_bytes)}</dd>
            </div>
          </>
        ) : null}
      </dl>

      <Section title="Timeline" id="timeline">
        <Timeline
          detail={d}
          now={now}
          selected={selected}
          onSelect={(r) => select(sameStep(selected, r) ? undefined : r)}
        />
      </Section>

      {graph.data && overlay ? (
        <Section title="Diagram" id="diagram">
          <Diagram
            graph={graph.data}
            overlay={overlay}
            selected={selected}
            onSelectStep={(r) => select(sameStep(selected, r) ? undefined : r)}
            height={460}
          />
        </Section>
      ) : null}

      {selectedStep ? (
        <StepInspector
          workflow={workflow}
          id={id}
          step={selectedStep}
          now={now}
          onClose={() => select(undefined)}
          onRestarted={() => afterChange("restart")}
        />
      ) : selected ? (
        <div className="state empty">Step {selected.label} is not in this run.</div>
      ) : null}

      <div className="grid2">
        <Section title="Input and result" id="io">
          <h3>Params</h3>
          <Json value={d.params} label="Params" />
          {d.status === "complete" || d.output !== null ? (
            <>
              <h3>Output</h3>
              <Json value={d.output} label="Output" />
            </>
          ) : null}
          {d.error ? (
            <>
              <h3>Error</h3>
              <div className="state error" data-testid="instance-error">
                <strong>{d.error.name}</strong>: {d.error.message}
                {d.error.where === "run" ? (
                  <div className="small">In run(), outside any step.</div>
                ) : d.error.where === "step" && d.error.step ? (
                  <div className="small">
                    In {d.error.step.type === "step" ? "step" : d.error.step.type}{" "}
                    <span className="mono">
                      {d.error.step.name}-{d.error.step.count}
                    </span>
                    .
                  </div>
                ) : null}
                {d.error.stack ? (
                  <pre className="mono small error-stack" data-testid="instance-error-stack">
                    {d.error.stack}
                  </pre>
                ) : null}
              </div>
            </>
          ) : null}
        </Section>
        <Section title="Send an event" id="send-event">
          {isFinalStatus(d.status) ? (
            <p className="muted">This instance has finished; it takes no more events.</p>
          ) : waitingFor ? (
            <p className="muted">
              Waiting for an event of type <code>{waitingFor.event_type}</code>
              {waitingFor.timeout_at ? ` until ${formatTime(waitingFor.timeout_at)}` : ""}.
            </p>
          ) : (
            <p className="muted">Events sent before the instance waits for them are kept until it does.</p>
          )}
          <SendEventForm
            workflow={workflow}
            id={id}
            suggestedType={waitingFor?.event_type ?? undefined}
            disabled={isFinalStatus(d.status)}
            onSent={detail.reload}
          />
        </Section>
      </div>

      <Section
        title="History"
        id="history"
        actions={<span className="muted small">{live.events.length} events</span>}
      >
        <HistoryLog events={live.events} state={live.state} />
      </Section>
    </div>
  );
}

function LiveBadge({ state, final }: { state: LiveState; final: boolean }) {
  const label =
    state === "live"
      ? "live"
      : state === "ended" || final
        ? "finished"
        : state === "error"
          ? "offline"
          : "connecting";
  return (
    <span
      className={`live-badge l-${label}`}
      data-testid="live"
      data-state={label}
      title="Updates from the event stream"
    >
      <span className="dot" aria-hidden="true" /> {label}
    </span>
  );
}

function Actions({
  workflow,
  id,
  detail,
  onChanged,
}: {
  workflow: string;
  id: string;
  detail: InstanceDetail;
  onChanged: (action: ChangeStatusBody["status"]) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState<"terminate" | "restart">();
  const [message, setMessage] = useState<{ text: string; error: boolean }>();
  const s = detail.status;
  const final = isFinalStatus(s);
  const run = async (body: ChangeStatusBody) => {
    setBusy(true);
    setConfirm(undefined);
    setMessage(undefined);
    try {
      const r = await call((c) => c.changeStatus(workflow, id, body));
      setMessage({ text: `Now ${r.status}.`, error: false });
      onChanged(body.status);
    } catch (e) {
      setMessage({ text: errorMessage(e), error: true });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="actions">
      {message ? (
        <span
          className={message.error ? "text-error small" : "muted small"}
          role="status"
          data-testid="action-message"
        >
          {message.text}
        </span>
      ) : null}
      {confirm ? (
        <>
          <span className="small">
            {confirm === "terminate" ? "Terminate for good?" : "Restart from the beginning?"}
          </span>
          <button
            type="button"
            className="btn danger small"
            disabled={busy}
            onClick={() => run({ status: confirm })}
            // biome-ignore lint/a11y/noAutofocus: the confirmation takes the focus it replaces
            autoFocus
          >
            Confirm {confirm}
          </button>
          <button type="button" className="btn ghost small" onClick={() => setConfirm(undefined)}>
            Cancel
          </button>
        </>
      ) : (
        <>
          <button
            type="button"
            className="btn small"
            disabled={busy || !["running", "waiting", "queued"].includes(s)}
            onClick={() => run({ status: "pause" })}
          >
            Pause
          </button>
          <button
            type="button"
            className="btn small"
            disabled={busy || !["paused", "waitingForPause"].includes(s)}
            onClick={() => run({ status: "resume" })}
          >
            Resume
          </button>
          <button
            type="button"
            className="btn small danger"
            disabled={busy || final}
            onClick={() => setConfirm("terminate")}
          >
            Terminate
          </button>
          <button type="button" className="btn small" disabled={busy} onClick={() => setConfirm("restart")}>
            Restart
          </button>
        </>
      )}
    </div>
  );
}

function StepInspector({
  workflow,
  id,
  step,
  now,
  onClose,
  onRestarted,
}: {
  workflow: string;
  id: string;
  step: StepDetail;
  now: number;
  onClose: () => void;
  onRestarted: () => void;
}) {
  const state = stepState(step);
  const full = useLoad<StepResult>(
    (c) => c.getStep(workflow, id, { name: step.label, type: step.type }),
    [workflow, id, step.type, step.label, step.end, state],
  );
  const [confirm, setConfirm] = useState(false);
  const [message, setMessage] = useState<string>();
  const heading = useRef<HTMLHeadingElement>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: focus when another step is opened
  useEffect(() => heading.current?.focus(), [step.type, step.label]);

  const restartFrom = async () => {
    setConfirm(false);
    setMessage(undefined);
    try {
      await call((c) =>
        c.changeStatus(workflow, id, {
          status: "restart",
          from: {
            name: step.name,
            count: step.count,
            type: step.type === "step" || step.type === "rollback" ? "do" : step.type,
          },
        }),
      );
      setMessage(`Restarted from ${step.label}.`);
      onRestarted();
    } catch (e) {
      setMessage(errorMessage(e));
    }
  };

  return (
    <section className="panel inspector" aria-labelledby="inspector-title" data-testid="inspector">
      <header className="panel-head">
        <h2 id="inspector-title" tabIndex={-1} ref={heading}>
          <span className={`kind k-${step.type}`}>
            {step.type === "step" ? "do" : step.type === "sleep" ? "sleep" : "wait"}
          </span>{" "}
          <span className="mono">{step.label}</span> <span className={`state-tag st-${state}`}>{state}</span>
        </h2>
        <div className="panel-actions">
          {confirm ? (
            <>
              <span className="small">Keep the steps before it and run again from here?</span>
              <button type="button" className="btn danger small" onClick={restartFrom}>
                Confirm restart from {step.label}
              </button>
              <button type="button" className="btn ghost small" onClick={() => setConfirm(false)}>
                Cancel
              </button>
            </>
          ) : (
            <button type="button" className="btn small" onClick={() => setConfirm(true)}>
              Restart from this step
            </button>
          )}
          <button
            type="button"
            className="btn ghost small"
            onClick={onClose}
            aria-label="Close the step inspector"
          >
            ✕
          </button>
        </div>
      </header>
      <div className="panel-body">
        {message ? (
          <div className="muted small" role="status">
            {message}
          </div>
        ) : null}
        <dl className="meta">
          <div>
            <dt>Started</dt>
            <dd>{formatTime(step.start, true)}</dd>
          </div>
          <div>
            <dt>Ended</dt>
            <dd>{formatTime(step.end, true)}</dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd>{formatDuration(between(step.start, step.end, now))}</dd>
          </div>
          {step.type === "sleep" ? (
            <div>
              <dt>Until</dt>
              <dd>{formatTime(step.until, true)}</dd>
            </div>
          ) : null}
          {step.type === "waitForEvent" ? (
            <>
              <div>
                <dt>Event type</dt>
                <dd className="mono">{step.event_type ?? "—"}</dd>
              </div>
              <div>
                <dt>Times out</dt>
                <dd>{formatTime(step.timeout_at, true)}</dd>
              </div>
            </>
          ) : null}
          {step.type === "step" && step.retry_at ? (
            <div>
              <dt>Next attempt</dt>
              <dd>{formatTime(step.retry_at, true)}</dd>
            </div>
          ) : null}
        </dl>
        {step.type === "step" ? (
          <>
            <h3>Attempts</h3>
            <table className="table compact" data-testid="attempts">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Started</th>
                  <th scope="col">Ended</th>
                  <th scope="col" className="num">
                    Duration
                  </th>
                  <th scope="col" className="num">
                    CPU
                  </th>
                  <th scope="col">Result</th>
                </tr>
              </thead>
              <tbody>
                {step.attempts.map((a, i) => (
                  // biome-ignore lint/suspicious/noArrayIndexKey: attempts are numbered by position
                  <tr key={i}>
                    <td>{i + 1}</td>
                    <td>{formatTime(a.start, true)}</td>
                    <td>{formatTime(a.end, true)}</td>
                    <td className="num">{formatDuration(between(a.start, a.end, now))}</td>
                    <td
                      className="num"
                      title={a.cpu_limit_exceeded ? "over limits.cpu_ms (reported, not enforced)" : undefined}
                    >
                      {a.cpu_time_ms === undefined ? "—" : formatCpu(a.cpu_time_ms)}
                      {a.cpu_limit_exceeded ? " ⚠" : ""}
                    </td>
                    <td>
                      {a.end === null ? (
                        <span className="muted">running</span>
                      ) : a.success ? (
                        <span className="text-ok">ok</span>
                      ) : (
                        <span className="text-error">
                          {a.error?.name}: {a.error?.message}
                        </span>
                      )}
                      {i > 0 && step.attempts[i - 1]?.end ? (
                        <span className="muted small">
                          {" "}
                          (after a {formatDuration((ms(a.start) ?? 0) - (ms(step.attempts[i - 1]!.end) ?? 0))}{" "}
                          wait)
                        </span>
                      ) : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        ) : null}
        <div className="grid2">
          <div>
            <h3>{full.data?.error ? "Error" : "Output"}</h3>
            {full.error ? <ErrorBox error={full.error} retry={full.reload} /> : null}
            {!full.data && !full.error ? <Loading what="Loading the step" /> : null}
            {full.data ? (
              full.data.error ? (
                <div className="state error" data-testid="step-error">
                  <strong>{full.data.error.name}</strong>: {full.data.error.message}
                </div>
              ) : (
                <Json value={full.data.output} label="Step output" />
              )
            ) : null}
          </div>
          {step.type === "step" ? (
            <div>
              <h3>Config</h3>
              <Json value={step.config} label="Step config" />
            </div>
          ) : null}
        </div>
      </div>
    </section>
  );
}

const DETAIL_SKIP = new Set([
  "type",
  "instanceId",
  "eventId",
  "timestamp",
  "stepName",
  "step",
  "output",
  "params",
  "config",
]);

function summary(e: SubscribeEvent): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (DETAIL_SKIP.has(k) || v === undefined || v === null) continue;
    if (k === "error" && typeof v === "object") {
      const err = v as { name?: string; message?: string };
      parts.push(`${err.name ?? "Error"}: ${err.message ?? ""}`);
    } else if (k.endsWith("Ms") && typeof v === "number")
      parts.push(`${k.replace(/Ms$/, "")} ${formatDuration(v)}`);
    else if (k.endsWith("At") && typeof v === "number")
      parts.push(`${k.replace(/At$/, "")} at ${formatTime(v, true)}`);
    else parts.push(`${k} ${typeof v === "string" ? v : JSON.stringify(v)}`);
  }
  if (e.output !== undefined) {
    const text = JSON.stringify(e.output) ?? "";
    parts.push(`→ ${text.length > 80 ? `${text.slice(0, 80)}…` : text}`);
  }
  return parts.join(" · ");
}

function HistoryLog({ events, state }: { events: SubscribeEvent[]; state: LiveState }) {
  if (events.length === 0)
    return (
      <div className="muted">
        {state === "error" ? "Cannot reach the event stream." : "Waiting for events…"}
      </div>
    );
  const first = events[0]!.timestamp;
  return (
    <div className="table-wrap history">
      <table className="table compact" data-testid="history">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col" className="num">
              +
            </th>
            <th scope="col">Event</th>
            <th scope="col">Step</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.eventId} data-type={e.type}>
              <td className="mono small">{formatTime(e.timestamp, true)}</td>
              <td className="num small muted">{formatDuration(e.timestamp - first)}</td>
              <td>
                <span
                  className={`evt e-${e.type.split("_")[0]} ${e.type.endsWith("errored") || e.type === "wait_timed_out" ? "bad" : ""}`}
                >
                  {e.type}
                </span>
              </td>
              <td className="mono small">{e.stepName ?? ""}</td>
              <td className="small">{summary(e)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
