/**
 * Reading agents from outside (the HTTP API, `cairn agents list`, the dashboard): every object of
 * the host whose database has the Agents tables, with its state, schedules and tracked workflows.
 * Read-only: it goes through the host's read-only views, so no agent is loaded to be listed.
 */

/** What this reads: `ObjectHost` of `@cairn/objects` has this shape. */
export interface AgentObjectsReader {
  /** On a store shared by workers: reads from the store what the next views show (`ObjectHost.refreshViews`). */
  refreshViews?(
    namespace?: string,
    idOrName?: string,
    page?: { limit?: number; offset?: number },
  ): Promise<void>;
  listNamespaces(): { binding: string; className: string }[];
  listObjects(
    namespace: string,
    options?: { limit?: number; offset?: number },
  ): { id: string; name: string | null }[];
  describeObject(namespace: string, idOrName: string, options?: { rows?: number }): unknown | undefined;
  querySql(
    namespace: string,
    idOrName: string,
    query: string,
  ): Promise<{ columns: string[]; rows: unknown[][]; rowsWritten: number }>;
}

export interface AgentScheduleInfo {
  id: string;
  callback: string;
  type: "scheduled" | "delayed" | "cron" | "interval";
  /** Next run, epoch seconds. */
  time: number | null;
  cron: string | null;
  intervalSeconds: number | null;
  delayInSeconds: number | null;
  running: boolean;
}

export interface AgentWorkflowInfo {
  /** The tracking row's id. */
  id: string;
  /** The workflow instance's id (its page is `/workflows/<workflowName>/instances/<workflowId>`). */
  workflowId: string;
  workflowName: string;
  binding: string | null;
  status: string;
  errorMessage: string | null;
  /** Epoch seconds. */
  createdAt: number;
  updatedAt: number;
  completedAt: number | null;
}

export interface AgentInfo {
  binding: string;
  className: string;
  /** The object's 64-hex id. */
  id: string;
  name: string | null;
  /** Open WebSocket connections. */
  connections: number;
  /** The state as stored (JSON text), `null` before the agent first stored one. */
  state: string | null;
  schedules: AgentScheduleInfo[];
  workflows: AgentWorkflowInfo[];
}

const STATE_ROW_ID = "cf_state_row_id";

function rowsOf(result: { columns: string[]; rows: unknown[][] }): Record<string, unknown>[] {
  return result.rows.map((r) => Object.fromEntries(result.columns.map((c, i) => [c, r[i]])));
}
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** One object read as an agent, or `undefined` when its database has no Agents tables. */
export async function describeAgent(
  objects: AgentObjectsReader,
  namespace: { binding: string; className: string },
  id: string,
  name: string | null,
): Promise<AgentInfo | undefined> {
  const ns = namespace.className;
  await objects.refreshViews?.(ns, id);
  const tables = await objects.querySql(
    ns,
    id,
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('cf_agents_state', 'cf_agents_schedules', 'cf_agents_workflows')",
  );
  if (tables.rows.length < 3) return undefined;
  const detail = objects.describeObject(ns, id, { rows: 0 }) as { webSockets?: number } | undefined;
  const state = await objects.querySql(
    ns,
    id,
    `SELECT state FROM cf_agents_state WHERE id = '${STATE_ROW_ID}'`,
  );
  const schedules = rowsOf(
    await objects.querySql(
      ns,
      id,
      "SELECT id, callback, type, time, cron, intervalSeconds, delayInSeconds, running FROM cf_agents_schedules ORDER BY time, id",
    ),
  );
  const workflows = rowsOf(
    await objects.querySql(
      ns,
      id,
      "SELECT id, workflow_id, workflow_name, binding, status, error_message, created_at, updated_at, completed_at FROM cf_agents_workflows ORDER BY created_at DESC, id",
    ),
  );
  return {
    binding: namespace.binding,
    className: namespace.className,
    id,
    name,
    connections: detail?.webSockets ?? 0,
    state: str(state.rows[0]?.[0]),
    schedules: schedules.map((s) => ({
      id: String(s.id),
      callback: String(s.callback),
      type: s.type as AgentScheduleInfo["type"],
      time: num(s.time),
      cron: str(s.cron),
      intervalSeconds: num(s.intervalSeconds),
      delayInSeconds: num(s.delayInSeconds),
      running: Number(s.running) === 1,
    })),
    workflows: workflows.map((w) => ({
      id: String(w.id),
      workflowId: String(w.workflow_id),
      workflowName: String(w.workflow_name),
      binding: str(w.binding),
      status: String(w.status),
      errorMessage: str(w.error_message),
      createdAt: Number(w.created_at),
      updatedAt: Number(w.updated_at),
      completedAt: num(w.completed_at),
    })),
  };
}

/**
 * The agents of every namespace (or of the one named by binding or class), most recently used
 * first, at most `limit` per namespace (default 100).
 */
export async function listAgents(
  objects: AgentObjectsReader,
  options: { namespace?: string; limit?: number } = {},
): Promise<AgentInfo[]> {
  const out: AgentInfo[] = [];
  for (const ns of objects.listNamespaces()) {
    if (
      options.namespace !== undefined &&
      options.namespace !== ns.binding &&
      options.namespace !== ns.className
    )
      continue;
    await objects.refreshViews?.(ns.className, undefined, { limit: options.limit ?? 100 });
    for (const o of objects.listObjects(ns.className, { limit: options.limit ?? 100 })) {
      const agent = await describeAgent(objects, ns, o.id, o.name);
      if (agent) out.push(agent);
    }
  }
  return out;
}
