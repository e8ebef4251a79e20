import { NonRetryableError, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";

export interface OrderParams {
  orderId: string;
  amount: number;
}

export interface Env {
  /** Fails the payment this many times before it goes through (to show retries). */
  FLAKY_PAYMENTS: number;
}

/**
 * Order processing: reserve stock, charge the card (retried on failure), cool off, wait for a person
 * to approve shipping, then ship.
 */
export class ProcessOrder extends WorkflowEntrypoint<Env, OrderParams> {
  async run(event: WorkflowEvent<OrderParams>, step: WorkflowStep) {
    const { orderId, amount } = event.payload;
    if (amount <= 0) throw new NonRetryableError(`Order ${orderId} has no amount to charge`);

    const reservation = await step.do("reserve stock", async () => ({ orderId, reservedAt: new Date() }));

    const payment = await step.do(
      "charge card",
      { retries: { limit: 3, delay: 200, backoff: "exponential" }, timeout: "30 seconds" },
      async (ctx) => {
        if (ctx.attempt <= this.env.FLAKY_PAYMENTS)
          throw new Error(`payment gateway timeout (attempt ${ctx.attempt})`);
        return { chargeId: `ch_${orderId}`, amount, attempt: ctx.attempt };
      },
    );

    await step.sleep("cool off", "2 seconds");

    const approval = await step.waitForEvent<{ by: string }>("wait for approval", {
      type: "approved",
      timeout: "1 hour",
    });

    const shipment = await step.do("ship", async () => ({
      trackingId: `trk_${orderId}`,
      approvedBy: approval.payload.by,
    }));

    return { reservation, payment, shipment };
  }
}
