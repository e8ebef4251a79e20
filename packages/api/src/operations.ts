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

/** The sandboxes of the server's process (`GET /api/v1/sandboxes`, docs/sandbox.md "Operating it"). */
export const sandboxProcessSchema = z.object({
  id: z.string(),
  pid: z.number().int().optional(),
  command: z.string(),
  status: z.enum(["starting", "running", "completed", "failed", "killed", "error"]),
  startTime: z.string(),
  endTime: z.string().optional(),
  exitCode: z.number().int().optional(),
  sessionId: z.string().optional(),
});

export const sandboxSchema = z.object({
  id: z.string(),
  state: z.enum(["running", "stopped"]),
  driver: z.string(),
  startedAt: z.string().optional(),
  lastActivity: z.string().optional(),
  limits: z.object({
    mode: z.string().describe("v2, v1, rlimits, or stopped"),
    memory: z.number(),
    pids: z.number(),
    cpu: z.number(),
    tmp: z.number(),
    cpuSeconds: z.number(),
    disk: z.number().optional().describe("bytes the sandbox's files may use (0: no limit)"),
  }),
  network: z.string(),
  processes: z.array(sandboxProcessSchema),
  exposedPorts: z.array(z.object({ port: z.number().int(), name: z.string().optional() })),
  recentCommands: z
    .array(
      z.object({
        command: z.string(),
        exitCode: z.number().int().nullable(),
        at: z.string(),
        durationMs: z.number(),
      }),
    )
    .describe("newest last, at most 50"),
});
export type SandboxView = z.infer<typeof sandboxSchema>;

export const sandboxExecBodySchema = z
  .object({
    command: z.string().min(1).describe("a shell command line, run in /workspace"),
    timeout: z.number().int().min(1).max(3_600_000).optional().describe("ms"),
  })
  .strict();

export const sandboxExecResultSchema = z.object({
  success: z.boolean(),
  exitCode: z.number().int(),
  stdout: z.string(),
  stderr: z.string(),
  command: z.string(),
  duration: z.number(),
  timestamp: z.string(),
});

export const sandboxLogsSchema = z.object({ processId: z.string(), stdout: z.string(), stderr: z.string() });
