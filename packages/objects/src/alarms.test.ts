import { FakeClock } from "@cairn/core";
import { afterEach, describe, expect, it } from "vitest";
import { cleanDirs, tempDir } from "../test/helpers.ts";
import { DurableObject } from "./durable-object.ts";
import { createObjectHost, type ObjectHost } from "./host.ts";
import { ALARM_MAX_RETRIES, alarmRetryDelayMs } from "./limits.ts";

const runs: { name: string | undefined; at: number; retryCount: number; isRetry: boolean }[] = [];
let failUntil = 0;
let clock: FakeClock;

class Timer extends DurableObject {
  async schedule(at: number): Promise<void> {
    this.ctx.storage.kv.put("name", this.ctx.id.name ?? null);
    await this.ctx.storage.setAlarm(at);
  }
  getAlarm(): Promise<number | null> {
    return this.ctx.storage.getAlarm();
  }
  async cancel(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
  }
  fired(): number {
    return this.ctx.storage.kv.get<number>("fired") ?? 0;
  }
  async alarm(info: { retryCount: number; isRetry: boolean }): Promise<void> {
    runs.push({ name: this.ctx.storage.kv.get<string>("name"), at: clock.now(), ...info });
    if (runs.length <= failUntil) throw new Error("alarm failed");
    this.ctx.storage.kv.put("fired", (this.ctx.storage.kv.get<number>("fired") ?? 0) + 1);
    const next = this.ctx.storage.kv.get<number>("reschedule");
    if (next) {
      this.ctx.storage.kv.delete("reschedule");
      await this.ctx.storage.setAlarm(next);
    }
  }
  async rescheduleTo(at: number): Promise<void> {
    this.ctx.storage.kv.put("reschedule", at);
  }
}

let host: ObjectHost | undefined;
afterEach(async () => {
  await host?.close();
  host = undefined;
  runs.length = 0;
  failUntil = 0;
  cleanDirs();
});

function open(dir = tempDir()) {
  host = createObjectHost({ dir, clock, objects: [{ binding: "TIMER", class: Timer }], log: () => {} });
  return { dir, ns: host.namespaces.TIMER as any };
}

describe("alarms", () => {
  it("runs alarm() at the time set, once, and clears it", async () => {
    clock = new FakeClock();
    const { ns } = open();
    const t = ns.getByName("a");
    const at = clock.now() + 60_000;
    await t.schedule(at);
    expect(await t.getAlarm()).toBe(at);
    await clock.advance(59_999);
    expect(runs).toEqual([]);
    await clock.advance(1);
    expect(runs).toEqual([{ name: "a", at, retryCount: 0, isRetry: false }]);
    expect(await t.getAlarm()).toBeNull();
    expect(await t.fired()).toBe(1);
    await clock.advance(600_000);
    expect(runs.length).toBe(1);
  });

  it("one alarm per object: setAlarm replaces, deleteAlarm cancels", async () => {
    clock = new FakeClock();
    const { ns } = open();
    const t = ns.getByName("a");
    await t.schedule(clock.now() + 1000);
    await t.schedule(clock.now() + 5000);
    await clock.advance(2000);
    expect(runs).toEqual([]);
    await clock.advance(3000);
    expect(runs.length).toBe(1);
    await t.schedule(clock.now() + 1000);
    await t.cancel();
    await clock.advance(5000);
    expect(runs.length).toBe(1);
  });

  it("an alarm set in the past runs at once; alarm() may set the next one", async () => {
    clock = new FakeClock();
    const { ns } = open();
    const t = ns.getByName("a");
    await t.rescheduleTo(clock.now() + 10_000);
    await t.schedule(clock.now() - 5);
    await clock.advance(0);
    expect(runs.length).toBe(1);
    expect(await t.getAlarm()).toBe(clock.now() + 10_000);
    await clock.advance(10_000);
    expect(runs.length).toBe(2);
    expect(await t.getAlarm()).toBeNull();
  });

  it("a throwing alarm is retried with backoff 2, 4, 8 s …, with retryCount and isRetry", async () => {
    clock = new FakeClock();
    failUntil = 3;
    const { ns } = open();
    const t = ns.getByName("a");
    const start = clock.now();
    await t.schedule(start + 1000);
    await clock.advance(1000 + 2000 + 4000 + 8000);
    expect(runs.map((r) => [r.at - start, r.retryCount, r.isRetry])).toEqual([
      [1000, 0, false],
      [3000, 1, true],
      [7000, 2, true],
      [15000, 3, true],
    ]);
    expect(await t.fired()).toBe(1);
    expect(await t.getAlarm()).toBeNull();
  });

  it("gives up after 6 retries", async () => {
    clock = new FakeClock();
    failUntil = 100;
    const { ns } = open();
    const t = ns.getByName("a");
    await t.schedule(clock.now() + 1);
    let total = 1;
    for (let i = 1; i <= ALARM_MAX_RETRIES; i++) total += alarmRetryDelayMs(i);
    await clock.advance(total + 1000 * 1000);
    expect(runs.length).toBe(ALARM_MAX_RETRIES + 1);
    expect(runs.at(-1)!.retryCount).toBe(6);
    expect(await t.getAlarm()).toBeNull();
  });

  it("fires after the host restarts, for objects that were never loaded again", async () => {
    clock = new FakeClock();
    const { ns, dir } = open();
    await ns.getByName("later").schedule(clock.now() + 3_600_000);
    await ns.getByName("sooner").schedule(clock.now() + 60_000);
    await host!.close();
    clock.set(clock.now() + 120_000);
    open(dir);
    await clock.advance(0);
    expect(runs.map((r) => r.name)).toEqual(["sooner"]);
    await clock.advance(3_600_000);
    expect(runs.map((r) => r.name)).toEqual(["sooner", "later"]);
  });

  it("an alarm of a class this host does not bind waits without spinning the timer", async () => {
    clock = new FakeClock();
    const { ns, dir } = open();
    await ns.getByName("a").schedule(clock.now() + 1000);
    await host!.close();
    class Other extends Timer {}
    host = createObjectHost({ dir, clock, objects: [{ binding: "OTHER", class: Other }], log: () => {} });
    await clock.advance(10_000);
    expect(runs).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
    await host.close();
    open(dir);
    await clock.advance(0);
    expect(runs.length).toBe(1);
  });

  it("keeps one timer for many alarms (Cairn timers, not one setTimeout each)", async () => {
    clock = new FakeClock();
    const { ns } = open();
    for (let i = 0; i < 20; i++) await ns.getByName(`o${i}`).schedule(clock.now() + 1000 + i);
    expect(clock.pendingTimers).toBeLessThanOrEqual(21);
    await clock.advance(2000);
    expect(runs.length).toBe(20);
  });
});
