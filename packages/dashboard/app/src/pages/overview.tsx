import type { InstanceSummary, WorkflowSummary } from "@cairn/api";
import type { InstanceStatus } from "@cairn/core";
import { useLoad } from "../api.ts";
import { ago, formatTime } from "../format.ts";
import { Link, paths } from "../router.tsx";
import {
  DataTable,
  Empty,
  ErrorBox,
  Loading,
  Section,
  STATUS_LABEL,
  STATUS_ORDER,
  StatusBadge,
} from "../ui.tsx";

interface OverviewData {
  workflows: WorkflowSummary[];
  recent: InstanceSummary[];
}

/** How many recently created instances the overview lists. */
const RECENT = 10;

export function OverviewPage() {
  const { data, error, loading, reload } = useLoad<OverviewData>(
    async (c) => {
      const workflows = await c.listWorkflows();
      const pages = await Promise.all(
        workflows
          .filter((w) => w.triggered_on !== null)
          .map((w) => c.listInstances(w.name, { per_page: RECENT, direction: "desc" })),
      );
      const recent = pages
        .flatMap((p) => p.instances)
        .sort((a, b) => b.created_on.localeCompare(a.created_on) || b.id.localeCompare(a.id))
        .slice(0, RECENT);
      return { workflows, recent };
    },
    [],
    { refreshMs: 5000 },
  );

  return (
    <div className="page">
      <div className="page-head">
        <h1>Workflows</h1>
        <button type="button" className="btn small" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      {error && !data ? <ErrorBox error={error} retry={reload} /> : null}
      {!data && !error ? <Loading what="Loading workflows" /> : null}
      {data ? (
        <>
          {data.workflows.length === 0 ? (
            <Empty title="No workflows registered.">
              Add a workflow to your project (wrangler <code>workflows[]</code> or <code>createCairn</code>)
              and restart the server.
            </Empty>
          ) : (
            <div className="cards" data-testid="workflows">
              {data.workflows.map((w) => (
                <WorkflowCard key={w.name} workflow={w} />
              ))}
            </div>
          )}
          <Section title="Recent activity" id="recent">
            {data.recent.length === 0 ? (
              <Empty title="No instances yet.">Open a workflow to create one.</Empty>
            ) : (
              <DataTable
                rows={data.recent}
                rowKey={(i) => `${i.workflow}/${i.id}`}
                columns={[
                  {
                    header: "Instance",
                    cell: (i) => (
                      <Link className="mono" to={paths.instance(i.workflow, i.id)}>
                        {i.id}
                      </Link>
                    ),
                  },
                  { header: "Workflow", cell: (i) => i.workflow },
                  { header: "Status", cell: (i) => <StatusBadge status={i.status} /> },
                  {
                    header: "Created",
                    cell: (i) => <span title={i.created_on}>{formatTime(i.created_on)}</span>,
                  },
                  {
                    header: "Last change",
                    cell: (i) => <span title={i.modified_on}>{ago(i.modified_on)}</span>,
                  },
                ]}
              />
            )}
          </Section>
        </>
      ) : null}
    </div>
  );
}

function WorkflowCard({ workflow: w }: { workflow: WorkflowSummary }) {
  const total = Object.values(w.instances).reduce((a, b) => a + b, 0);
  const shown = STATUS_ORDER.filter((s) => (w.instances[s] ?? 0) > 0);
  return (
    <article className="card" data-workflow={w.name} aria-labelledby={`wf-${w.name}`}>
      <header className="card-head">
        <h2 id={`wf-${w.name}`}>
          <Link to={paths.instances(w.name)}>{w.name}</Link>
        </h2>
        <span className="muted mono small">{w.class_name}</span>
      </header>
      <div className="total">
        <span className="big" data-testid="total">
          {total.toLocaleString()}
        </span>{" "}
        <span className="muted">instance{total === 1 ? "" : "s"}</span>
        <span className="muted small right" title={w.triggered_on ?? undefined}>
          last created {ago(w.triggered_on)}
        </span>
      </div>
      {w.schedules.length > 0 ? (
        <p className="muted small" data-testid="next-scheduled">
          {nextScheduled(w.schedules)}
        </p>
      ) : null}
      <StatusBar counts={w.instances} total={total} />
      <ul className="counts" aria-label={`${w.name} instances by status`}>
        {(shown.length ? shown : (["running", "complete"] as InstanceStatus[])).map((s) => (
          <li key={s}>
            <Link
              to={paths.instances(w.name, { status: s })}
              className="count"
              data-status={s}
              aria-label={`${w.instances[s] ?? 0} ${STATUS_LABEL[s]}`}
            >
              <span className={`dot s-${s}`} aria-hidden="true" />
              <span className="n">{(w.instances[s] ?? 0).toLocaleString()}</span> {STATUS_LABEL[s]}
            </Link>
          </li>
        ))}
      </ul>
    </article>
  );
}

function StatusBar({ counts, total }: { counts: Record<InstanceStatus, number>; total: number }) {
  if (total === 0) return <div className="statusbar empty" aria-hidden="true" />;
  return (
    <div className="statusbar" aria-hidden="true">
      {STATUS_ORDER.filter((s) => counts[s] > 0).map((s) => (
        <span key={s} className={`seg s-${s}`} style={{ flexGrow: counts[s] }} title={`${counts[s]} ${s}`} />
      ))}
    </div>
  );
}

/** "next scheduled <when> (<cron>)" for the earliest next slot of a workflow's schedules. */
function nextScheduled(schedules: WorkflowSummary["schedules"]): string {
  const next = schedules
    .filter((s) => s.next_at !== null)
    .sort((a, b) => a.next_at!.localeCompare(b.next_at!))[0];
  const count = schedules.length === 1 ? "1 schedule" : `${schedules.length} schedules`;
  return next ? `${count}, next ${ago(next.next_at)} (${next.cron})` : `${count}, none due again`;
}
