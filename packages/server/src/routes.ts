import {
  extendZodWithOpenApi,
  OpenAPIRegistry,
  OpenApiGeneratorV31,
  type RouteConfig,
} from "@asteasolutions/zod-to-openapi";
import { ERROR_STATUS, envelopeSchema, errorEnvelopeSchema, SANDBOX_ERROR_STATUS } from "@cairn/api";
import { WorkflowError } from "@cairn/core";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { z } from "zod";
import { bodyText } from "./body.ts";
import { validationError } from "./errors.ts";

/**
 * Routes are declared once: each `ApiRoute` is both what Hono serves and what the OpenAPI document
 * says. The declaration's zod schemas validate the request (with Cairn's error bodies, see
 * `readBody` and `parse`) and describe it; the response schema describes the answer.
 *
 * Routes come in groups (`RouteGroup`): the workflows API today, Durable Objects and agents later.
 * A group is mounted with `mountRoutes` and documented by listing it in `API_ROUTE_GROUPS`
 * (`openapi.ts`); a test checks that every route the app serves is in the document.
 */

export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

/** What a handler receives: the context, and the request parts its declaration validated. */
export interface RouteInput<Body, Query> {
  c: Context;
  /** The body parsed as JSON and validated; `undefined` when optional and empty. */
  body: Body;
  /**
   * The query validated by the declared schema. It is validated when first read, so a handler
   * decides whether a bad query or an unknown name in the path is reported first.
   */
  readonly query: Query;
  /** A path parameter (Hono has already decoded it). */
  param(name: string): string;
}

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

/** The success response: an enveloped `result`, or another media type (e.g. an event stream). */
export type RouteResponse =
  | { status?: 200 | 201; description: string; result: z.ZodType; paged?: boolean }
  | { status?: 200; description: string; content: Record<string, { schema: z.ZodType }> };

export interface RouteDeclaration<
  Deps,
  B extends z.ZodType | undefined,
  Q extends z.ZodObject | undefined,
  R extends boolean,
> {
  method: HttpMethod;
  /** OpenAPI form, relative to the group's prefix: `/workflows/{name}`. */
  path: `/${string}`;
  operationId: string;
  summary: string;
  description?: string;
  tags?: string[];
  /** Each path parameter with its description; every `{param}` of `path` must be here. */
  params?: Record<string, string>;
  query?: Q;
  /** Query parameters the handler reads itself (not validated), e.g. `token`; also documented. */
  extraQuery?: Record<string, string>;
  /** Header parameters the handler reads itself; documented only. */
  headers?: Record<string, string>;
  /** A JSON body (read by the `jsonBody` middleware the route lists). Optional bodies may be empty. */
  body?: { schema: B; required?: R; description?: string };
  /** Middleware that runs before the handler; a route with a body lists `jsonBody(limit)`. */
  middleware?: MiddlewareHandler[];
  response: RouteResponse;
  /** Error statuses this route may answer besides 400, 401 and 500 (which public routes do not list). */
  errors?: number[];
  /**
   * Served without the bearer token (documented with `security: []`). The app mounts such routes
   * before its token check.
   */
  public?: boolean;
  handle(
    input: RouteInput<
      B extends z.ZodType ? (R extends false ? Out<B> | undefined : Out<B>) : undefined,
      Out<Q>
    >,
    deps: Deps,
  ): Response | Promise<Response>;
}

/** One declared route; build it with `defineRoute` so the handler's input is typed from its schemas. */
export interface ApiRoute<Deps> {
  readonly method: HttpMethod;
  readonly path: `/${string}`;
  /** The OpenAPI operation, as the document generator takes it. */
  readonly spec: RouteConfig;
  /** The Hono handlers: middleware, then request validation and the handler. */
  handlers(deps: Deps): MiddlewareHandler[];
}

/** A set of routes mounted under one prefix of the API. */
export interface RouteGroup<Deps> {
  /** The OpenAPI tag of the group's operations. */
  tag: string;
  description: string;
  routes: ApiRoute<Deps>[];
}

/**
 * Declares a route. The handler's `body` and `query` are typed from the schemas; a bad body or query
 * is answered `400 body` naming the field, before (body) or when (query) the handler reads it.
 *
 * ```ts
 * const getObject = defineRoute<ObjectApiDeps, undefined, typeof objectQuery>({
 *   method: "get",
 *   path: "/objects/{namespace}/{id}",
 *   operationId: "getObject",
 *   summary: "One Durable Object",
 *   params: { namespace: "namespace name", id: "object id" },
 *   query: objectQuery,
 *   response: { description: "the object", result: ObjectSummarySchema },
 *   errors: [404],
 *   handle: async ({ c, param, query }, { objects }) =>
 *     c.json(envelope(await objects.describe(param("namespace"), param("id"), query))),
 * });
 * ```
 */
export function defineRoute<
  Deps,
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  R extends boolean = true,
>(d: RouteDeclaration<Deps, B, Q, R>): ApiRoute<Deps> {
  for (const name of d.path.match(/\{(\w+)\}/g) ?? [])
    if (!d.params?.[name.slice(1, -1)])
      throw new Error(`Route ${d.method.toUpperCase()} ${d.path}: path parameter ${name} is not declared`);
  const bodyRequired = d.body?.required ?? true;
  return {
    method: d.method,
    path: d.path,
    spec: specOf(d as RouteDeclaration<Deps, z.ZodType | undefined, z.ZodObject | undefined, boolean>),
    handlers(deps) {
      const handler: MiddlewareHandler = async (c) => {
        let body: unknown;
        if (d.body) {
          body = readBody(c);
          if (body !== undefined || bodyRequired) body = parse(d.body.schema as z.ZodType, body, "body");
        }
        const schema = d.query;
        let query: { value: unknown } | undefined;
        const input = {
          c,
          body,
          get query() {
            if (!schema) return undefined;
            if (!query) {
              const raw = c.req.query();
              for (const k of Object.keys(d.extraQuery ?? {})) delete raw[k];
              query = { value: parse(schema, raw, "query") };
            }
            return query.value;
          },
          param: (name: string) => c.req.param(name),
        };
        return d.handle(input as never, deps);
      };
      return [...(d.middleware ?? []), handler];
    },
  };
}

