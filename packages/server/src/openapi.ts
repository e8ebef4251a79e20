import { API_PREFIX } from "@cairn/api";
import { z } from "zod";
import { agentRoutes } from "./agent-routes.ts";
import { emailRoutes } from "./email-routes.ts";
import { objectRoutes } from "./objects.ts";
import { defineRoute, openApiDocumentOf, type RouteGroup } from "./routes.ts";
import { sandboxRoutes } from "./sandbox-routes.ts";
import { systemRoutes } from "./system-routes.ts";
import { workerRoutes } from "./worker-routes.ts";
import { workflowRoutes } from "./workflow-routes.ts";

/** The OpenAPI document itself: served without the token. */
export const openApiRoute = defineRoute<void>({
  method: "get",
  path: "/openapi.json",
  operationId: "openapi",
  summary: "This document",
  public: true,
  response: {
    description: "OpenAPI 3.1 document",
    content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
  },
  handle: ({ c }) => c.json(openApiDocument()),
});

/**
 * Every route group of the API, in the order they are documented. A new group (Durable Objects,
 * agents) is declared with `defineRoute`, mounted in `createApi` and listed here; the OpenAPI test
 * fails if a served route is missing from the document.
 */
export const API_ROUTE_GROUPS: RouteGroup<never>[] = [
  { tag: "meta", description: "The API itself", routes: [openApiRoute] },
  systemRoutes,
  workflowRoutes,
  objectRoutes,
  emailRoutes,
  agentRoutes,
  sandboxRoutes,
  workerRoutes,
];

let cached: Record<string, unknown> | undefined;

/**
 * The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated from the route declarations
 * (their zod request and response schemas), so it cannot drift from what the server does.
 */
export function openApiDocument(): Record<string, unknown> {
  cached ??= openApiDocumentOf(
    API_ROUTE_GROUPS,
    {
      title: "Cairn API",
      version: "1",
      description:
        "Durable workflows with the Cloudflare Workflows API. Responses use Cloudflare's envelope { success, errors, messages, result, result_info? }.",
    },
    API_PREFIX,
  );
  return cached;
}
