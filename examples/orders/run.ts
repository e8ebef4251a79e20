/**
 * Runs the order workflow end to end on an embedded SQLite store, printing each step as it happens.
 *
 *   npm run example
 *
 * State lives in examples/orders/.cairn/; run it again and a new order is processed (unfinished ones
 * from an interrupted run are resumed first).
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCairn, type Workflow } from "cairnjs";
import { type Env, type OrderParams, ProcessOrder } from "./workflow.ts";

const here = dirname(fileURLToPath(import.meta.url));
const store = process.env.CAIRN_STORE ?? join(here, ".cairn", "cairn.db");

const cairn = await createCairn<{ ORDERS: Workflow<OrderParams> } & Env>({
  store,
  workflows: [{ binding: "ORDERS", name: "orders", class: ProcessOrder }],
  env: { FLAKY_PAYMENTS: 2 },
  hotWaitThreshold: "5 seconds",
});

const orderId = `order-${Date.now()}`;
const started = Date.now();
const seen = new Set<number>();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(2)}s`.padStart(7);

/** Prints history entries of the order as they are stored. */
async function printProgress(): Promise<void> {
  for (const e of await cairn.store.history.list("orders", orderId)) {
    if (seen.has(e.eventId)) continue;
    seen.add(e.eventId);
    const step = e.step ? ` ${e.step.name}` : "";
    const detail = e.data?.error
      ? ` (${(e.data.error as { message: string }).message}${e.data.retryDelayMs !== undefined ? `; retry in ${e.data.retryDelayMs}ms` : ""})`
      : "";
    console.log(`${elapsed()}  ${e.type}${step}${detail}`);
  }
}

const done = new Promise<void>((resolve) => {
  cairn.runtime.onChange(async (workflow, id) => {
    if (workflow !== "orders" || id !== orderId) return;
    await printProgress();
    const { status } = await cairn.runtime.status("orders", orderId);
    if (
      status === "waiting" &&
      (await cairn.store.steps.get("orders", orderId, "waitForEvent", "wait for approval", 1))?.status ===
        "waiting" &&
      !approvalSent
    ) {
      approvalSent = true;
      console.log(`${elapsed()}  → a person approves the order (sendEvent "approved")`);
      await instance.sendEvent({ type: "approved", payload: { by: "ana@example.com" } });
    }
    if (status === "complete" || status === "errored" || status === "terminated") resolve();
  });
});
let approvalSent = false;

console.log(`Cairn example: processing ${orderId} (store: ${store})\n`);
const instance = await cairn.env.ORDERS.create({ id: orderId, params: { orderId, amount: 42 } });
await done;
const result = await instance.status();
console.log(`\n${orderId} is ${result.status}:`);
console.log(result.output ?? result.error);
await cairn.close();
