import type { Workflow } from "cairnjs";
import { createTestCairn, introspectWorkflowInstance } from "cairnjs/testing";
import { describe, expect, test } from "vitest";
import { type OrderParams, OrderWorkflow } from "../src/workflow.ts";

// A real Cairn with an in-memory store and a fake clock: sleeps and retry delays take no time.
const setup = (flakyPayments = 1) =>
  createTestCairn<{ ORDERS: Workflow<OrderParams> }>({
    workflows: [{ binding: "ORDERS", name: "orders", class: OrderWorkflow }],
    env: { FLAKY_PAYMENTS: flakyPayments },
  });

describe("OrderWorkflow", () => {
  test("retries the charge, sleeps, waits for approval and ships", async () => {
    await using cairn = await setup(2);
    await using order = await introspectWorkflowInstance(cairn.env.ORDERS, "order-1");
    await order.modify(async (m) => {
      await m.disableSleeps();
      await m.mockEvent({ type: "approval", payload: { by: "ana" } });
    });

    await cairn.env.ORDERS.create({ id: "order-1", params: { orderId: "1", amount: 42 } });

    // Failed twice, then charged on the third attempt.
    expect(await order.waitForStepResult({ name: "charge card" })).toEqual({
      chargeId: "ch_1",
      amount: 42,
      attempt: 3,
    });
    await order.waitForStatus("complete");
    expect(await order.getOutput()).toEqual({ orderId: "1", chargeId: "ch_1", approvedBy: "ana" });
  });

  test("waits for the approval event until it is sent", async () => {
    await using cairn = await setup();
    const instance = await cairn.env.ORDERS.create({ id: "order-2", params: { orderId: "2", amount: 5 } });

    await cairn.advanceTime("1 minute");
    expect((await instance.status()).status).toBe("waiting");

    await instance.sendEvent({ type: "approval", payload: { by: "bo" } });
    await cairn.runUntilIdle();
    expect(await instance.status()).toMatchObject({ status: "complete", output: { approvedBy: "bo" } });
  });

  test("errors when the payment provider keeps failing", async () => {
    await using cairn = await setup(10);
    await using order = await introspectWorkflowInstance(cairn.env.ORDERS, "order-3");
    await cairn.env.ORDERS.create({ id: "order-3", params: { orderId: "3", amount: 1 } });
    await order.waitForStatus("errored");
    expect(await order.getError()).toEqual({ name: "Error", message: "payment provider unavailable" });
  });
});
