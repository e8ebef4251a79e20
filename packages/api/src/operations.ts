import { z } from "zod";

/** The agents of the host (`GET /api/v1/agents`, docs/agents.md "Operations"). */
export const agentScheduleSchema = z.object({
  id: z.string(),
  callback: z.string(),
  type: z.enum(["scheduled", "delayed", "cron", "interval"]),
  time: z.number().nullable().describe("next run, epoch seconds"),
  cron: z.string().nullable(),
  intervalSeconds: z.number().nullable(),
  delayInSeconds: z.number().nullable(),
  running: z.boolean(),
});

export const agentWorkflowSchema = z.object({
  id: z.string().describe("the tracking row's id"),
  workflowId: z.string().describe("the workflow instance's id"),
  workflowName: z.string().describe("as the agent tracks it: the workflow binding's name"),
  workflow: z.string().nullable().describe("the Cairn workflow behind that binding (its instance page)"),
  binding: z.string().nullable(),
  status: z.string(),
  errorMessage: z.string().nullable(),
  createdAt: z.number().describe("epoch seconds"),
  updatedAt: z.number(),
  completedAt: z.number().nullable(),
});

export const agentSchema = z.object({
  binding: z.string(),
  className: z.string(),
  id: z.string().describe("the object's 64-hex id"),
  name: z.string().nullable(),
  connections: z.number().int().describe("open WebSocket connections"),
  state: z.string().nullable().describe("the stored state as JSON text (null before the first setState)"),
  schedules: z.array(agentScheduleSchema),
  workflows: z.array(agentWorkflowSchema),
});
export type AgentView = z.infer<typeof agentSchema>;

export const listAgentsQuerySchema = z.object({
  namespace: z.string().min(1).optional().describe("only this binding or class"),
  limit: z.coerce.number().int().min(1).max(1000).optional().describe("at most this many per namespace"),
});
