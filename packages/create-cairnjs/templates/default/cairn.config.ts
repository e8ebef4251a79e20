import type { Workflow } from "cairnjs";
import { type OrderParams, OrderWorkflow } from "./src/workflow.ts";

interface Env {
  ORDERS: Workflow<OrderParams>;
}

/**
 * The project: its workflows (each a binding in `env`) and a fetch handler served by `cairn dev` and
 * `cairn start`. The dashboard is at /_cairn/, the API at /api/v1.
 *
 *   curl -X POST localhost:8787/orders -d '{"orderId":"42","amount":10}'
 *   curl localhost:8787/orders/<id>
 *   curl -X POST localhost:8787/orders/<id>/approve -d '{"by":"ana"}'
 */
export default {
  workflows: [{ binding: "ORDERS", name: "orders", class: OrderWorkflow }],

  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const [, resource, id, action] = url.pathname.split("/");
    if (resource !== "orders") return Response.json({ routes: ["POST /orders", "GET /orders/:id"] });

    if (request.method === "POST" && !id) {
      const params = (await request.json().catch(() => ({}))) as Partial<OrderParams>;
      const instance = await env.ORDERS.create({
        params: { orderId: String(params.orderId ?? Date.now()), amount: Number(params.amount ?? 10) },
      });
      return Response.json({ id: instance.id }, { status: 201 });
    }
    if (!id) return Response.json({ error: "POST /orders or GET /orders/:id" }, { status: 404 });

    const instance = await env.ORDERS.get(id);
    if (request.method === "POST" && action === "approve") {
      const body = (await request.json().catch(() => ({}))) as { by?: string };
      await instance.sendEvent({ type: "approval", payload: { by: body.by ?? "someone" } });
      return Response.json({ id, sent: "approval" });
    }
    return Response.json({ id, ...(await instance.status()) });
  },
};
