/**
 * `@cairn/agents/workflows` (for users `cairnjs/agents/workflows`, and `agents/workflows` inside
 * `cairn dev`): workflows started by an Agent that report back to it (SPEC §13.6).
 */
import {
  type ExecutionContext,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
} from "@cairn/core";
import type { DefaultProgress, WorkflowCallback, WorkflowEventPayload } from "./workflow-types.ts";

export type * from "./workflow-types.ts";

/** Thrown by `waitForApproval` when the agent rejected the workflow. */
export class WorkflowRejectedError extends Error {
  readonly workflowId: string | undefined;
  readonly reason: string | undefined;
  constructor(reason?: string, workflowId?: string) {
    super(`Workflow was rejected${reason ? `: ${reason}` : ""}`);
    this.name = "WorkflowRejectedError";
    this.reason = reason;
    this.workflowId = workflowId;
  }
}

/** The step of an AgentWorkflow: Cloudflare's step plus durable reports to the agent. */
export type AgentWorkflowStep = WorkflowStep & {
  reportComplete<T = unknown>(result?: T): Promise<void>;
  reportError(error: Error | string): Promise<void>;
  sendEvent<T = unknown>(event: T): Promise<void>;
  updateAgentState(state: unknown): Promise<void>;
  mergeAgentState(partial: Record<string, unknown>): Promise<void>;
  resetAgentState(): Promise<void>;
};

interface AgentParams {
  __agentName?: string;
  __agentBinding?: string;
  __workflowName?: string;
  __agentOrigin?: unknown;
}

type AgentStub = {
  _workflow_handleCallback(callback: WorkflowCallback): Promise<void>;
  _workflow_broadcast(message: unknown): Promise<void>;
  _workflow_updateState(action: "set" | "merge" | "reset", state?: unknown): Promise<void>;
};

/**
 * A workflow that belongs to an Agent: `this.agent` is a stub of the agent that started it,
 * `reportProgress` and `broadcastToClients` reach it at once (not durable), the `step.report*` and
 * `step.*AgentState` helpers are durable steps. An error escaping `run()` is reported once.
 *
 * ```ts
 * export class Research extends AgentWorkflow<MyAgent, { topic: string }> {
 *   async run(event, step) {
 *     const r = await step.do("search", () => search(event.payload.topic));
 *     await this.reportProgress({ percent: 0.5 });
 *     await step.reportComplete(r);
 *   }
 * }
 * ```
 */
export abstract class AgentWorkflow<
  _AgentType = unknown,
  Params = unknown,
  Progress = DefaultProgress,
  Env = unknown,
