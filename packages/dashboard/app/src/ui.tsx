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

/** A column of a `DataTable`: its header and how a row shows in it. */
export interface Column<T> {
  header: ReactNode;
  cell: (row: T) => ReactNode;
  /** Class of the column's cells (e.g. `mono`). */
  className?: string;
}

/**
 * A table of rows, one column per `Column`; `empty` (when given) shows instead of a table without
 * rows. Cells are React nodes: text is escaped, never HTML.
 */
export function DataTable<T>({
  rows,
  columns,
  rowKey,
  empty,
  testId,
  label,
}: {
  rows: readonly T[];
  columns: readonly Column<T>[];
  rowKey: (row: T, index: number) => string | number;
  empty?: string;
  testId?: string;
  label?: string;
}) {
  if (rows.length === 0 && empty !== undefined) return <Empty title={empty} />;
  return (
    <table className="table" data-testid={testId} aria-label={label}>
      <thead>
        <tr>
          {columns.map((c, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: columns are positional
            <th key={i} scope="col">
              {c.header}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={rowKey(r, i)}>
            {columns.map((c, j) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: columns are positional
              <td key={j} className={c.className}>
                {c.cell(r)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
