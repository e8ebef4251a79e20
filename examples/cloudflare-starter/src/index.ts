import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import { NonRetryableError } from "cloudflare:workflows";

export interface Env {
  MY_WORKFLOW: Workflow<Params>;
  GREETING: string;
  APPROVAL_THRESHOLD: number;
}

/** What a caller passes to `MY_WORKFLOW.create({ params })`. */
export type Params = { customer: string; amount: number };

export class MyWorkflow extends WorkflowEntrypoint<Env, Params> {
  async run(event: WorkflowEvent<Params>, step: WorkflowStep) {
    const order = await step.do("validate order", async () => {
      const { customer, amount } = event.payload;
      // A bad order can never succeed: do not retry it.
      if (typeof amount !== "number" || amount <= 0) {
        throw new NonRetryableError(`invalid amount: ${amount}`);
      }
      return { customer, amount };
    });

    // An unreliable dependency: the first attempt fails, the retry succeeds.
    const charge = await step.do(
      "charge card",
      { retries: { limit: 3, delay: "1 second", backoff: "exponential" }, timeout: "30 seconds" },
      async (ctx) => {
        if (ctx.attempt < 2) throw new Error("payment provider unavailable");
        return { chargeId: `ch_${event.instanceId.slice(0, 8)}`, attempts: ctx.attempt };
      },
    );

    await step.sleep("cool off", "2 seconds");

    let approvedBy: string | null = null;
    if (order.amount > Number(this.env.APPROVAL_THRESHOLD)) {
      const approval = await step.waitForEvent<{ by: string }>("wait for approval", {
        type: "approval",
        timeout: "1 hour",
      });
      approvedBy = approval.payload.by;
    }

    const message = await step.do("send receipt", async () => {
      return `${this.env.GREETING}, ${order.customer}: receipt for ${order.amount}`;
    });

    return { message, chargeId: charge.chargeId, approvedBy };
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const id = url.searchParams.get("instanceId");

    if (request.method === "GET" && url.pathname === "/" && id) {
      const instance = await env.MY_WORKFLOW.get(id);
      return Response.json({ id, status: await instance.status() });
    }

    if (request.method === "POST" && url.pathname === "/") {
      const params = request.headers.get("content-type")?.includes("json")
        ? ((await request.json()) as Params)
        : { customer: "Ada", amount: 42 };
      const instance = await env.MY_WORKFLOW.create({ params });
      return Response.json({ id: instance.id, status: await instance.status() });
    }

    if (request.method === "POST" && url.pathname === "/approve" && id) {
      const instance = await env.MY_WORKFLOW.get(id);
      const by = url.searchParams.get("by") ?? "admin";
      await instance.sendEvent({ type: "approval", payload: { by } });
      return Response.json({ id, status: await instance.status() });
    }

    return new Response("GET /?instanceId=…, POST /, POST /approve?instanceId=…\n", { status: 404 });
  },
} satisfies ExportedHandler<Env>;
