import type { ApiInstanceStatus, InstanceStatus } from "@cairn/core";
import type { ReactNode } from "react";
import { errorMessage, isUnauthorized } from "./api.ts";
import { pretty } from "./format.ts";

export const STATUS_ORDER: InstanceStatus[] = [
  "running",
  "waiting",
  "queued",
  "waitingForPause",
  "paused",
  "complete",
  "errored",
  "terminated",
  "unknown",
];

/** Labels of every status the API shows (`rollingBack` is shown, never stored or counted). */
export const STATUS_LABEL: Record<ApiInstanceStatus, string> = {
  queued: "queued",
  running: "running",
  waiting: "waiting",
  waitingForPause: "pausing",
  rollingBack: "rolling back",
  paused: "paused",
  complete: "complete",
  errored: "errored",
  terminated: "terminated",
  unknown: "unknown",
};

export function StatusBadge({ status }: { status: ApiInstanceStatus }) {
  return (
    <span className={`badge s-${status}`} data-status={status}>
      <span className="dot" aria-hidden="true" />
      {STATUS_LABEL[status] ?? status}
    </span>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <div className="state loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {what}…
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state empty">
      <strong>{title}</strong>
      {children ? <div className="muted">{children}</div> : null}
    </div>
  );
}

export function ErrorBox({ error, retry }: { error: unknown; retry?: () => void }) {
  if (isUnauthorized(error))
    return <div className="state error">This server needs an API token. Enter it to continue.</div>;
  return (
    <div className="state error" role="alert">
      <strong>Something went wrong.</strong> <span className="msg">{errorMessage(error)}</span>
      {retry ? (
        <button type="button" className="btn small" onClick={retry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function Json({ value }: { value: unknown; label?: string }) {
  const truncated =
    value && typeof value === "object" && (value as { $truncated?: boolean }).$truncated === true
      ? (value as { bytes: number; preview: string })
      : undefined;
  if (truncated)
    return (
      <div>
        <div className="muted small">
          Truncated ({truncated.bytes.toLocaleString()} bytes): open the step for the full value.
        </div>
        <pre className="json">{truncated.preview}…</pre>
      </div>
    );
  return <pre className="json">{pretty(value)}</pre>;
}

export function Section({
  title,
  actions,
  children,
  id,
}: {
  title: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  id?: string;
}) {
  return (
    <section className="panel" id={id} aria-labelledby={id ? `${id}-title` : undefined}>
      <header className="panel-head">
        <h2 id={id ? `${id}-title` : undefined}>{title}</h2>
        {actions ? <div className="panel-actions">{actions}</div> : null}
      </header>
      <div className="panel-body">{children}</div>
    </section>
  );
}
