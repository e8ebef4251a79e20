import { API_PREFIX } from "@cairn/api";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";
import { defineRoute } from "./routes.ts";

let h: Harness;
afterEach(async () => {
  await h?.close();
});

describe("OpenAPI document", () => {
  it("lists every route with its parameters, bodies and responses", async () => {
    h = await harness();
    const res = await h.app.request(`${API_PREFIX}/openapi.json`);
    const doc = (await res.json()) as any;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.servers).toEqual([{ url: "/api/v1" }]);
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        "GET /openapi.json",
        "GET /health",
        "GET /metrics",
        "GET /project",
        "GET /workflows",
        "GET /workflows/{name}",
        "GET /workflows/{name}/graph",
        "GET /workflows/{name}/metrics",
        "POST /workflows/{name}/instances",
        "GET /workflows/{name}/instances",
        "POST /workflows/{name}/instances/batch",
        "POST /workflows/{name}/instances/batch/delete",
        "GET /workflows/{name}/instances/{id}",
        "GET /workflows/{name}/instances/{id}/step",
        "PATCH /workflows/{name}/instances/{id}/status",
        "POST /email",
        "POST /workflows/{name}/instances/{id}/events/{type}",
        "GET /workflows/{name}/instances/{id}/subscribe",
        "GET /objects",
        "GET /objects/{namespace}",
        "GET /objects/{namespace}/{id}",
        "POST /objects/{namespace}/{id}/sql",
        "GET /agents",
        "GET /sandboxes",
        "GET /sandboxes/{id}",
        "POST /sandboxes/{id}/exec",
        "GET /sandboxes/{id}/processes/{processId}/logs",
        "POST /workers",
        "POST /workers/{wid}/poll",
        "POST /workers/{wid}/tasks/{tid}",
        "DELETE /workers/{wid}",
      ].sort(),
    );
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops as Record<string, any>)) {
        expect(op.operationId).toEqual(expect.any(String));
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const name of path.match(/\{(\w+)\}/g) ?? [])
          expect(op.parameters.map((p: any) => p.name)).toContain(name.slice(1, -1));
      }
    }
    const list = doc.paths["/workflows/{name}/instances"].get;
    const query = Object.fromEntries(
      list.parameters.filter((p: any) => p.in === "query").map((p: any) => [p.name, p]),
    );
    expect(Object.keys(query).sort()).toEqual(
      ["cursor", "date_end", "date_start", "direction", "per_page", "search", "status"].sort(),
    );
    expect(query.direction.schema.enum).toEqual(["asc", "desc"]);
    expect(query.status.schema.enum).toContain("waitingForPause");
    expect(query.per_page.required).toBe(false);
    const create = doc.paths["/workflows/{name}/instances"].post;
    const body = create.requestBody.content["application/json"].schema;
    expect(Object.keys(body.properties)).toEqual(["instance_id", "params"]);
    expect(body.additionalProperties).toBe(false);
    expect(create.responses["201"]).toBeDefined();
    expect(create.responses["409"]).toBeDefined();
    const status = doc.paths["/workflows/{name}/instances/{id}/status"].patch;
    expect(JSON.stringify(status.requestBody)).toContain("restart");
    expect(doc.components.schemas.InstanceDetail.properties.steps.items).toBeDefined();
    expect(doc.paths["/openapi.json"].get.security).toEqual([]);
    expect(doc.security).toEqual([{ bearer: [] }]);
    // Every $ref resolves.
    for (const ref of JSON.stringify(doc).match(/"\$ref":"#\/components\/schemas\/\w+"/g) ?? []) {
      const name = ref.split("/").pop()!.replace('"', "");
      expect(doc.components.schemas[name], name).toBeDefined();
    }
  });

  it("documents every route the app serves, and nothing it does not", async () => {
    h = await harness({ token: "t0ken", graph: () => ({}) });
    const served = new Set(
      h.app.routes
        .filter((r) => r.method !== "ALL" && r.path.startsWith(`${API_PREFIX}/`))
        .map((r) => `${r.method} ${r.path.slice(API_PREFIX.length).replace(/:(\w+)/g, "{$1}")}`),
    );
    const res = await h.app.request(`${API_PREFIX}/openapi.json`);
    const doc = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    expect(served.size).toBeGreaterThan(10);
    expect([...served].sort()).toEqual([...documented].sort());
  });

  it("refuses a declaration whose path names an undeclared parameter", () => {
    expect(() =>
      defineRoute({
        method: "get",
        path: "/things/{id}",
        operationId: "getThing",
        summary: "A thing",
        response: { description: "the thing", result: {} as never },
        handle: ({ c }) => c.body(null),
      }),
    ).toThrow("Route GET /things/{id}: path parameter {id} is not declared");
  });
});
