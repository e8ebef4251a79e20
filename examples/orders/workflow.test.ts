import type { Workflow } from "cairnjs";
import { createTestCairn, introspectWorkflowInstance } from "cairnjs/testing";
import { describe, expect, test } from "vitest";
import { type OrderParams, ProcessOrder } from "./workflow.ts";

const setup = (flakyPayments = 0) =>
  createTestCairn<{ ORDERS: Workflow<OrderParams> }>({
    workflows: [{ binding: "ORDERS", name: "orders", class: ProcessOrder }],
    env: { FLAKY_PAYMENTS: flakyPayments },
  });

describe("the order example", () => {
  test("an approved order is charged and shipped", async () => {
    await using cairn = await setup(2);
    await using inst = await introspectWorkflowInstance(cairn.env.ORDERS, "o1");
    await inst.modify(async (m) => {
      await m.disableSleeps();
      await m.mockEvent({ type: "approved", payload: { by: "ana" } });
    });
    await cairn.env.ORDERS.create({ id: "o1", params: { orderId: "o1", amount: 42 } });
    expect(await inst.waitForStepResult({ name: "charge card" })).toEqual({
      chargeId: "ch_o1",
      amount: 42,
      attempt: 3,
    });
    await inst.waitForStatus("complete");
    const output = (await inst.getOutput()) as { shipment: unknown };
    expect(output.shipment).toEqual({ trackingId: "trk_o1", approvedBy: "ana" });
  });

  test("a payment that keeps failing errors the order after 4 attempts", async () => {
    await using cairn = await setup();
    await using inst = await introspectWorkflowInstance(cairn.env.ORDERS, "o2");
    await inst.modify(async (m) => {
      await m.mockStepError({ name: "charge card" }, new Error("card declined"));
    });
    await cairn.env.ORDERS.create({ id: "o2", params: { orderId: "o2", amount: 10 } });
    await inst.waitForStatus("errored");
    expect(await inst.getError()).toEqual({ name: "Error", message: "card declined" });
  });

  test("an order nobody approves times out after an hour of waiting", async () => {
    await using cairn = await setup();
    await using inst = await introspectWorkflowInstance(cairn.env.ORDERS, "o3");
    await cairn.env.ORDERS.create({ id: "o3", params: { orderId: "o3", amount: 10 } });
    await cairn.advanceTime("2 seconds"); // the cool-off sleep
    expect((await (await cairn.env.ORDERS.get("o3")).status()).status).toBe("waiting");
    await cairn.advanceTime("1 hour");
    await inst.waitForStatus("errored");
    // Cloudflare's name and message for a wait that timed out.
    expect(await inst.getError()).toEqual({ name: "Error", message: "Execution timed out after 3600000ms" });
  });

  test("an order without an amount fails at once without retries", async () => {
    await using cairn = await setup();
    await using inst = await introspectWorkflowInstance(cairn.env.ORDERS, "o4");
    await cairn.env.ORDERS.create({ id: "o4", params: { orderId: "o4", amount: 0 } });
    await inst.waitForStatus("errored");
    expect(await inst.getError()).toEqual({
      name: "NonRetryableError",
      message: "Order o4 has no amount to charge",
    });
  });
});
