import { describe, expect, it } from "vitest";
import { WorkflowError } from "./errors.ts";
import {
  decideSchedule,
  parseCron,
  parseSchedules,
  scheduleInstanceId,
  scheduleOfInstanceId,
  validateAddressableId,
} from "./schedule.ts";

const at = (iso: string) => Date.parse(iso);

describe("parseCron", () => {
  it("finds the slots of a 5-field expression in UTC", () => {
    const c = parseCron("0  *  * * *", "WF");
    expect(c.cron).toBe("0 * * * *");
    expect(c.latestSlot(at("2026-01-01T03:00:00Z"))).toBe(at("2026-01-01T03:00:00Z"));
    expect(c.latestSlot(at("2026-01-01T03:59:59.999Z"))).toBe(at("2026-01-01T03:00:00Z"));
    expect(c.nextSlot(at("2026-01-01T03:00:00Z"))).toBe(at("2026-01-01T04:00:00Z"));
  });

  it("understands names, L and #", () => {
    expect(parseCron("0 0 L * *", "WF").nextSlot(at("2026-01-01T00:00:00Z"))).toBe(
      at("2026-01-31T00:00:00Z"),
    );
    expect(parseCron("0 9 * * MON#2", "WF").nextSlot(at("2026-01-01T00:00:00Z"))).toBe(
      at("2026-01-12T09:00:00Z"),
    );
    expect(parseCron("*/15 * * jan,feb *", "WF").nextSlot(at("2026-01-01T00:07:00Z"))).toBe(
      at("2026-01-01T00:15:00Z"),
    );
  });

  it.each([
    ["61 * * * *", "MY_WF: 61 * * * *: Invalid value for minute: 61"],
    [
      "* * * * * *",
      "MY_WF: * * * * * *: mode '5-part' requires exactly 5 parts, but pattern '* * * * * *' has 6 parts.",
    ],
    ["every hour", "MY_WF: every hour: "],
    ["* * 30 2 *", "MY_WF: * * 30 2 *: it never fires"],
    ["@hourly", 'MY_WF: @hourly: use only letters, digits, spaces and , * / # - _ (no "?" or "@")'],
    ["", "MY_WF: : the expression is empty"],
  ])("refuses %j with a clear error", (expr, text) => {
    try {
      parseCron(expr, "MY_WF");
      expect.unreachable();
    } catch (e) {
      expect(WorkflowError.is(e, "workflow.invalid_schedule")).toBe(true);
      expect((e as WorkflowError).message.startsWith(`(workflow.invalid_schedule) ${text}`)).toBe(true);
    }
  });

  it("takes a string or a list, and refuses a repeated expression or another type", () => {
    expect(parseSchedules("0 * * * *", "WF").map((c) => c.cron)).toEqual(["0 * * * *"]);
    expect(parseSchedules(["0 * * * *", "30 1 * * *"], "WF")).toHaveLength(2);
    expect(parseSchedules(undefined, "WF")).toEqual([]);
    expect(() => parseSchedules(["0 * * * *", "0  * * * *"], "WF")).toThrow(
      "(workflow.invalid_schedule) WF: 0 * * * *: the expression is listed twice",
    );
    expect(() => parseSchedules(5, "WF")).toThrow(
      "WF: schedules must be a cron expression or a list of them",
    );
    expect(() => parseSchedules([5], "WF")).toThrow("WF: 5: a cron expression must be a string, got number");
  });
});

describe("schedule instance ids", () => {
  it("round-trips the cron and the slot", () => {
    const id = scheduleInstanceId("*/15 * * * *", 1767226500000);
    expect(id).toBe("*/15 * * * *#1767226500000");
    expect(scheduleOfInstanceId(id)).toEqual({ cron: "*/15 * * * *", scheduledTime: 1767226500000 });
    expect(scheduleOfInstanceId("0 9 * * MON#2#1767226500000")).toEqual({
      cron: "0 9 * * MON#2",
      scheduledTime: 1767226500000,
    });
    expect(scheduleOfInstanceId("order-42")).toBeUndefined();
    expect(scheduleOfInstanceId("a#1")).toBeUndefined();
  });

  it("are addressable, while other ids keep SPEC §3's rule", () => {
    expect(validateAddressableId("0 * * * *#1767225600000")).toBe("0 * * * *#1767225600000");
    expect(validateAddressableId("order-42")).toBe("order-42");
    expect(() => validateAddressableId("no spaces")).toThrow("(instance.invalid_id)");
  });
});

describe("decideSchedule", () => {
  const hourly = parseCron("0 * * * *", "WF");

  it("fires nothing the first time it sees a schedule, and settles what came before", () => {
    const now = at("2026-01-01T03:20:00Z");
    expect(decideSchedule(hourly, undefined, now)).toEqual({
      settle: now,
      nextAt: at("2026-01-01T04:00:00Z"),
    });
  });

  it("fires the slot that came due, once", () => {
    const last = at("2026-01-01T03:20:00Z");
    const now = at("2026-01-01T04:00:00Z");
    const d = decideSchedule(hourly, last, now);
    expect(d).toEqual({ fire: now, settle: now, nextAt: at("2026-01-01T05:00:00Z") });
    expect(decideSchedule(hourly, d.settle, now)).toEqual({ nextAt: at("2026-01-01T05:00:00Z") });
  });

  it("after 3 hours down fires only the latest missed slot", () => {
    const last = at("2026-01-01T04:00:00Z");
    const now = at("2026-01-01T07:30:00Z");
    expect(decideSchedule(hourly, last, now)).toEqual({
      fire: at("2026-01-01T07:00:00Z"),
      settle: at("2026-01-01T07:00:00Z"),
      nextAt: at("2026-01-01T08:00:00Z"),
    });
  });
});
