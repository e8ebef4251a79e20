import { getApi, useAuth, useLoad } from "../api.ts";
import { formatTime } from "../format.ts";
import { Link, paths } from "../router.tsx";
import { DataTable, Empty, ErrorBox, Loading, Section } from "../ui.tsx";

interface AgentRow {
  binding: string;
  className: string;
  id: string;
  name: string | null;
  connections: number;
  state: string | null;
  schedules: {
    id: string;
    callback: string;
    type: string;
    time: number | null;
    cron: string | null;
    intervalSeconds: number | null;
    delayInSeconds: number | null;
    running: boolean;
  }[];
  workflows: {
    id: string;
    workflowId: string;
    workflowName: string;
    workflow: string | null;
    status: string;
    errorMessage: string | null;
    createdAt: number;
  }[];
}

interface SandboxRow {
  id: string;
  state: "running" | "stopped";
  driver: string;
  limits: { mode: string; memory: number; pids: number; cpu: number };
  processes: { id: string; command: string; status: string; exitCode?: number }[];
  exposedPorts: { port: number; name?: string }[];
  recentCommands: { command: string; exitCode: number | null; at: string; durationMs: number }[];
}

const secondsIso = (s: number | null) => (s === null ? null : new Date(s * 1000).toISOString());

/** The state JSON indented, as text (React escapes it: never HTML). */
function stateText(state: string | null): string {
  if (state === null) return "(no state stored yet)";
  try {
    return JSON.stringify(JSON.parse(state), null, 2);
  } catch {
    return state;
  }
}

function scheduleWhen(s: AgentRow["schedules"][number]): string {
  if (s.type === "cron") return `cron ${s.cron}`;
  if (s.type === "interval") return `every ${s.intervalSeconds} s`;
  return formatTime(secondsIso(s.time));
}

/** Every agent of the host: class, name, connections, schedules and tracked workflows. */
export function AgentsPage() {
  const { token } = useAuth();
  const { data, error, loading, reload } = useLoad(() => getApi<AgentRow[]>("/agents", token), [token], {
    refreshMs: 5000,
  });
  return (
    <div className="page">
      <div className="page-head">
        <h1>Agents</h1>
        <button type="button" className="btn small" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      {error && !data ? <ErrorBox error={error} retry={reload} /> : null}
      {!data && !error ? <Loading what="Loading agents" /> : null}
      {data ? (
        <DataTable
          testId="agents"
          rows={data}
          rowKey={(a) => `${a.binding}/${a.id}`}
          empty="No agents yet."
          columns={[
            { header: "Class", cell: (a) => a.className },
            {
              header: "Name",
              cell: (a) => (
                <Link className="mono" to={paths.agent(a.binding, a.id)}>
                  {a.name ?? `${a.id.slice(0, 16)}…`}
                </Link>
              ),
            },
            { header: "Connections", cell: (a) => a.connections },
            { header: "Schedules", cell: (a) => a.schedules.length },
            { header: "Workflows", cell: (a) => a.workflows.length },
          ]}
        />
      ) : null}
    </div>
  );
}

