import { API_PREFIX } from "@cairn/api";
import { FakeClock, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import { createCairn } from "@cairn/engine";
import { expect, test } from "vitest";
import { createApi } from "../src/index.ts";

let release: (() => void) | undefined;

/** Books a seat (with a rollback that waits to be released), then waits for approval. */
class Booking extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("seat", async () => ({ seatId: 9 }), {
      rollback: () => new Promise<void>((r) => (release = r)),
    });
    await step.waitForEvent("approval", { type: "approved", timeout: "1 hour" });
  }
}

test("REST: PATCH terminate with rollback shows rollingBack, then the rollback's outcome and steps", async () => {
  const cairn = await createCairn({
    store: ":memory:",
    clock: new FakeClock(),
    workflows: [{ binding: "B", name: "booking", class: Booking }],
  });
  const app = createApi({ runtime: cairn.runtime, pollMs: 0 });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(`${API_PREFIX}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  await call("POST", "/workflows/booking/instances", { instance_id: "a" });
  await cairn.runtime.whenIdle();

  const bad = await call("PATCH", "/workflows/booking/instances/a/status", {
    status: "terminate",
    rollback: "yes",
  });
  expect(bad.status).toBe(400);
  expect((await call("GET", "/workflows/booking/instances/a")).body.result.status).toBe("waiting");

  const patched = await call("PATCH", "/workflows/booking/instances/a/status", {
    status: "terminate",
    rollback: true,
  });
  expect(patched.status).toBe(200);
  // The seat's rollback is running (its promise is not settled yet).
  for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setImmediate(r));
  expect(release).toBeDefined();
  const during = (await call("GET", "/workflows/booking/instances/a")).body.result;
  expect(during.status).toBe("rollingBack");
  const listed = (await call("GET", "/workflows/booking/instances")).body.result;
  expect(listed[0].status).toBe("rollingBack");
  release!();
  for (let i = 0; i < 50 && (await cairn.store.instances.get("booking", "a"))?.status !== "terminated"; i++) {
    await new Promise((r) => setImmediate(r));
    await cairn.runtime.whenIdle();
  }
  const after = (await call("GET", "/workflows/booking/instances/a")).body.result;
  expect(after.status).toBe("terminated");
  expect(after.rollback).toEqual({ outcome: "complete" });
  const rb = after.steps.find((s: any) => s.type === "rollback");
  expect(rb).toMatchObject({ type: "rollback", name: "seat", count: 1, success: true });
  expect(rb.attempts).toHaveLength(1);
  const step = await call("GET", "/workflows/booking/instances/a/step?name=seat-1&type=rollback");
  expect(step.body.result.status).toBe("complete");
  await cairn.close();
});
