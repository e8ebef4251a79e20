import { useAuth, useLoad } from "../api.ts";
import { formatTime } from "../format.ts";
import { Link, paths } from "../router.tsx";
import { Empty, ErrorBox, Loading, Section } from "../ui.tsx";

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

/** GET an `/api/v1` route with the tab's token; the `result` of the envelope. */
async function getApi<T>(path: string, token: string | undefined): Promise<T> {
  const r = await fetch(`${location.origin}/api/v1${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const body = (await r.json().catch(() => undefined)) as
    | { success?: boolean; result?: T; errors?: { message: string }[] }
    | undefined;
  if (!r.ok || !body?.success) throw new Error(body?.errors?.[0]?.message ?? `HTTP ${r.status}`);
  return body.result as T;
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
      {data && data.length === 0 ? <Empty title="No agents yet." /> : null}
      {data && data.length > 0 ? (
        <table className="table" data-testid="agents">
          <thead>
            <tr>
              <th scope="col">Class</th>
              <th scope="col">Name</th>
              <th scope="col">Connections</th>
              <th scope="col">Schedules</th>
              <th scope="col">Workflows</th>
            </tr>
          </thead>
          <tbody>
            {data.map((a) => (
              <tr key={`${a.binding}/${a.id}`}>
                <td>{a.className}</td>
                <td>
                  <Link className="mono" to={paths.agent(a.binding, a.id)}>
                    {a.name ?? `${a.id.slice(0, 16)}…`}
                  </Link>
                </td>
                <td>{a.connections}</td>
                <td>{a.schedules.length}</td>
                <td>{a.workflows.length}</td>
              </tr>
            ))}
          </tbody>
        </table>
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
        {data.schedules.length === 0 ? (
          <Empty title="No schedules." />
        ) : (
          <table className="table" data-testid="agent-schedules">
            <thead>
              <tr>
                <th scope="col">Callback</th>
                <th scope="col">Type</th>
                <th scope="col">When</th>
                <th scope="col">Running</th>
              </tr>
            </thead>
            <tbody>
              {data.schedules.map((s) => (
                <tr key={s.id}>
                  <td className="mono">{s.callback}</td>
                  <td>{s.type}</td>
                  <td>{scheduleWhen(s)}</td>
                  <td>{s.running ? "yes" : "no"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title={`Workflows (${data.workflows.length})`} id="workflows">
        {data.workflows.length === 0 ? (
          <Empty title="No tracked workflows." />
        ) : (
          <table className="table" data-testid="agent-workflows">
            <thead>
              <tr>
                <th scope="col">Instance</th>
                <th scope="col">Workflow</th>
                <th scope="col">Status</th>
                <th scope="col">Started</th>
              </tr>
            </thead>
            <tbody>
              {data.workflows.map((w) => (
                <tr key={w.id}>
                  <td>
                    {w.workflow ? (
                      <Link className="mono" to={paths.instance(w.workflow, w.workflowId)}>
                        {w.workflowId}
                      </Link>
                    ) : (
                      <span className="mono">{w.workflowId}</span>
                    )}
                  </td>
                  <td>{w.workflow ?? w.workflowName}</td>
                  <td>
                    {w.status}
                    {w.errorMessage ? ` (${w.errorMessage})` : ""}
                  </td>
                  <td>{formatTime(secondsIso(w.createdAt))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
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
          {s.processes.length === 0 ? (
            <Empty title="No processes." />
          ) : (
            <table className="table" data-testid={`sandbox-${s.id}-processes`}>
              <thead>
                <tr>
                  <th scope="col">Process</th>
                  <th scope="col">Status</th>
                  <th scope="col">Command</th>
                </tr>
              </thead>
              <tbody>
                {s.processes.map((p) => (
                  <tr key={p.id}>
                    <td className="mono">{p.id}</td>
                    <td>
                      {p.status}
                      {p.exitCode === undefined ? "" : ` (${p.exitCode})`}
                    </td>
                    <td className="mono">{p.command}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>Recent commands</h3>
          {s.recentCommands.length === 0 ? (
            <Empty title="No commands yet." />
          ) : (
            <table className="table" data-testid={`sandbox-${s.id}-commands`}>
              <thead>
                <tr>
                  <th scope="col">Command</th>
                  <th scope="col">Exit</th>
                  <th scope="col">At</th>
                </tr>
              </thead>
              <tbody>
                {s.recentCommands
                  .slice()
                  .reverse()
                  .map((c) => (
                    <tr key={`${c.at}|${c.durationMs}|${c.command}`}>
                      <td className="mono">{c.command}</td>
                      <td>{c.exitCode === null ? "—" : c.exitCode}</td>
                      <td>{formatTime(c.at)}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          )}
        </Section>
      ))}
    </div>
  );
}
