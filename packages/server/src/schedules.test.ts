import { API_PREFIX } from "@cairn/api";
import { FakeClock, WorkflowEntrypoint, type WorkflowEvent } from "@cairn/core";
import { createCairn } from "@cairn/engine";
import { expect, it } from "vitest";
import { createApi } from "./index.ts";

class Report extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>) {
    return event.schedule;
  }
}

it("GET /workflows/:name shows each schedule's next time; a schedule's instance is addressable", async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 0, 10));
  await using cairn = await createCairn({
    store: ":memory:",
    clock,
    workflows: [
      { binding: "REPORT", name: "report", class: Report, schedules: ["0 * * * *", "30 6 * * mon"] },
      { binding: "PLAIN", name: "plain", class: Report },
    ],
  });
  const app = createApi({ runtime: cairn.runtime, pollMs: 0 });
  const get = async (path: string) => (await app.request(`${API_PREFIX}${path}`)).json() as Promise<any>;
  expect((await get("/workflows/report")).result.schedules).toEqual([
    { cron: "0 * * * *", next_at: "2026-01-01T01:00:00.000Z" },
    { cron: "30 6 * * mon", next_at: "2026-01-05T06:30:00.000Z" },
  ]);
  expect((await get("/workflows/plain")).result.schedules).toEqual([]);
  const list = await get("/workflows");
  expect(list.result.map((w: any) => [w.name, w.schedules.length])).toEqual([
    ["report", 2],
    ["plain", 0],
  ]);

  await clock.advance(50 * 60_000, () => cairn.runtime.whenIdle());
  await cairn.runtime.whenIdle();
  const id = `0 * * * *#${Date.UTC(2026, 0, 1, 1)}`;
  const detail = await get(`/workflows/report/instances/${encodeURIComponent(id)}`);
  expect(detail.result).toMatchObject({
    status: "complete",
    output: { cron: "0 * * * *", scheduledTime: Date.UTC(2026, 0, 1, 1) },
  });
  expect((await get("/workflows/report")).result.schedules[0]).toEqual({
    cron: "0 * * * *",
    next_at: "2026-01-01T02:00:00.000Z",
  });
});

it("a schedule's instance counts in cairn_instances_created_total like a created one", async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 0, 59));
  await using cairn = await createCairn({
    store: ":memory:",
    clock,
    workflows: [{ binding: "REPORT", name: "report", class: Report, schedules: ["0 * * * *"] }],
  });
  const app = createApi({ runtime: cairn.runtime, pollMs: 0 });
  const created = async () => {
    const text = await (await app.request(`${API_PREFIX}/metrics`)).text();
    const line = text
      .split("\n")
      .find((l) => l.startsWith('cairn_instances_created_total{workflow="report"}'));
    return line === undefined ? 0 : Number(line.split(" ").pop());
  };
  expect(await created()).toBe(0);
  await clock.advance(60_000, () => cairn.runtime.whenIdle());
  await cairn.runtime.whenIdle();
  expect((await cairn.runtime.status("report", `0 * * * *#${Date.UTC(2026, 0, 1, 1)}`)).status).toBe(
    "complete",
  );
  expect(await created()).toBe(1);
});
