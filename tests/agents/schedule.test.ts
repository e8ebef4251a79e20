import { afterEach, describe, expect, it, vi } from "vitest";
import { calls, ScheduleAgent } from "./agents.ts";
import { closeAll, serve, until } from "./helpers.ts";

// Mirrors upstream's schedule.test.ts and alarms.test.ts on Cairn's Durable Object host (its alarm).

const objects = [{ binding: "ScheduleAgent", class: ScheduleAgent }];

afterEach(async () => {
  await closeAll();
  calls.length = 0;
  vi.restoreAllMocks();
});

async function agent(name = "s", dir?: string) {
  const s = await serve(objects, dir ? { dir } : {});
  return { s, a: s.env.ScheduleAgent.getByName(name) as any };
}

describe("schedules", () => {
  it("a delayed schedule runs its callback with payload and schedule, then its row is gone", async () => {
    const { a } = await agent();
    const sched = await a.at(1, "ping", { hello: "world" });
    expect(Object.keys(sched).sort()).toEqual([
      "callback",
      "delayInSeconds",
      "id",
      "payload",
      "time",
      "type",
    ]);
    expect(sched).toMatchObject({
      callback: "ping",
      payload: { hello: "world" },
      type: "delayed",
      delayInSeconds: 1,
    });
    expect(await a.get(sched.id)).toEqual(sched);
    await until(() => calls.find((c) => c.callback === "ping"), "the callback");
    const call = calls.find((c) => c.callback === "ping")!;
    expect(call.payload).toEqual({ hello: "world" });
    expect(call.schedule).toMatchObject({ id: sched.id, type: "delayed" });
    expect(call.name).toBe("s");
    await until(async () => (await a.get(sched.id)) === null, "the row removed");
  });

  it("lists by type and time range, gets by id, cancels (false when absent); no internal columns leak", async () => {
    const { a } = await agent();
    const inAnHour = Date.now() + 3_600_000;
    const d = await a.at({ date: inAnHour }, "ping", 1);
    const c = await a.at("0 0 1 1 *", "ping", 2);
    const i = await a.every(600, "ping", 3);
    expect(d.type).toBe("scheduled");
    expect(c).toMatchObject({ type: "cron", cron: "0 0 1 1 *" });
    expect(i).toMatchObject({ type: "interval", intervalSeconds: 600 });
    expect((await a.list()).map((x: any) => x.id).sort()).toEqual([c.id, d.id, i.id].sort());
    expect((await a.list({ type: "cron" })).map((x: any) => x.id)).toEqual([c.id]);
    expect((await a.list({ end: inAnHour + 1000 })).map((x: any) => x.id).sort()).toEqual(
      [d.id, i.id].sort(),
    );
    for (const x of await a.list()) expect(Object.keys(x)).not.toContain("running");
    expect(await a.cancel(d.id)).toBe(true);
    expect(await a.cancel(d.id)).toBe(false);
    expect(await a.get(d.id)).toBeNull();
  });

  it("cron schedules are idempotent on (callback, cron, payload); other schedules only when asked", async () => {
    const { a } = await agent();
    const one = await a.at("*/5 * * * *", "ping", { k: 1 });
    expect((await a.at("*/5 * * * *", "ping", { k: 1 })).id).toBe(one.id);
    expect((await a.at("*/5 * * * *", "ping", { k: 2 })).id).not.toBe(one.id);
    const d1 = await a.at(3600, "ping", "x");
    expect((await a.at(3600, "ping", "x")).id).not.toBe(d1.id);
    const d2 = await a.at(3600, "slow", "y", { idempotent: true });
    expect((await a.at(3600, "slow", "y", { idempotent: true })).id).toBe(d2.id);
    expect((await a.list()).length).toBe(5);
  });

  it("refuses a bad cron, a bad interval, a missing callback and bad retry options; nothing is stored", async () => {
    const { a } = await agent();
    await expect(a.at("every tuesday", "ping")).rejects.toThrow(
      "Invalid cron expression: expected 5 or 6 elements.",
    );
    await expect(a.at("99 * * * *", "ping")).rejects.toThrow(
      "Failed to parse 99: 99 is outside of constraint range of 0 - 59.",
    );
    await expect(a.every(0, "ping")).rejects.toThrow("intervalSeconds must be a positive number");
    await expect(a.every(2_592_001, "ping")).rejects.toThrow(
      "intervalSeconds cannot exceed 2592000 seconds (30 days)",
    );
    await expect(a.every(10, "missing")).rejects.toThrow("this.missing is not a function");
    await expect(a.at(10, "ping", null, { retry: { maxAttempts: 0 } })).rejects.toThrow(
      "retry.maxAttempts must be >= 1",
    );
    await expect(a.at({ date: Number.NaN }, "ping")).rejects.toThrow("Invalid schedule type");
    expect(await a.list()).toEqual([]);
  });

  it("scheduleEvery is idempotent, runs from now + interval, and survives a restart (re-armed, fires)", async () => {
    const { s, a } = await agent("every");
    const first = await a.every(1, "ping", "tick");
    expect((await a.every(1, "ping", "tick")).id).toBe(first.id);
    expect((await a.every(2, "ping", "tick")).id).not.toBe(first.id);
    await a.cancel((await a.list()).find((x: any) => x.intervalSeconds === 2).id);
    const dir = s.dir;
    await s.host.close();
    // Nothing ran before the restart's host started.
    calls.length = 0;
    const { a: again } = await agent("every", dir);
    await until(() => calls.filter((c) => c.callback === "ping").length >= 2, "two ticks after the restart");
    expect(calls.every((c) => c.callback !== "ping" || c.payload === "tick")).toBe(true);
    expect((await again.every(1, "ping", "tick")).id).toBe(first.id);
    expect(await again.alarmAt()).not.toBeNull();
  });

  it("skips an interval tick while the previous run is still going, and resets one that is hung", async () => {
    const warn = vi.spyOn(console, "warn");
    const { a } = await agent("overlap");
    const sched = await a.every(3600, "slow", "p");
    await a.forceDue(sched.id, 5);
    await until(
      () => warn.mock.calls.some((c) => String(c[0]).startsWith("Skipping interval schedule")),
      "the skip",
    );
    expect(warn.mock.calls.find((c) => String(c[0]).startsWith("Skipping"))![0]).toBe(
      `Skipping interval schedule ${sched.id}: previous execution still running`,
    );
    expect(calls.filter((c) => c.callback === "slow")).toEqual([]);
    // The skipped tick is dropped, and the alarm is not spun: it is set for when the run counts as hung.
    const alarm = await a.alarmAt();
    expect(alarm).toBeGreaterThan(Date.now() + 10_000);
    await a.forceDue(sched.id, 31);
    await until(() => calls.find((c) => c.callback === "slow"), "the forced run");
    expect(
      warn.mock.calls.some((c) =>
        String(c[0]).startsWith(`Forcing reset of hung interval schedule ${sched.id}`),
      ),
    ).toBe(true);
    await until(async () => (await a.row(sched.id))?.running === 0, "running reset");
    expect((await a.row(sched.id)).time).toBeGreaterThan(Date.now() / 1000 + 3000);
  });

  it("retries a failing callback; after the last failure onError runs and the one-shot row is deleted", async () => {
    const { a } = await agent("retry");
    await a.at(0, "flaky", { failTimes: 2 }, { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 } });
    await until(() => calls.filter((c) => c.callback === "flaky").length === 3, "three attempts");
    expect(calls.some((c) => c.callback === "onError")).toBe(false);
    const { a: b } = await agent("retry-fail");
    const sched = await b.at(
      0,
      "flaky",
      { failTimes: 99 },
      { retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 } },
    );
    await until(() => calls.find((c) => c.callback === "onError"), "onError");
    expect(calls.find((c) => c.callback === "onError")!.payload).toBe("Error: flaky #2");
    await until(async () => (await b.get(sched.id)) === null, "the row removed");
  });

  it("keepAlive() arms the alarm as a heartbeat until released (releasing twice is harmless)", async () => {
    const { a } = await agent("alive");
    const before = Date.now();
    const alarm = await a.hold();
    expect(alarm).toBeGreaterThanOrEqual(before + 29_000);
    expect(await a.letGo()).toBeNull();
    await a.at(3600, "ping");
    const held = await a.hold();
    expect(await a.letGo()).toBeGreaterThan(held);
  });
});
