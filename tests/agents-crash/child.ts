/**
 * A Cairn process with an agent that drives a workflow, for the crash test:
 * `node --conditions=source child.ts <dir> [postgres://…]` (the store: `<dir>/cairn.db`, or the
 * PostgreSQL URL with the objects in `<dir>/do` and a 2 s lease, so the next process takes over
 * the dead one's workflow instances quickly). `POST /setup?id=<wf>` (state, a cron and an interval
 * schedule, and a workflow that sleeps between steps), `POST /crash-before-create?id=` and
 * `POST /crash-after-create?id=` (runWorkflow on a binding whose create SIGKILLs the process
 * before, or after, the instance exists), `GET /inspect` (state, schedules, tracking rows,
 * completions as JSON). Prints `{"event":"ready","port"}`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Agent, getAgentByName } from "@cairn/agents";
import { AgentWorkflow, type AgentWorkflowStep } from "@cairn/agents/workflows";
import type { WorkflowEvent } from "@cairn/core";
import { createCairn } from "cairnjs";

const dir = process.argv[2]!;
const postgres = process.argv[3];
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

class Keeper extends Agent<Record<string, any>, { phase: string; notes?: string }> {
  override initialState = { phase: "new" };
  override onStart(): void {
    this.sql`CREATE TABLE IF NOT EXISTS completions (workflow_id TEXT, result TEXT)`;
  }
  async setup(id: string): Promise<string> {
    this.setState({ phase: "started" });
    await this.schedule("0 3 * * *", "nightly", { job: "report" });
    await this.scheduleEvery(3600, "hourly", "tick");
    return this.runWorkflow("SLOW_WORKFLOW", { topic: "crash" }, { id, metadata: { by: "test" } });
  }
  async runOn(binding: string, id: string): Promise<string> {
    return this.runWorkflow(binding, { topic: "crash" }, { id });
  }
  async nightly(): Promise<void> {}
  async hourly(): Promise<void> {}
  override async onWorkflowComplete(_name: string, workflowId: string, result?: unknown): Promise<void> {
    this.sql`INSERT INTO completions (workflow_id, result) VALUES (${workflowId}, ${JSON.stringify(result)})`;
  }
  async inspect(): Promise<unknown> {
    return {
      state: this.state,
      schedules: (await this.listSchedules()).map((s) => ({ type: s.type, callback: s.callback })),
      workflows: this.getWorkflows({ orderBy: "asc" }).workflows.map((w) => ({
        id: w.workflowId,
        status: w.status,
        metadata: w.metadata,
      })),
      completions: this.sql`SELECT workflow_id, result FROM completions`,
    };
  }
}

class SlowWorkflow extends AgentWorkflow<Keeper, { topic: string }> {
  override async run(
    event: Readonly<WorkflowEvent<{ topic: string }>>,
    step: AgentWorkflowStep,
  ): Promise<unknown> {
    const a = await step.do("first", async () => `${event.payload.topic}-1`);
    await this.reportProgress({ step: "first", percent: 0.5 });
    await step.sleep("nap", "3 seconds");
    const b = await step.do("second", async () => `${a}-2`);
    await step.mergeAgentState({ phase: "done" });
    await step.reportComplete(b);
    return b;
  }
}

let cairn: Awaited<ReturnType<typeof createCairn>>;
const kill = () => process.kill(process.pid, "SIGKILL");
cairn = await createCairn({
  ...(postgres
    ? { store: postgres, objectsDir: join(dir, "do"), leaseMs: 2000, pollMs: 200, objectLeaseMs: 2000 }
    : { store: join(dir, "cairn.db") }),
  workflows: [{ binding: "SLOW_WORKFLOW", name: "slow", class: SlowWorkflow }],
  objects: [{ binding: "Keeper", class: Keeper }],
  env: {
    BEFORE_CREATE: {
      create: async () => kill(),
      get: (id: string) => (cairn.env as any).SLOW_WORKFLOW.get(id),
    },
    AFTER_CREATE: {
      create: async (o: any) => {
        await (cairn.env as any).SLOW_WORKFLOW.create(o);
        kill();
      },
      get: (id: string) => (cairn.env as any).SLOW_WORKFLOW.get(id),
    },
  },
});
const env = cairn.env as Record<string, any>;

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  const keeper = (await getAgentByName<Keeper>(env.Keeper, "k")) as any;
  const id = url.searchParams.get("id") ?? "wf_default";
  let body: unknown;
  try {
    if (url.pathname === "/setup") body = await keeper.setup(id);
    else if (url.pathname === "/crash-before-create") body = await keeper.runOn("BEFORE_CREATE", id);
    else if (url.pathname === "/crash-after-create") body = await keeper.runOn("AFTER_CREATE", id);
    else body = await keeper.inspect();
  } catch (e) {
    res.writeHead(500);
    res.end(String(e));
    return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
});
server.listen(0, "127.0.0.1", () => print({ event: "ready", port: (server.address() as AddressInfo).port }));
