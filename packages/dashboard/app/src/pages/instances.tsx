import type { ChangeStatusBody, InstanceSummary, WorkflowSummary } from "@cairn/api";
import type { InstancePage } from "@cairn/client";
import { INSTANCE_STATUSES, type InstanceStatus } from "@cairn/core";
import { useEffect, useMemo, useState } from "react";
import { call, errorMessage, useLoad } from "../api.ts";
import { Diagram, useGraph } from "../diagram.tsx";
import { ago, between, formatDuration, formatTime, localToIso } from "../format.ts";
import { CreateInstanceForm } from "../forms.tsx";
import { Link, navigate, paths } from "../router.tsx";
import { Empty, ErrorBox, Loading, STATUS_LABEL, STATUS_ORDER, StatusBadge } from "../ui.tsx";
import { WorkflowMetricsView } from "./metrics.tsx";

const PER_PAGE = ["25", "50", "100", "250"];
type BulkAction = ChangeStatusBody["status"];

interface Filters {
  status: string;
  from: string;
  to: string;
  q: string;
  dir: "asc" | "desc";
  per: string;
}

function filtersOf(query: URLSearchParams): Filters {
  const status = query.get("status") ?? "";
  return {
    status: (INSTANCE_STATUSES as readonly string[]).includes(status) ? status : "",
    from: query.get("from") ?? "",
    to: query.get("to") ?? "",
    q: query.get("q") ?? "",
    dir: query.get("dir") === "asc" ? "asc" : "desc",
    per: PER_PAGE.includes(query.get("per") ?? "") ? query.get("per")! : "50",
  };
}

/** The URL query of a filter set (defaults left out, so links stay short). */
function queryOf(f: Filters, cursor?: string): Record<string, string | undefined> {
  return {
    status: f.status || undefined,
    from: f.from || undefined,
    to: f.to || undefined,
    q: f.q || undefined,
    dir: f.dir === "asc" ? "asc" : undefined,
    per: f.per === "50" ? undefined : f.per,
    cursor,
  };
}

