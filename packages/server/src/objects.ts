import { toJson } from "@cairn/api";
import { z } from "zod";
import { jsonBody } from "./body.ts";
import { envelope, HttpError } from "./errors.ts";
import { namespaceParams, objectParams } from "./params.ts";
import { defineRoute, type RouteDeclaration, type RouteGroup } from "./routes.ts";
import { truncate } from "./views.ts";

/**
 * What the Objects routes read: `ObjectHost` of `@cairn/objects` (`cairn.objects`) has this shape.
 * Reads never load an object; `querySql` with `write` runs as an event of the object.
 */
export interface ObjectsView {
  /**
   * On a store shared by workers, reads what the next views show from the store (see
   * `ObjectHost.refreshViews`); awaited before each read.
   */
  refreshViews?(
    namespace?: string,
    idOrName?: string,
    page?: { limit?: number; offset?: number },
  ): Promise<void>;
  listNamespaces(): { binding: string; className: string; objects: number; loaded: number }[];
  listObjects(
    namespace: string,
    options?: { limit?: number; offset?: number },
  ): {
    id: string;
    name: string | null;
    createdAt: number;
    lastAccess: number;
    alarm: number | null;
    loaded: boolean;
  }[];
  describeObject(namespace: string, idOrName: string, options?: { rows?: number }): unknown | undefined;
  querySql(
    namespace: string,
    idOrName: string,
    query: string,
    options?: { write?: boolean },
  ): Promise<{ columns: string[]; rows: unknown[][]; rowsWritten: number }>;
}

/** What the Objects routes work with. */
export interface ObjectApiDeps {
  objects: ObjectsView;
}

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  offset: z.coerce.number().int().min(0).optional(),
});
const sqlBody = z.object({ query: z.string().min(1), write: z.boolean().optional() }).strict();
const namespaceSchema = z.object({
  binding: z.string(),
  className: z.string(),
  objects: z.number(),
  loaded: z.number(),
});
const objectSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  createdAt: z.number(),
  lastAccess: z.number(),
  alarm: z.number().nullable(),
  loaded: z.boolean(),
});

const route = <
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  R extends boolean = true,
>(
  d: RouteDeclaration<ObjectApiDeps, B, Q, R>,
) => defineRoute(d);

function namespaceOf(objects: ObjectsView, ns: string) {
  const found = objects.listNamespaces().find((n) => n.binding === ns || n.className === ns);
  if (!found) throw new HttpError("not_found", `No Durable Object namespace ${ns}`, 404);
  return found;
}

const NS = "/objects/{namespace}";

/**
 * Durable Objects, read-only views and SQL (docs/objects.md). Values are shown as JSON (`Date` →
 * ISO, `Map` → `{ "$map" }`, bytes → `{ "$bytes" }`), cut at 4 KiB each.
 */
export const objectRoutes: RouteGroup<ObjectApiDeps> = {
  tag: "objects",
  description: "Durable Objects: namespaces, objects, one object's stored state, SQL",
  routes: [
    route({
      method: "get",
      path: "/objects",
      operationId: "listObjectNamespaces",
      summary: "Durable Object namespaces with their object counts",
      response: { description: "namespaces", result: z.array(namespaceSchema) },
      handle: async ({ c }, { objects }) => {
        await objects.refreshViews?.();
        return c.json(envelope(objects.listNamespaces()));
      },
    }),
    route({
      method: "get",
      path: NS,
      operationId: "listObjects",
      summary: "The objects of a namespace, most recently used first",
      params: namespaceParams,
      query: listQuery,
      response: {
        description: "the namespace and its objects",
        result: z.object({ namespace: namespaceSchema, objects: z.array(objectSchema) }),
      },
      errors: [404],
      async handle({ c, param, query }, { objects }) {
        await objects.refreshViews?.();
        const ns = namespaceOf(objects, param("namespace"));
        await objects.refreshViews?.(ns.className, undefined, query);
        return c.json(envelope({ namespace: ns, objects: objects.listObjects(ns.className, query) }));
      },
    }),
    route({
      method: "get",
      path: `${NS}/{id}`,
      operationId: "getObject",
      summary: "One object's KV entries, SQL tables (first rows) and alarm, read-only",
      params: objectParams,
      response: { description: "the object", result: z.unknown() },
      errors: [404],
      async handle({ c, param }, { objects }) {
        const ns = namespaceOf(objects, param("namespace"));
        await objects.refreshViews?.(ns.className, param("id"));
        const detail = objects.describeObject(ns.className, param("id")) as
          | (Record<string, unknown> & {
              kv: { key: string; value: unknown }[];
              tables: { rows: unknown[][] }[];
            })
          | undefined;
        if (!detail) throw new HttpError("not_found", `No object ${param("id")} in ${ns.binding}`, 404);
        return c.json(
          envelope({
            ...detail,
            kv: detail.kv.map((e) => ({ key: e.key, value: truncate(toJson(e.value)) })),
            tables: detail.tables.map((t) => ({
              ...t,
              rows: t.rows.map((r) => r.map((v) => truncate(toJson(v)))),
            })),
          }),
        );
      },
    }),
    route({
      method: "post",
      path: `${NS}/{id}/sql`,
      operationId: "queryObjectSql",
      summary: "Runs SQL on one object's database (read-only unless write is true)",
      params: objectParams,
      body: { schema: sqlBody, description: "{ query, write? }" },
      middleware: [jsonBody(1024 * 1024)],
      response: {
        description: "columns, rows and rows written",
        result: z.object({
          columns: z.array(z.string()),
          rows: z.array(z.array(z.unknown())),
          rowsWritten: z.number(),
        }),
      },
      errors: [404],
      async handle({ c, param, body }, { objects }) {
        const ns = namespaceOf(objects, param("namespace"));
        try {
          if (body.write !== true) await objects.refreshViews?.(ns.className, param("id"));
          const result = await objects.querySql(ns.className, param("id"), body.query, {
            write: body.write === true,
          });
          return c.json(envelope({ ...result, rows: result.rows.map((r) => r.map((v) => toJson(v))) }));
        } catch (e) {
          if (e instanceof HttpError) throw e;
          throw new HttpError("body", (e as Error).message, 400);
        }
      },
    }),
  ],
};