/** One agent: its state JSON (as text), schedules and tracked workflows linking to their instances. */
export function AgentPage({ binding, id }: { binding: string; id: string }) {
  const { token } = useAuth();
  const { data, error, reload } = useLoad(
    async () => {
      const all = await getApi<AgentRow[]>(
        `/agents?namespace=${encodeURIComponent(binding)}&limit=1000`,
        token,
      );
      const found = all.find((a) => a.id === id || a.name === id);
      if (!found) throw new Error(`No agent ${id} in ${binding}`);
      return found;
    },
    [binding, id, token],
    { refreshMs: 5000 },
  );
  if (error && !data) return <ErrorBox error={error} retry={reload} />;
  if (!data) return <Loading what="Loading the agent" />;
  return (
    <div className="page">
      <div className="page-head">
        <h1 className="mono">{data.name ?? data.id}</h1>
      </div>
      <dl className="facts" data-testid="agent-facts">
        <dt>Class</dt>
        <dd>{data.className}</dd>
        <dt>Id</dt>
        <dd className="mono">{data.id}</dd>
        <dt>Connections</dt>
        <dd>{data.connections}</dd>
        <dt>Object</dt>
        <dd>
          <Link to={paths.object(data.binding, data.id)}>stored state and SQL tables</Link>
        </dd>
      </dl>
      <Section title="State" id="state">
        <pre className="mono json" data-testid="agent-state">
          {stateText(data.state)}
        </pre>
      </Section>
      <Section title={`Schedules (${data.schedules.length})`} id="schedules">
        <DataTable
          testId="agent-schedules"
          rows={data.schedules}
          rowKey={(s) => s.id}
          empty="No schedules."
          columns={[
            { header: "Callback", className: "mono", cell: (s) => s.callback },
            { header: "Type", cell: (s) => s.type },
            { header: "When", cell: scheduleWhen },
            { header: "Running", cell: (s) => (s.running ? "yes" : "no") },
          ]}
        />
      </Section>
      <Section title={`Workflows (${data.workflows.length})`} id="workflows">
        <DataTable
          testId="agent-workflows"
          rows={data.workflows}
          rowKey={(w) => w.id}
          empty="No tracked workflows."
          columns={[
            {
              header: "Instance",
              cell: (w) =>
                w.workflow ? (
                  <Link className="mono" to={paths.instance(w.workflow, w.workflowId)}>
                    {w.workflowId}
                  </Link>
                ) : (
                  <span className="mono">{w.workflowId}</span>
                ),
            },
            { header: "Workflow", cell: (w) => w.workflow ?? w.workflowName },
            { header: "Status", cell: (w) => `${w.status}${w.errorMessage ? ` (${w.errorMessage})` : ""}` },
            { header: "Started", cell: (w) => formatTime(secondsIso(w.createdAt)) },
          ]}
        />
      </Section>
    </div>
  );
}

/** The sandboxes: state, limits mode, processes, exposed ports and recent commands with exit codes. */
export function SandboxesPage() {
  const { token } = useAuth();
  const { data, error, loading, reload } = useLoad(() => getApi<SandboxRow[]>("/sandboxes", token), [token], {
    refreshMs: 5000,
  });
  return (
    <div className="page">
      <div className="page-head">
        <h1>Sandboxes</h1>
        <button type="button" className="btn small" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      {error && !data ? <ErrorBox error={error} retry={reload} /> : null}
      {!data && !error ? <Loading what="Loading sandboxes" /> : null}
      {data && data.length === 0 ? <Empty title="No sandboxes yet." /> : null}
      {data?.map((s) => (
        <Section key={s.id} title={s.id} id={`sandbox-${s.id}`}>
          <dl className="facts" data-testid={`sandbox-${s.id}`}>
            <dt>State</dt>
            <dd>{s.state}</dd>
            <dt>Limits</dt>
            <dd>
              {s.limits.mode} ({Math.round(s.limits.memory / 1048576)} MiB, {s.limits.pids} pids,{" "}
              {s.limits.cpu} CPU)
            </dd>
            <dt>Ports</dt>
            <dd>
              {s.exposedPorts.length === 0
                ? "none"
                : s.exposedPorts.map((p) => (p.name ? `${p.port} (${p.name})` : String(p.port))).join(", ")}
            </dd>
          </dl>
          <h3>Processes</h3>
          <DataTable
            testId={`sandbox-${s.id}-processes`}
            rows={s.processes}
            rowKey={(p) => p.id}
            empty="No processes."
            columns={[
              { header: "Process", className: "mono", cell: (p) => p.id },
              {
                header: "Status",
                cell: (p) => `${p.status}${p.exitCode === undefined ? "" : ` (${p.exitCode})`}`,
              },
              { header: "Command", className: "mono", cell: (p) => p.command },
            ]}
          />
          <h3>Recent commands</h3>
          <DataTable
            testId={`sandbox-${s.id}-commands`}
            rows={s.recentCommands.slice().reverse()}
            rowKey={(c) => `${c.at}|${c.durationMs}|${c.command}`}
            empty="No commands yet."
            columns={[
              { header: "Command", className: "mono", cell: (c) => c.command },
              { header: "Exit", cell: (c) => (c.exitCode === null ? "—" : c.exitCode) },
              { header: "At", cell: (c) => formatTime(c.at) },
            ]}
          />
        </Section>
      ))}
    </div>
  );
}
