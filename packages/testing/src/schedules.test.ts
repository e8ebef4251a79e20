import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeClock, WorkflowEntrypoint, WorkflowError, type WorkflowEvent } from "@cairn/core";
import { createCairn } from "@cairn/engine";
import type { ScheduledController } from "@cairn/runtime";
import { afterEach, describe, expect, it } from "vitest";
import { introspectWorkflow } from "./introspect.ts";
import { createTestCairn } from "./test-cairn.ts";

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);

/** Every run's event, by instance id. */
const seen = new Map<string, WorkflowEvent<unknown>>();

class Report extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>) {
    seen.set(event.instanceId, event);
    return event.schedule?.scheduledTime;
  }
}

const dirs: string[] = [];
afterEach(() => {
  seen.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("schedules (SPEC §9.4)", () => {
  it("an hourly schedule fires once per slot under the fake clock, with event.schedule", async () => {
    await using cairn = await createTestCairn({
      workflows: [{ binding: "REPORT", name: "report", class: Report, schedules: "0 * * * *" }],
    });
    await using introspector = await introspectWorkflow(cairn.env.REPORT);
    expect(cairn.runtime.schedules("report")).toEqual([{ cron: "0 * * * *", nextAt: T0 + HOUR }]);
    await cairn.advanceTime("30 minutes");
    expect(await introspector.get()).toEqual([]);
    await cairn.advanceTime("3 hours");
    const instances = await introspector.get();
    const slots = [T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR];
    expect(instances.map((i) => i.id)).toEqual(slots.map((t) => `0 * * * *#${t}`));
    for (const [i, instance] of instances.entries()) {
      await instance.waitForStatus("complete");
      expect(await instance.getOutput()).toBe(slots[i]);
      const event = seen.get(instance.id)!;
      expect(event.schedule).toEqual({ cron: "0 * * * *", scheduledTime: slots[i] });
      expect(event.payload).toBeUndefined();
    }
    // The binding addresses the schedule's ids.
    const handle = await cairn.env.REPORT.get(`0 * * * *#${slots[0]}`);
    expect((await handle.status()).status).toBe("complete");
    expect(cairn.runtime.schedules("report")).toEqual([{ cron: "0 * * * *", nextAt: T0 + 4 * HOUR }]);
  });

  it("after a 3-hour outage, one catch-up instance fires for the latest missed slot", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-schedules-"));
    dirs.push(dir);
    const store = join(dir, "cairn.db");
    const clock = new FakeClock(T0);
    const workflows = [{ binding: "REPORT", name: "report", class: Report, schedules: ["0 * * * *"] }];
    {
      await using cairn = await createTestCairn({ store, clock, workflows });
      await cairn.advanceTime("1 hour");
      await cairn.runUntilIdle();
    }
    clock.set(T0 + 4 * HOUR + 30 * 60_000);
    await using cairn = await createTestCairn({ store, clock, workflows });
    await cairn.runUntilIdle();
    const page = await cairn.store.instances.list({ workflow: "report", limit: 10 });
    expect(page.items.map((r) => [r.id, r.status])).toEqual([
      [`0 * * * *#${T0 + HOUR}`, "complete"],
      [`0 * * * *#${T0 + 4 * HOUR}`, "complete"],
    ]);
    expect(seen.get(`0 * * * *#${T0 + 4 * HOUR}`)?.schedule?.scheduledTime).toBe(T0 + 4 * HOUR);
  });

  it("triggers.crons calls scheduled() once per slot with controller.cron", async () => {
    const calls: ScheduledController[] = [];
    await using cairn = await createTestCairn({
      workflows: [{ binding: "REPORT", name: "report", class: Report }],
      triggers: { crons: ["*/30 * * * *"], scheduled: (c) => void calls.push(c) },
    });
    await cairn.advanceTime("1 hour");
    expect(calls.map((c) => [c.cron, c.scheduledTime, c.type])).toEqual([
      ["*/30 * * * *", T0 + HOUR / 2, "scheduled"],
      ["*/30 * * * *", T0 + HOUR, "scheduled"],
    ]);
    expect(typeof calls[0]!.noRetry).toBe("function");
  });

  it("a failing scheduled() handler is logged and not retried", async () => {
    const logged: string[] = [];
    let calls = 0;
    await using cairn = await createTestCairn({
      workflows: [{ binding: "REPORT", name: "report", class: Report }],
      triggers: {
        crons: ["0 * * * *"],
        scheduled: () => {
          calls++;
          throw new Error("mail server down");
        },
      },
      log: (message) => void logged.push(message),
    });
    await cairn.advanceTime("1 hour");
    await cairn.runUntilIdle();
    expect(calls).toBe(1);
    expect(logged).toContain('Cairn: the scheduled() handler failed for cron "0 * * * *" (not retried)');
  });

  it("an invalid expression is refused when the Cairn is made", async () => {
    const make = (schedules: unknown) =>
      createCairn({
        store: ":memory:",
        workflows: [{ binding: "REPORT", name: "report", class: Report, schedules: schedules as string }],
      });
    const error = await make(["0 * * * *", "0 25 * * *"]).catch((e: unknown) => e);
    expect(WorkflowError.is(error, "workflow.invalid_schedule")).toBe(true);
    expect((error as Error).message).toBe(
      "(workflow.invalid_schedule) REPORT: 0 25 * * *: Invalid value for hour: 25",
    );
    await expect(
      createCairn({ store: ":memory:", triggers: { crons: ["nope"], scheduled: () => {} } }),
    ).rejects.toThrow("(workflow.invalid_schedule) triggers.crons: nope: ");
    await expect(createCairn({ store: ":memory:", triggers: { crons: ["0 * * * *"] } })).rejects.toThrow(
      "triggers.crons needs a scheduled() handler",
    );
  });
});
