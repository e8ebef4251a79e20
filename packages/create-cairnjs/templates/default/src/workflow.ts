import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";

export interface OrderParams {
  orderId: string;
  amount: number;
}

export interface Env {
  /** Set to a number of failures to see the charge step retried (default 1: fails once). */
  FLAKY_PAYMENTS?: number;
}

/**
 * An order: charge the card (retried on failure), wait a little before shipping (a durable sleep),
 * then wait for someone to approve the shipment (an event sent to the instance).
 */
export class OrderWorkflow extends WorkflowEntrypoint<Env, OrderParams> {
  async run(event: WorkflowEvent<OrderParams>, step: WorkflowStep) {
    const { orderId, amount } = event.payload;

    const charge = await step.do(
      "charge card",
      { retries: { limit: 3, delay: "1 second", backoff: "exponential" }, timeout: "30 seconds" },
      async (ctx) => {
        // A payment provider that fails now and then: each failure is retried after a backoff.
        if (ctx.attempt <= (this.env.FLAKY_PAYMENTS ?? 1)) throw new Error("payment provider unavailable");
        return { chargeId: `ch_${orderId}`, amount, attempt: ctx.attempt };
      },
    );

    // Durable: survives restarts; the instance is parked while it sleeps.
    await step.sleep("cool-off before shipping", "10 seconds");

    const approval = await step.waitForEvent<{ by: string }>("wait for approval", {
      type: "approval",
      timeout: "1 day",
    });

    return step.do("ship", async () => ({
      orderId,
      chargeId: charge.chargeId,
      approvedBy: approval.payload.by,
    }));
  }
}
