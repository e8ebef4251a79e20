import { Agent, callable } from "@cairn/agents";
import { AgentWorkflow, type AgentWorkflowStep, type WorkflowQueryCriteria } from "@cairn/agents/workflows";
import type { WorkflowEvent } from "@cairn/core";

/** Agents and workflows for the workflow tests (upstream's tests/agents/workflow.ts, test-workflow.ts). */

export const reports: { kind: string; [k: string]: unknown }[] = [];

export class TaskAgent extends Agent<
  Record<string, any>,
  { progress: number; last?: string; done?: boolean }
> {
  override initialState = { progress: 0 };

  @callable()
  async start(params: Record<string, unknown>, options: Record<string, unknown> = {}): Promise<string> {
    return this.runWorkflow("TASK_WORKFLOW", params, options);
  }
  @callable()
  async approve(id: string, reason?: string): Promise<void> {
    await this.approveWorkflow(id, { reason, metadata: { by: "tester" } });
  }
  @callable()
  async reject(id: string, reason?: string): Promise<void> {
    await this.rejectWorkflow(id, { reason });
  }
  @callable()
  info(id: string): unknown {
    const w = this.getWorkflow(id);
    return w
      ? {
          ...w,
          createdAt: w.createdAt.getTime(),
          updatedAt: w.updatedAt.getTime(),
          completedAt: w.completedAt?.getTime() ?? null,
        }
      : null;
  }
  @callable()
  list(criteria: WorkflowQueryCriteria): unknown {
    const page = this.getWorkflows(criteria);
    return { total: page.total, nextCursor: page.nextCursor, ids: page.workflows.map((w) => w.workflowId) };
  }
  @callable()
  async control(action: "pause" | "resume" | "terminate", id: string): Promise<string> {
    if (action === "pause") await this.pauseWorkflow(id);
    if (action === "resume") await this.resumeWorkflow(id);
    if (action === "terminate") await this.terminateWorkflow(id);
    return this.getWorkflow(id)!.status;
  }
  @callable()
  async liveStatus(id: string): Promise<string> {
    return (await this.getWorkflowStatus("TASK_WORKFLOW", id)).status;
  }
  @callable()
  track(
    rows: { id: string; name: string; status: string; created: number; meta?: Record<string, unknown> }[],
  ): void {
    for (const r of rows)
      this
        .sql`INSERT INTO cf_agents_workflows (id, workflow_id, workflow_name, status, metadata, created_at, updated_at)
        VALUES (${`t-${r.id}`}, ${r.id}, ${r.name}, ${r.status}, ${r.meta ? JSON.stringify(r.meta) : null}, ${r.created}, ${r.created})`;
  }
  @callable()
  remove(id: string): boolean {
    return this.deleteWorkflow(id);
  }
  @callable()
  removeMany(criteria: Record<string, unknown>): number {
    return this.deleteWorkflows(criteria as never);
  }
  @callable()
  current(): unknown {
    return this.state;
  }
  @callable()
  pendingRows(): unknown[] {
    return this.sql`SELECT workflow_id, status FROM cf_agents_workflows ORDER BY workflow_id`;
  }
  override async onWorkflowProgress(
    workflowName: string,
    workflowId: string,
    progress: unknown,
  ): Promise<void> {
    reports.push({ kind: "progress", agent: this.name, workflowName, workflowId, progress });
  }
  override async onWorkflowComplete(
    workflowName: string,
    workflowId: string,
    result?: unknown,
  ): Promise<void> {
    reports.push({ kind: "complete", agent: this.name, workflowName, workflowId, result });
  }
  override async onWorkflowError(workflowName: string, workflowId: string, error: string): Promise<void> {
    reports.push({ kind: "error", agent: this.name, workflowName, workflowId, error });
  }
  override async onWorkflowEvent(workflowName: string, workflowId: string, event: unknown): Promise<void> {
    reports.push({ kind: "event", agent: this.name, workflowName, workflowId, event });
  }
}

export interface TaskParams {
  task: string;
  mode?: "approve" | "throw" | "simple" | "report-then-throw" | "slow";
}

export class TaskWorkflow extends AgentWorkflow<TaskAgent, TaskParams> {
  override async run(event: Readonly<WorkflowEvent<TaskParams>>, step: AgentWorkflowStep): Promise<unknown> {
    const { task, mode = "simple" } = event.payload;
    reports.push({ kind: "payload", workflowId: this.workflowId, keys: Object.keys(event.payload).sort() });
    await this.reportProgress({ step: "start", percent: 0.1 });
    const value = await step.do("work", async () => `${task}!`);
    await step.mergeAgentState({ last: value });
    await step.sendEvent({ note: "halfway" });
    if (mode === "slow") await step.sleep("nap", "2 seconds");
    if (mode === "throw") throw new Error(`failed ${task}`);
    if (mode === "report-then-throw") {
      await step.reportError("reported first");
      throw new Error("then thrown");
    }
    let approvedBy: unknown = null;
    if (mode === "approve") approvedBy = await this.waitForApproval(step, { timeout: "1 hour" });
    await this.broadcastToClients({ type: "workflow-done", task });
    await step.updateAgentState({ progress: 1, last: value, done: true });
    await step.reportComplete({ value, approvedBy });
    return value;
  }
}
