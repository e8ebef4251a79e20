import { toJson } from "@cairn/api";
import type { Context, Hono } from "hono";
import { z } from "zod";
import { envelope, HttpError, validationError } from "./errors.ts";
import { truncate } from "./views.ts";

/**
 * What the Objects routes read: `ObjectHost` of `@cairn/objects` (`cairn.objects`) has this shape.
 * Reads never load an object; `querySql` with `write` runs as an event of the object.
 */
export interface ObjectsView {
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

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  offset: z.coerce.number().int().min(0).optional(),
});
const sqlBody = z.object({ query: z.string().min(1), write: z.boolean().optional() }).strict();

/**
 * `GET /objects`, `GET /objects/:namespace`, `GET /objects/:namespace/:id`, `POST
 * /objects/:namespace/:id/sql` (read-only unless `"write": true`). Values are shown as JSON
 * (`Date` → ISO, `Map` → `{ "$map" }`, bytes → `{ "$bytes" }`), cut at 4 KiB each.
 */
export function registerObjectRoutes(api: Hono, objects: ObjectsView): void {
  const namespaceOf = (c: Context) => {
    const ns = c.req.param("namespace")!;
    const found = objects.listNamespaces().find((n) => n.binding === ns || n.className === ns);
    if (!found) throw new HttpError("not_found", `No Durable Object namespace ${ns}`, 404);
    return found;
  };
  api.get("/objects", (c) => c.json(envelope(objects.listNamespaces())));
  api.get("/objects/:namespace", (c) => {
    const ns = namespaceOf(c);
    const q = listQuery.safeParse(c.req.query());
    if (!q.success) throw validationError("query", q.error);
    return c.json(envelope({ namespace: ns, objects: objects.listObjects(ns.className, q.data) }));
  });
  api.get("/objects/:namespace/:id", (c) => {
    const ns = namespaceOf(c);
    const detail = objects.describeObject(ns.className, c.req.param("id")) as
      | (Record<string, unknown> & { kv: { key: string; value: unknown }[]; tables: { rows: unknown[][] }[] })
      | undefined;
    if (!detail) throw new HttpError("not_found", `No object ${c.req.param("id")} in ${ns.binding}`, 404);
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
  });
  api.post("/objects/:namespace/:id/sql", async (c) => {
    const ns = namespaceOf(c);
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new HttpError("body", "Expected a JSON body { query, write? }", 400);
    }
    const parsed = sqlBody.safeParse(body);
    if (!parsed.success) throw validationError("body", parsed.error);
    try {
      const result = await objects.querySql(ns.className, c.req.param("id"), parsed.data.query, {
        write: parsed.data.write === true,
      });
      return c.json(envelope({ ...result, rows: result.rows.map((r) => r.map((v) => toJson(v))) }));
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError("body", `${(e as Error).message}`, 400);
    }
  });
}
