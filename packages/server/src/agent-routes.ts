import { listAgents } from "@cairn/agents/operate";
import { agentSchema, listAgentsQuerySchema } from "@cairn/api";
import { z } from "zod";
import { envelope, HttpError } from "./errors.ts";
import type { ObjectsView } from "./objects.ts";
import { defineRoute, type RouteGroup } from "./routes.ts";

/** What the Agents routes work with. */
export interface AgentApiDeps {
  objects: ObjectsView;
  /** The workflows of the runtime, to name the workflow behind each tracked binding. */
  workflows(): { name: string; binding?: string }[];
}

/** Agents of the objects host, read-only (docs/agents.md "Operations"). */
export const agentRoutes: RouteGroup<AgentApiDeps> = {
  tag: "agents",
  description: "Agents: their state, connections, schedules and tracked workflows",
  routes: [
    defineRoute({
      method: "get",
      path: "/agents",
      operationId: "listAgents",
      summary: "The agents of every Durable Object namespace, most recently used first",
      query: listAgentsQuerySchema,
      response: { description: "agents", result: z.array(agentSchema) },
      errors: [404],
      async handle({ c, query }, { objects, workflows }: AgentApiDeps) {
        const namespace = query.namespace;
        if (
          namespace !== undefined &&
          !objects.listNamespaces().some((n) => n.binding === namespace || n.className === namespace)
        )
          throw new HttpError("not_found", `No Durable Object namespace ${namespace}`, 404);
        const byBinding = new Map(workflows().map((w) => [w.binding ?? w.name, w.name]));
        const agents = await listAgents(objects, query);
        return c.json(
          envelope(
            agents.map((a) => ({
              ...a,
              workflows: a.workflows.map((w) => ({
                ...w,
                workflow: byBinding.get(w.workflowName) ?? byBinding.get(w.binding ?? "") ?? null,
              })),
            })),
          ),
        );
      },
    }),
  ],
};