/** Serves `routes` on `app` (paths relative to where `app` is mounted). */
export function mountRoutes<Deps>(app: Hono, routes: ApiRoute<Deps>[], deps: Deps): void {
  for (const r of routes) {
    const [first, ...rest] = r.handlers(deps);
    app.on(r.method.toUpperCase(), honoPath(r.path), first!, ...rest);
  }
}

/** `/workflows/{name}` → `/workflows/:name` */
export function honoPath(path: string): string {
  return path.replace(/\{(\w+)\}/g, ":$1");
}

/** The body `jsonBody` read, as JSON; an empty body is `undefined`. */
export function readBody(c: Context): unknown {
  const text = bodyText(c);
  if (text === undefined) throw new Error("readBody: the route has no jsonBody middleware");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WorkflowError("body", `Malformed JSON in request body: ${(e as Error).message}`);
  }
}

/** Validates `value`; a failure is one `body` error naming each offending field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where: "body" | "query"): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(where, parsed.error);
  return parsed.data;
}

// ---- the OpenAPI document ------------------------------------------------------------------

const errorDescription = (status: number) =>
  `error: ${[...Object.entries(ERROR_STATUS), ...Object.entries(SANDBOX_ERROR_STATUS)]
    .filter(([, s]) => s === status)
    .map(([c]) => c)
    .join(", ")}`;

function specOf<Deps>(
  d: RouteDeclaration<Deps, z.ZodType | undefined, z.ZodObject | undefined, boolean>,
): RouteConfig {
  const r = d.response;
  const responses: RouteConfig["responses"] = {
    [String(r.status ?? 200)]:
      "result" in r
        ? {
            description: r.description,
            content: { "application/json": { schema: envelopeSchema(r.result, r.paged) } },
          }
        : { description: r.description, content: r.content },
  };
  // Every route may refuse a cross-site browser request (403); routes with a body refuse non-JSON (415).
  const statuses = [...(d.errors ?? []), ...(d.body ? [415] : []), 403, ...(d.public ? [] : [400, 401, 500])];
  for (const s of [...new Set(statuses)].sort())
    responses[String(s)] = {
      description: errorDescription(s),
      content: { "application/json": { schema: ErrorEnvelope } },
    };
  const stringParams = (descriptions: Record<string, string> | undefined, required: boolean) =>
    descriptions
      ? z.object(
          Object.fromEntries(
            Object.entries(descriptions).map(([k, description]) => [
              k,
              (required ? z.string() : z.string().optional()).describe(description),
            ]),
          ),
        )
      : undefined;
  const extraQuery = stringParams(d.extraQuery, false);
  const query = d.query && extraQuery ? d.query.extend(extraQuery.shape) : (d.query ?? extraQuery);
  const request: NonNullable<RouteConfig["request"]> = {};
  const params = stringParams(d.params, true);
  if (params) request.params = params;
  if (query) request.query = query;
  const headers = stringParams(d.headers, false);
  if (headers) request.headers = headers;
  if (d.body)
    request.body = {
      required: d.body.required ?? true,
      ...(d.body.description ? { description: d.body.description } : {}),
      content: { "application/json": { schema: d.body.schema ?? z.unknown() } },
    };
  return {
    method: d.method,
    path: d.path,
    operationId: d.operationId,
    summary: d.summary,
    ...(d.description ? { description: d.description } : {}),
    ...(d.tags ? { tags: d.tags } : {}),
    ...(d.public ? { security: [] } : {}),
    request,
    responses,
  };
}

// Named components need the generator's `.openapi()` on zod schemas. Zod gives a schema its methods
// when it is built, so `component` registers a copy built after this.
extendZodWithOpenApi(z);
const registry = new OpenAPIRegistry();

/**
 * Registers a shape as a named component of the document, which then refers to it by name. Use the
 * returned schema in route declarations.
 */
export function component<S extends z.ZodType>(name: string, schema: S): S {
  return registry.register(name, schema.clone() as S);
}

const ErrorEnvelope = component("Error", errorEnvelopeSchema);

/** The OpenAPI 3.1 document of `groups`, served under `serverUrl`. */
export function openApiDocumentOf(
  groups: RouteGroup<never>[],
  info: { title: string; version: string; description: string },
  serverUrl: string,
): Record<string, unknown> {
  const r = new OpenAPIRegistry([registry]);
  r.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "CAIRN_TOKEN",
  });
  for (const g of groups)
    for (const route of g.routes) r.registerPath({ ...route.spec, tags: route.spec.tags ?? [g.tag] });
  const doc = new OpenApiGeneratorV31(r.definitions).generateDocument({
    openapi: "3.1.0",
    info,
    servers: [{ url: serverUrl }],
    security: [{ bearer: [] }],
    tags: groups.map((g) => ({ name: g.tag, description: g.description })),
  });
  // The generator always adds these; empty, they only add noise.
  if (Object.keys(doc.webhooks ?? {}).length === 0) delete doc.webhooks;
  if (doc.components && Object.keys(doc.components.parameters ?? {}).length === 0)
    delete doc.components.parameters;
  return doc as unknown as Record<string, unknown>;
}
