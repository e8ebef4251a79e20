/** Types shared by the agent and `AgentWorkflow` (upstream's workflow-types.ts). */

import type { InstanceStatus } from "@cairn/core";

/** A workflow instance's status: the engine's own statuses. */
export type WorkflowStatus = InstanceStatus;

/** One tracked workflow, as `getWorkflow(s)` return it. */
export interface WorkflowInfo {
  id: string;
  workflowId: string;
  workflowName: string;
  /** Cairn also has "pending": the row is written, the instance being created. */
  status: WorkflowStatus | "pending";
  metadata: Record<string, unknown> | null;
  error: { name: string; message: string } | null;
  createdAt: Date;
  updatedAt: Date;
  completedAt: Date | null;
}

export interface WorkflowQueryCriteria {
  status?: WorkflowStatus | WorkflowStatus[];
  workflowName?: string;
  metadata?: Record<string, string | number | boolean>;
  /** Default 50, at most 100. */
  limit?: number;
  orderBy?: "asc" | "desc";
  cursor?: string;
}

export interface WorkflowPage {
  workflows: WorkflowInfo[];
  /** All rows matching the criteria (ignoring cursor and limit). */
  total: number;
  nextCursor: string | null;
}

export interface RunWorkflowOptions {
  id?: string;
  metadata?: Record<string, unknown>;
  /** The agent's own binding in `env`, when it cannot be found. */
  agentBinding?: string;
  retention?: { successRetention?: unknown; errorRetention?: unknown };
}

export type WorkflowCallback = {
  workflowName: string;
  workflowId: string;
  timestamp: number;
} & (
  | { type: "progress"; progress: unknown }
  | { type: "complete"; result?: unknown }
  | { type: "error"; error: string }
  | { type: "event"; event: unknown }
);

export interface WorkflowEventPayload {
  type: string;
  payload?: unknown;
}

export type DefaultProgress = {
  step?: string;
  status?: "pending" | "running" | "complete" | "error";
  message?: string;
  percent?: number;
  [key: string]: unknown;
};

/** A workflow binding as the agent uses it (Cairn's and Cloudflare's). */
export interface WorkflowBindingLike {
  create(options: { id?: string; params?: unknown; retention?: unknown }): Promise<{ id: string }>;
  get(id: string): Promise<WorkflowInstanceLike>;
}

export interface WorkflowInstanceLike {
  id: string;
  status(): Promise<{ status: string; error?: unknown; output?: unknown }>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  terminate(): Promise<void>;
  restart(): Promise<void>;
  sendEvent(event: WorkflowEventPayload): Promise<void>;
}