> extends WorkflowEntrypoint<Env, Params> {
  #agent: (AgentStub & Record<string, (...args: any[]) => Promise<any>>) | undefined;
  #workflowId = "";
  #workflowName = "";
  #reportedError = false;

  constructor(ctx: ExecutionContext, env: Env) {
    super(ctx, env);
    const run = this.run.bind(this);
    this.run = async (event: Readonly<WorkflowEvent<Params>>, step: WorkflowStep) => {
      const payload = (event.payload ?? {}) as Params & AgentParams;
      const { __agentName, __agentBinding, __workflowName, __agentOrigin: _origin, ...rest } = payload;
      this.#workflowId = event.instanceId;
      this.#workflowName = __workflowName ?? "";
      this.#reportedError = false;
      if (__agentName && __agentBinding) {
        const ns = (env as Record<string, any>)[__agentBinding];
        if (ns && typeof ns.idFromName === "function") this.#agent = ns.get(ns.idFromName(__agentName));
      }
      const clean = { ...event, payload: rest as Params } as Readonly<WorkflowEvent<Params>>;
      try {
        return await run(clean, this.#wrapStep(step));
      } catch (e) {
        if (!this.#reportedError && !(e instanceof WorkflowRejectedError)) {
          this.#reportedError = true;
          try {
            await this.#callback({ type: "error", error: e instanceof Error ? e.message : String(e) });
          } catch (notify) {
            console.error("AgentWorkflow: reporting the error to the agent failed", notify);
          }
        }
        throw e;
      }
    };
  }

  abstract override run(event: Readonly<WorkflowEvent<Params>>, step: AgentWorkflowStep): Promise<unknown>;

  /** A stub of the agent that started this workflow. */
  get agent(): Record<string, (...args: any[]) => Promise<any>> {
    if (!this.#agent)
      throw new Error("This workflow was not started by an Agent (runWorkflow): it has no agent to talk to");
    return this.#agent;
  }

  get workflowId(): string {
    return this.#workflowId;
  }

  get workflowName(): string {
    return this.#workflowName;
  }

  async #callback(body: { type: WorkflowCallback["type"] } & Record<string, unknown>): Promise<void> {
    if (!this.#agent) return;
    await this.#agent._workflow_handleCallback({
      workflowName: this.#workflowName,
      workflowId: this.#workflowId,
      timestamp: Date.now(),
      ...body,
    } as WorkflowCallback);
  }

  /** Tells the agent how far the workflow got (not durable: repeated on replay). */
  async reportProgress(progress: Progress): Promise<void> {
    await this.#callback({ type: "progress", progress });
  }

  /** Sends `message` (as JSON) to every client of the agent (not durable). */
  async broadcastToClients(message: unknown): Promise<void> {
    if (this.#agent) await this.#agent._workflow_broadcast(message);
  }

  /**
   * Waits for the agent's `approveWorkflow`/`rejectWorkflow`: resolves with the approval's
   * metadata, or reports the error and throws `WorkflowRejectedError`.
   */
  async waitForApproval<T = unknown>(
    step: AgentWorkflowStep,
    options: { stepName?: string; timeout?: string | number; eventType?: string } = {},
  ): Promise<T> {
    const event = await step.waitForEvent<{ approved?: boolean; reason?: string; metadata?: T }>(
      options.stepName ?? "wait-for-approval",
      {
        type: options.eventType ?? "approval",
        ...(options.timeout !== undefined ? { timeout: options.timeout as any } : {}),
      },
    );
    const payload = (event.payload ?? {}) as { approved?: boolean; reason?: string; metadata?: T };
    if (!payload.approved) {
      await step.reportError(payload.reason ?? "Workflow rejected");
      throw new WorkflowRejectedError(payload.reason, this.#workflowId);
    }
    return payload.metadata as T;
  }

  #wrapStep(step: WorkflowStep): AgentWorkflowStep {
    const counters = new Map<string, number>();
    const name = (kind: string) => {
      const n = (counters.get(kind) ?? 0) + 1;
      counters.set(kind, n);
      return `__agent_${kind}_${n}`;
    };
    const extra = {
      reportComplete: async (result?: unknown) => {
        await step.do(name("reportComplete"), async () => {
          await this.#callback({ type: "complete", result });
        });
      },
      reportError: async (error: Error | string) => {
        const message = error instanceof Error ? error.message : String(error);
        this.#reportedError = true;
        await step.do(name("reportError"), async () => {
          await this.#callback({ type: "error", error: message });
        });
      },
      sendEvent: async (event: unknown) => {
        await step.do(name("sendEvent"), async () => {
          await this.#callback({ type: "event", event });
        });
      },
      updateAgentState: async (state: unknown) => {
        await step.do(name("updateState"), async () => {
          await this.#agent?._workflow_updateState("set", state);
        });
      },
      mergeAgentState: async (partial: Record<string, unknown>) => {
        await step.do(name("mergeState"), async () => {
          await this.#agent?._workflow_updateState("merge", partial);
        });
      },
      resetAgentState: async () => {
        await step.do(name("resetState"), async () => {
          await this.#agent?._workflow_updateState("reset");
        });
      },
    };
    return new Proxy(step as AgentWorkflowStep, {
      get(target, prop, receiver) {
        if (typeof prop === "string" && Object.hasOwn(extra, prop)) return extra[prop as keyof typeof extra];
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  }
}

export type { WorkflowEventPayload };