export function InstancesPage({ workflow, query }: { workflow: string; query: URLSearchParams }) {
  const view =
    query.get("view") === "diagram" ? "diagram" : query.get("view") === "metrics" ? "metrics" : "instances";
  const filters = filtersOf(query);
  const cursor = query.get("cursor") ?? undefined;
  const filterKey = JSON.stringify(filters);
  // Cursors of the pages before this one (the API pages forward only; "Previous" walks back here).
  const [trail, setTrail] = useState<{ key: string; cursors: (string | undefined)[] }>({
    key: filterKey,
    cursors: [],
  });
  const cursors = trail.key === filterKey ? trail.cursors : [];
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [bulk, setBulk] = useState<{ busy: boolean; message?: string; failed?: boolean }>({ busy: false });
  const [showCreate, setShowCreate] = useState(false);

  const summary = useLoad((c) => c.getWorkflow(workflow), [workflow], { refreshMs: 5000 });
  const pageNumber = cursors.length + 1;
  // The page number and cursor travel with the page they were loaded for, so the pager's label
  // and the rows always show the same page (the previous one stays until the next arrives).
  const list = useLoad<{ page: InstancePage; number: number; cursor: string | undefined }>(
    async (c) => ({
      number: pageNumber,
      cursor,
      page: await c.listInstances(workflow, {
        per_page: Number(filters.per),
        direction: filters.dir,
        ...(filters.status ? { status: filters.status as InstanceStatus } : {}),
        ...(cursor ? { cursor } : {}),
        ...(localToIso(filters.from) ? { date_start: localToIso(filters.from) } : {}),
        ...(localToIso(filters.to) ? { date_end: localToIso(filters.to) } : {}),
        ...(filters.q ? { search: filters.q } : {}),
      }),
    }),
    [workflow, filterKey, cursor, pageNumber],
    { refreshMs: 5000, enabled: view === "instances", keepPrevious: true },
  );
  const shown = list.data;

  // A new page or filter clears the selection.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reset on these changes only
  useEffect(() => setSelected(new Set()), [workflow, filterKey, cursor]);

  const setFilters = (next: Partial<Filters>) => {
    const f = { ...filters, ...next };
    setTrail({ key: JSON.stringify(f), cursors: [] });
    navigate(paths.instances(workflow, queryOf(f)), { replace: true });
  };

  const goNext = () => {
    if (list.stale) return;
    const next = shown?.page.cursor;
    if (!next) return;
    setTrail({ key: filterKey, cursors: [...cursors, cursor] });
    navigate(paths.instances(workflow, queryOf(filters, next)));
  };
  const goPrev = () => {
    if (cursors.length === 0 && !cursor) return;
    const prev = cursors.length ? cursors[cursors.length - 1] : undefined;
    setTrail({ key: filterKey, cursors: cursors.slice(0, -1) });
    navigate(paths.instances(workflow, queryOf(filters, prev)));
  };
  const goFirst = () => {
    setTrail({ key: filterKey, cursors: [] });
    navigate(paths.instances(workflow, queryOf(filters)));
  };

  const items = shown?.page.instances ?? [];
  const allSelected = items.length > 0 && items.every((i) => selected.has(i.id));
  const toggle = (id: string) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  async function runBulk(action: BulkAction) {
    const ids = [...selected];
    setBulk({ busy: true, message: `${verb(action)} ${ids.length}…` });
    const failures: string[] = [];
    let done = 0;
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        try {
          await call((c) => c.changeStatus(workflow, id, { status: action } as ChangeStatusBody));
          done++;
        } catch (e) {
          failures.push(`${id}: ${errorMessage(e)}`);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    setBulk({
      busy: false,
      failed: failures.length > 0,
      message:
        `${verb(action)}: ${done} of ${ids.length} done.` +
        (failures.length ? ` ${failures.length} failed — ${failures.slice(0, 3).join("; ")}` : ""),
    });
    setSelected(new Set());
    list.reload();
    summary.reload();
  }

  const counts = summary.data?.instances;
  const total = counts ? Object.values(counts).reduce((a, b) => a + b, 0) : undefined;

  return (
    <div className="page">
      <div className="page-head">
        <h1>
          {workflow} <span className="muted small mono">{summary.data?.class_name}</span>
        </h1>
        <button
          type="button"
          className="btn primary"
          onClick={() => setShowCreate((v) => !v)}
          aria-expanded={showCreate}
        >
          {showCreate ? "Close" : "New instance"}
        </button>
      </div>
      {summary.error && !summary.data ? <ErrorBox error={summary.error} retry={summary.reload} /> : null}
      {summary.data && summary.data.schedules.length > 0 ? (
        <Schedules workflow={workflow} schedules={summary.data.schedules} />
      ) : null}
      {counts ? (
        <ul className="counts inline" aria-label="Instances by status">
          <li>
            <button
              type="button"
              className={`count ${filters.status === "" ? "active" : ""}`}
              onClick={() => setFilters({ status: "" })}
              aria-pressed={filters.status === ""}
            >
              <span className="n">{total?.toLocaleString()}</span> all
            </button>
          </li>
          {STATUS_ORDER.filter((s) => counts[s] > 0 || filters.status === s).map((s) => (
            <li key={s}>
              <button
                type="button"
                className={`count ${filters.status === s ? "active" : ""}`}
                data-status={s}
                onClick={() => setFilters({ status: s })}
                aria-pressed={filters.status === s}
              >
                <span className={`dot s-${s}`} aria-hidden="true" />
                <span className="n">{counts[s].toLocaleString()}</span> {STATUS_LABEL[s]}
              </button>
            </li>
          ))}
        </ul>
      ) : null}

      {showCreate ? (
        <CreateInstanceForm
          workflow={workflow}
          onCreated={(i) => navigate(paths.instance(workflow, i.id))}
          onCancel={() => setShowCreate(false)}
        />
      ) : null}

      <nav className="tabs" aria-label="Workflow views">
        <Link
          to={paths.instances(workflow)}
          className={`tab ${view === "instances" ? "active" : ""}`}
          aria-current={view === "instances" ? "page" : undefined}
        >
          Instances
        </Link>
        <Link
          to={paths.instances(workflow, { view: "diagram" })}
          className={`tab ${view === "diagram" ? "active" : ""}`}
          aria-current={view === "diagram" ? "page" : undefined}
        >
          Diagram
        </Link>
        <Link
          to={paths.instances(workflow, { view: "metrics" })}
          className={`tab ${view === "metrics" ? "active" : ""}`}
          aria-current={view === "metrics" ? "page" : undefined}
        >
          Metrics
        </Link>
      </nav>

      {view === "diagram" ? <WorkflowDiagram workflow={workflow} /> : null}
      {view === "metrics" ? <WorkflowMetricsView workflow={workflow} /> : null}
      {view === "instances" ? (
        <>
          <form className="filters" aria-label="Filter instances" onSubmit={(e) => e.preventDefault()}>
            <label className="field">
              <span>Status</span>
              <select
                name="status"
                value={filters.status}
                onChange={(e) => setFilters({ status: e.target.value })}
              >
                <option value="">Any</option>
                {STATUS_ORDER.map((s) => (
                  <option key={s} value={s}>
                    {STATUS_LABEL[s]}
                  </option>
                ))}
              </select>
            </label>
            <label className="field">
              <span>Created from</span>
              <input
                type="datetime-local"
                name="from"
                step="1"
                value={filters.from}
                onChange={(e) => setFilters({ from: e.target.value })}
              />
            </label>
            <label className="field">
              <span>Created until</span>
              <input
                type="datetime-local"
                name="to"
                step="1"
                value={filters.to}
                onChange={(e) => setFilters({ to: e.target.value })}
              />
            </label>
            <SearchField value={filters.q} onChange={(q) => setFilters({ q })} />
            <label className="field">
              <span>Order</span>
              <select
                name="dir"
                value={filters.dir}
                onChange={(e) => setFilters({ dir: e.target.value as "asc" | "desc" })}
              >
                <option value="desc">Newest first</option>
                <option value="asc">Oldest first</option>
              </select>
            </label>
            <label className="field">
              <span>Per page</span>
              <select name="per" value={filters.per} onChange={(e) => setFilters({ per: e.target.value })}>
                {PER_PAGE.map((p) => (
                  <option key={p} value={p}>
                    {p}
                  </option>
                ))}
              </select>
            </label>
          </form>

          <div className={`bulkbar ${selected.size ? "on" : ""}`} aria-live="polite">
            {selected.size ? (
              <>
                <strong data-testid="selected-count">{selected.size} selected</strong>
                {(["pause", "resume", "terminate", "restart"] as const).map((a) => (
                  <button
                    key={a}
                    type="button"
                    className={`btn small ${a === "terminate" ? "danger" : ""}`}
                    disabled={bulk.busy}
                    onClick={() => runBulk(a)}
                  >
                    {a[0]!.toUpperCase() + a.slice(1)} selected
                  </button>
                ))}
                <button type="button" className="btn ghost small" onClick={() => setSelected(new Set())}>
                  Clear
                </button>
              </>
            ) : bulk.message ? (
              <span className={bulk.failed ? "text-error" : "muted"} role="status">
                {bulk.message}
              </span>
            ) : (
              <span className="muted">
                Select instances to pause, resume, terminate or restart them together.
              </span>
            )}
          </div>

          {list.error ? <ErrorBox error={list.error} retry={list.reload} /> : null}
          {!shown && !list.error ? <Loading what="Loading instances" /> : null}
          {shown && items.length === 0 ? (
            <Empty title={shown.cursor ? "No more instances." : "No instances match."}>
              {filters.status || filters.q || filters.from || filters.to
                ? "Change or clear the filters."
                : "Create one with “New instance”."}
            </Empty>
          ) : null}
          {items.length > 0 ? (
            <div className="table-wrap">
              <table
                className="table"
                data-testid="instances"
                data-page={shown?.number}
                aria-busy={list.loading}
              >
                <thead>
                  <tr>
                    <th scope="col" className="check">
                      <input
                        type="checkbox"
                        aria-label="Select every instance on this page"
                        checked={allSelected}
                        onChange={() =>
                          setSelected(allSelected ? new Set() : new Set(items.map((i) => i.id)))
                        }
                      />
                    </th>
                    <th scope="col">Instance</th>
                    <th scope="col">Status</th>
                    <th scope="col">Created</th>
                    <th scope="col">Started</th>
                    <th scope="col">Ended</th>
                    <th scope="col" className="num">
                      Duration
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((i) => (
                    <Row key={i.id} instance={i} checked={selected.has(i.id)} onToggle={() => toggle(i.id)} />
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}
          <nav className="pager" aria-label="Pages">
            <button type="button" className="btn small" onClick={goFirst} disabled={!cursor}>
              First
            </button>
            <button type="button" className="btn small" onClick={goPrev} disabled={!cursor}>
              ← Previous
            </button>
            <span className="muted" data-testid="page">
              Page {shown?.number ?? pageNumber}
              {items.length ? ` · ${items.length} shown` : ""}
            </span>
            <button
              type="button"
              className="btn small"
              onClick={goNext}
              disabled={!shown?.page.cursor || list.stale}
            >
              Next →
            </button>
          </nav>
        </>
      ) : null}
    </div>
  );
}

/** The Diagram tab: the workflow's graph, with collapsible containers, pan and zoom. */
function WorkflowDiagram({ workflow }: { workflow: string }) {
  const graph = useGraph(workflow);
  if (graph.error) return <ErrorBox error={graph.error} retry={graph.reload} />;
  if (graph.data === undefined) return <Loading what="Loading the diagram" />;
  if (graph.data === null)
    return (
      <Empty title="No diagram for this workflow.">
        The server has no graph for it. <code>cairn start</code> and <code>cairn dev</code> analyse the
        project's source; with <code>createApi</code>, pass <code>graph</code> (e.g. <code>graphOf</code> from
        @cairn/diagram).
      </Empty>
    );
  return (
    <section className="panel" aria-label="Diagram">
      <div className="panel-body">
        <Diagram graph={graph.data} height={640} />
      </div>
    </section>
  );
}

function Row({
  instance: i,
  checked,
  onToggle,
}: {
  instance: InstanceSummary;
  checked: boolean;
  onToggle: () => void;
}) {
  const duration = useMemo(() => between(i.started_on, i.ended_on), [i.started_on, i.ended_on]);
  return (
    <tr className={checked ? "selected" : undefined} data-id={i.id}>
      <td className="check">
        <input type="checkbox" aria-label={`Select ${i.id}`} checked={checked} onChange={onToggle} />
      </td>
      <td>
        <Link className="mono" to={paths.instance(i.workflow, i.id)}>
          {i.id}
        </Link>
      </td>
      <td>
        <StatusBadge status={i.status} />
      </td>
      <td title={i.created_on}>{formatTime(i.created_on)}</td>
      <td title={i.started_on ?? undefined}>{formatTime(i.started_on)}</td>
      <td title={i.ended_on ?? undefined}>{formatTime(i.ended_on)}</td>
      <td className="num">{i.ended_on ? formatDuration(duration) : "—"}</td>
    </tr>
  );
}

/** The id search, applied 300 ms after the last keystroke. */
function SearchField({ value, onChange }: { value: string; onChange: (q: string) => void }) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  useEffect(() => {
    if (text.trim() === value) return;
    const t = setTimeout(() => onChange(text.trim()), 300);
    return () => clearTimeout(t);
  });
  return (
    <label className="field grow">
      <span>Search id</span>
      <input
        type="search"
        name="q"
        placeholder="part of an instance id"
        value={text}
        maxLength={100}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") onChange(text.trim());
        }}
      />
    </label>
  );
}

function verb(action: BulkAction): string {
  return { pause: "Pause", resume: "Resume", terminate: "Terminate", restart: "Restart" }[action];
}

/** The workflow's schedules (wrangler `workflows[].schedules`): each cron, its next slot, its instances. */
function Schedules({ workflow, schedules }: { workflow: string; schedules: WorkflowSummary["schedules"] }) {
  return (
    <ul className="schedules" aria-label="Schedules" data-testid="schedules">
      {schedules.map((s) => (
        <li key={s.cron}>
          <span className="muted">Schedule</span> <code>{s.cron}</code>{" "}
          <span className="muted">UTC, next</span>{" "}
          <span title={s.next_at ?? undefined}>
            {s.next_at ? `${formatTime(s.next_at)} (${ago(s.next_at)})` : "never"}
          </span>{" "}
          <Link to={paths.instances(workflow, { q: `${s.cron}#` })}>its instances</Link>
        </li>
      ))}
    </ul>
  );
}
