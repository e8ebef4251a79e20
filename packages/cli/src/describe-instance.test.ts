import type { InstanceDetail } from "@cairn/api";
import { describe, expect, it } from "vitest";
import { describeInstance } from "./describe-instance.ts";
import { displayWidth } from "./format.ts";

const T0 = Date.parse("2026-03-01T10:00:00.000Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();

/** A waiting instance: one step that succeeded after a retry, one retrying, a sleep, an event wait. */
const fixture: InstanceDetail = {
  id: "order-42",
  workflow: "checkout",
  status: "waiting",
  created_on: at(0),
  modified_on: at(65_000),
  started_on: at(100),
  ended_on: null,
  params: { orderId: "42" },
  output: null,
  error: null,
  queued: at(0),
  start: at(100),
  end: null,
  success: null,
  step_count: 4,
  steps: [
    {
      type: "step",
      name: "load order",
      label: "load order-1",
      count: 1,
      start: at(120),
      end: at(10_400),
      success: true,
      output: { id: "42", items: ["book", "lamp"], note: "x".repeat(300) },
      error: null,
      config: { retries: { limit: 5, delay: "10 seconds", backoff: "exponential" }, timeout: "10 minutes" },
      attempts: [
        {
          start: at(120),
          end: at(250),
          success: false,
          error: {
            name: "Error",
            message: "connect ECONNREFUSED 10.0.0.7:5432 while loading the order from the primary database",
          },
        },
        { start: at(10_250), end: at(10_400), success: true, error: null },
      ],
    },
    {
      type: "sleep",
      name: "cool off",
      label: "cool off-1",
      count: 1,
      start: at(10_500),
      end: at(20_500),
      until: at(20_500),
      finished: true,
    },
    {
      type: "step",
      name: "charge card",
      label: "charge card-1",
      count: 1,
      start: at(20_600),
      end: null,
      success: null,
      output: null,
      error: { name: "Error", message: "card declined" },
      config: { retries: { limit: 3, delay: "1 minute", backoff: "constant" }, timeout: "10 minutes" },
      attempts: [
        {
          start: at(20_600),
          end: at(21_000),
          success: false,
          error: { name: "Error", message: "card declined" },
        },
      ],
      retry_at: at(81_000),
    },
    {
      type: "waitForEvent",
      name: "approval",
      label: "approval-1",
      count: 1,
      start: at(21_100),
      end: null,
      finished: false,
      event_type: "approved",
      timeout_at: at(86_421_100),
      output: null,
      error: null,
    },
  ],
};

const NOW = T0 + 65_000;

describe("describeInstance", () => {
  it("prints the header, every step and an attempts table within 80 columns", () => {
    const text = describeInstance(fixture, { now: NOW, utc: true, width: 80, truncateOutputLimit: 120 });
    for (const line of text.split("\n")) expect(displayWidth(line), line).toBeLessThanOrEqual(80);
    expect(text).toBe(
      [
        "Describing instance:",
        "Workflow Name:        checkout",
        "Instance Id:          order-42",
        "Status:               ⏰ Waiting",
        "Queued:               2026-03-01 10:00:00",
        "Start:                2026-03-01 10:00:00",
        "End:                  -",
        "Duration:             1m 4s",
        "Success:              ▶ Running",
        "Last Successful Step: cool off-1",
        "Step Count:           4",
        "",
        "Steps:",
        "",
        "  Name:         load order-1",
        "  Type:         🎯 Step",
        "  Start:        2026-03-01 10:00:00",
        "  End:          2026-03-01 10:00:10",
        "  Duration:     10.28s",
        "  Success:      ✅ Yes",
        "  Retries:      1",
        '  Output:       {"id":"42","items":["book","lamp"],"note":"xxxxxxxxxxxxxxxxxxxxx',
        "                xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "                [...output truncated]",
        "",
        "    #  Start         End           Duration  State       Error",
        "    -  ------------  ------------  --------  ----------  -----------------------",
        "    1  10:00:00.120  10:00:00.250  130ms     ❌ Error    Error: connect",
        "                                                         ECONNREFUSED",
        "                                                         10.0.0.7:5432 while",
        "                                                         loading the order from",
        "                                                         the primary database",
        "    2  10:00:10.250  10:00:10.400  150ms     ✅ Success",
        "",
        "  Name:         cool off-1",
        "  Type:         💤 Sleeping",
        "  Start:        2026-03-01 10:00:10",
        "  End:          2026-03-01 10:00:20",
        "  Duration:     10s",
        "  Success:      ✅ Yes",
        "",
        "  Name:         charge card-1",
        "  Type:         🎯 Step",
        "  Start:        2026-03-01 10:00:20",
        "  End:          -",
        "  Duration:     44.4s",
        "  Success:      ▶ Running",
        "  Retries:      0",
        "  Retries At:   2026-03-01 10:01:21 (in 16s from now)",
        "",
        "    #  Start         End           Duration  State     Error",
        "    -  ------------  ------------  --------  --------  --------------------",
        "    1  10:00:20.600  10:00:21.000  400ms     ❌ Error  Error: card declined",
        "",
        "  Name:         approval-1",
        "  Type:         👀 Waiting for event",
        "  Event Type:   approved",
        "  Start:        2026-03-01 10:00:21",
        "  End:          -",
        "  Duration:     43.9s",
        "  Success:      ▶ Running",
        "  Times Out At: 2026-03-02 10:00:21 (in 23h 59m from now)",
      ].join("\n"),
    );
  });

  it("says latest, shows errors and outputs of finished instances, and hides step outputs on request", () => {
    const errored: InstanceDetail = {
      ...fixture,
      status: "errored",
      end: at(90_000),
      ended_on: at(90_000),
      success: false,
      error: { name: "Error", message: "card declined" },
      steps: fixture.steps.slice(0, 1),
    };
    const text = describeInstance(errored, { now: NOW, utc: true, latest: true, stepOutput: false });
    expect(text.split("\n").slice(0, 1)).toEqual(["Describing latest instance:"]);
    expect(text).toContain("Duration:             1m 29s");
    expect(text).toContain("Success:              ❌ No");
    expect(text).toContain("Error:                Error: card declined");
    expect(text).toContain("Last Successful Step: load order-1");
    expect(text).not.toContain("Output:");

    const complete: InstanceDetail = {
      ...errored,
      status: "complete",
      success: true,
      error: null,
      output: { ok: 1 },
    };
    expect(describeInstance(complete, { now: NOW, utc: true })).toContain('Output:               {"ok":1}');
  });

  it("falls back to last attempt end + raw delay for Retries At, as wrangler does", () => {
    const step = {
      ...(fixture.steps[2] as Extract<InstanceDetail["steps"][number], { type: "step" }>),
      retry_at: undefined,
    };
    const text = describeInstance({ ...fixture, steps: [step] }, { now: NOW, utc: true });
    expect(text).toContain("Retries At:   2026-03-01 10:01:21 (in 16s from now)");
  });

  it("wraps for narrower terminals", () => {
    const text = describeInstance(fixture, { now: NOW, utc: true, width: 60 });
    for (const line of text.split("\n")) expect(displayWidth(line), line).toBeLessThanOrEqual(60);
  });

  it("shows what the instance cost and each attempt's CPU time, marking one over limits.cpu_ms", () => {
    const load = fixture.steps[0] as Extract<InstanceDetail["steps"][number], { type: "step" }>;
    const measured: InstanceDetail = {
      ...fixture,
      metrics: { cpu_time_ms: 1234.4, wall_time_ms: 65_000, steps: 4, attempts: 3, storage_bytes: 2560 },
      steps: [
        {
          ...load,
          attempts: [
            { ...load.attempts[0]!, cpu_time_ms: 3.456, wall_time_ms: 130 },
            { ...load.attempts[1]!, cpu_time_ms: 45_000, wall_time_ms: 150, cpu_limit_exceeded: true },
          ],
        },
      ],
    };
    const text = describeInstance(measured, { now: NOW, utc: true, width: 100 });
    expect(text).toContain("CPU Time:             1.23s");
    expect(text).toContain("Wall Time:            1m 5s");
    expect(text).toContain("Steps / Attempts:     4 / 3");
    expect(text).toContain("Storage:              2.5 KiB");
    const table = text.split("\n").filter((l) => /^ {4}(#|\d) /.test(l));
    expect(table[0]).toMatch(/# +Start +End +Duration +CPU +State +Error/);
    expect(table[1]).toMatch(/ 3\.46ms +❌ Error/);
    expect(table[2]).toMatch(/ 45s ! +✅ Success/);
    // Without measurements (an older server), no CPU column and no cost lines.
    const plain = describeInstance(fixture, { now: NOW, utc: true, width: 100 });
    expect(plain).not.toContain("CPU");
  });
});
