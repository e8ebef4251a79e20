import { API_PREFIX } from "@cairn/api";
import { FakeClock, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import { afterEach, describe, expect, it } from "vitest";
import { createApi } from "./index.ts";

const SECRET = "top-secret-value-7f3a";

/** Instances whose first attempt failed already. */
const failed = new Set<string>();

/** Two steps, the first failing once (one retry after 1 s), the second with a sensitive output. */
class Scripted extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("charge", { retries: { limit: 1, delay: "1 second", backoff: "constant" } }, async () => {
      if (!failed.has(event.instanceId)) {
        failed.add(event.instanceId);
        throw new Error("card declined");
      }
      return "charged";
    });
    return await step.do("token", { sensitive: "output" }, async () => SECRET);
  }
}

/** One line of the text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text format 0.0.4, failing on any line that is not a comment or a sample. */
function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      expect(line).toMatch(/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `a sample line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    const body = m![2] ?? "";
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let l: RegExpExecArray | null;
    let consumed = 0;
    while ((l = re.exec(body)) !== null) {
      labels[l[1]!] = l[2]!;
      consumed = re.lastIndex;
    }
    expect(consumed, `labels of ${line}`).toBe(body.length);
    const value = Number(m![3]);
    // prom-client writes NaN as "Nan", which Prometheus reads too.
    expect(Number.isNaN(value) && !/^nan$/i.test(m![3]!), `value of ${line}`).toBe(false);
    samples.push({ name: m![1]!, labels, value });
  }
  return samples;
}

const value = (samples: Sample[], name: string, labels: Record<string, string>) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

let cairn: Cairn | undefined;
afterEach(async () => {
  await cairn?.close();
  cairn = undefined;
});

async function setup(apiOptions: Parameters<typeof createApi>[0] extends infer O ? Partial<O> : never = {}) {
  failed.clear();
  const clock = new FakeClock();
  cairn = await createCairn({
    store: ":memory:",
    clock,
    workflows: [{ binding: "SCRIPTED", name: "scripted", class: Scripted }],
  });
  const runtime = cairn.runtime;
  const app = createApi({ runtime, pollMs: 0, ...apiOptions });
  const get = (path: string, headers: Record<string, string> = {}) =>
    Promise.resolve(app.request(`${API_PREFIX}${path}`, { headers }));
  const idle = () => runtime.whenIdle();
  const script = async (id: string) => {
    await runtime.create("scripted", { id });
    await idle();
    await clock.advance(1000, idle);
    expect((await runtime.status("scripted", id)).status).toBe("complete");
  };
  return { runtime, app, clock, get, script, idle };
}

describe("Prometheus metrics (SPEC §12.3)", () => {
  it("counts a scripted run exactly: 2 steps, 1 retry", async () => {
    const { get, script, runtime } = await setup();
    await script("order-1");
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    const samples = parsePrometheus(text);
    const w = { workflow: "scripted" };
    const one = (name: string, labels: Record<string, string>) => {
      const found = value(samples, name, labels);
      expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
      return found[0]!.value;
    };
    expect(one("cairn_instances_created_total", w)).toBe(1);
    expect(one("cairn_instances_finished_total", { ...w, status: "complete" })).toBe(1);
    expect(value(samples, "cairn_instances_finished_total", { ...w, status: "errored" })).toEqual([]);
    expect(one("cairn_steps_total", { ...w, kind: "do", outcome: "ok" })).toBe(2);
    expect(value(samples, "cairn_steps_total", { ...w, outcome: "error" })).toEqual([]);
    expect(one("cairn_step_attempts_total", { ...w, outcome: "ok" })).toBe(2);
    expect(one("cairn_step_attempts_total", { ...w, outcome: "error" })).toBe(1);
    expect(one("cairn_step_attempt_duration_seconds_count", w)).toBe(3);
    // Created, retried 1 s later on the fake clock, complete: exactly one second, in one run.
    expect(one("cairn_instance_duration_seconds_count", { ...w, status: "complete" })).toBe(1);
    expect(one("cairn_instance_duration_seconds_sum", { ...w, status: "complete" })).toBe(1);
    expect(one("cairn_instance_wall_seconds_total", w)).toBe(1);
    // CPU time of so short a run may round to nothing; the counter is there.
    expect(one("cairn_instance_cpu_seconds_total", w)).toBeGreaterThanOrEqual(0);
    expect(one("cairn_instances", { ...w, status: "complete" })).toBe(1);
    expect(one("cairn_running_instances", w)).toBe(0);
    expect(one("cairn_queued_instances", w)).toBe(0);
    expect(one("cairn_loaded_instances", w)).toBe(0);
    expect(one("cairn_leases_lost_total", {})).toBe(0);
    expect(one("cairn_store_errors_total", {})).toBe(0);
    expect(one("cairn_worker_info", { worker_id: runtime.workerId, store: "sqlite" })).toBe(1);
    // prom-client's default process metrics are there too.
    expect(value(samples, "process_cpu_user_seconds_total", {})).toHaveLength(1);
    // No label holds an instance id or a step name, and the sensitive output is nowhere.
    for (const s of samples)
      for (const v of Object.values(s.labels)) expect(["order-1", "charge", "token"]).not.toContain(v);
    expect(text).not.toContain("order-1");
    expect(text).not.toContain(SECRET);
  });

  it("shows the timers due in the store and the store's transaction durations", async () => {
    const { get, script, runtime, clock } = await setup();
    const scrape = async () => parsePrometheus(await (await get("/metrics")).text());
    const single = (samples: Sample[], name: string, labels: Record<string, string> = {}) => {
      const found = value(samples, name, labels);
      expect(found, name).toHaveLength(1);
      return found[0]!.value;
    };
    let samples = await scrape();
    expect(single(samples, "cairn_timers_due")).toBe(0);
    expect(single(samples, "cairn_store_transaction_duration_seconds_count", { store: "sqlite" })).toBe(0);
    await script("order-1");
    samples = await scrape();
    const transactions = single(samples, "cairn_store_transaction_duration_seconds_count", {
      store: "sqlite",
    });
    expect(transactions).toBeGreaterThanOrEqual(3);
    expect(
      single(samples, "cairn_store_transaction_duration_seconds_bucket", { store: "sqlite", le: "+Inf" }),
    ).toBe(transactions);
    expect(
      single(samples, "cairn_store_transaction_duration_seconds_sum", { store: "sqlite" }),
    ).toBeGreaterThan(0);
    // Rows written behind the runtime's back (no wake-up is armed for them, and the fake clock does
    // not poll): two sleeps whose time has come, one not yet, one event wait without a timer.
    const now = clock.now();
    const row = (id: string, readyAt: number | null) => ({
      workflow: "scripted",
      id,
      params: new Uint8Array([0]),
      createdAt: now,
      status: "waiting" as const,
      readyAt,
    });
    await runtime.store.instances.insertMany([
      row("due-1", now - 1000),
      row("due-2", now),
      row("later", now + 60_000),
      row("event", null),
    ]);
    samples = await scrape();
    expect(single(samples, "cairn_timers_due")).toBe(2);
    // The insert was a transaction too.
    expect(
      single(samples, "cairn_store_transaction_duration_seconds_count", { store: "sqlite" }),
    ).toBeGreaterThan(transactions);
  });

  it("needs the token unless metrics are public", async () => {
    const closed = await setup({ token: "s3cret-token" });
    expect((await closed.get("/metrics")).status).toBe(401);
    expect((await closed.get("/metrics", { authorization: "Bearer s3cret-token" })).status).toBe(200);
    await cairn!.close();
    const open = await setup({ token: "s3cret-token", metrics: { public: true } });
    expect((await open.get("/metrics")).status).toBe(200);
    expect((await open.get("/workflows/scripted/metrics")).status).toBe(401);
  });
});

describe("GET /workflows/:name/metrics (SPEC §12.2)", () => {
  it("groups a range's entries by event type, instance and step, with CPU and wall time; outputs redacted", async () => {
    const { get, script, clock } = await setup();
    await script("order-1");
    await script("order-2");
    const res = await get("/workflows/scripted/metrics?group_by=eventType");
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.result.date_end).toBe(new Date(clock.now()).toISOString());
    expect(body.result.truncated).toBe(false);
    expect(body.result.cpu_limit_ms).toBe(30_000);
    const byType = Object.fromEntries(body.result.groups.map((g: any) => [g.dimensions.eventType, g]));
    expect(byType.WORKFLOW_QUEUED.count).toBe(2);
    expect(byType.WORKFLOW_SUCCESS.count).toBe(2);
    expect(byType.ATTEMPT_SUCCESS.count).toBe(4);
    expect(byType.ATTEMPT_FAILURE.count).toBe(2);
    expect(byType.STEP_SUCCESS.count).toBe(4);
    // The fake clock stands still during attempts: wall time 0, CPU time the thread's own.
    expect(byType.ATTEMPT_SUCCESS.sum.wallTime).toBe(0);
    expect(byType.ATTEMPT_SUCCESS.sum.cpuTime).toBeGreaterThanOrEqual(0);
    expect(byType.ATTEMPT_SUCCESS.quantiles).toEqual({ wallTimeP50: 0, wallTimeP90: 0, wallTimeP99: 0 });
    expect(byType.WORKFLOW_QUEUED.quantiles.wallTimeP50).toBeNull();

    const top = (await (
      await get("/workflows/scripted/metrics?group_by=instanceId&order_by=cpuTime&limit=1")
    ).json()) as any;
    expect(top.result.groups).toHaveLength(1);
    expect(["order-1", "order-2"]).toContain(top.result.groups[0].dimensions.instanceId);

    const steps = (await (
      await get("/workflows/scripted/metrics?group_by=stepName,eventType")
    ).json()) as any;
    const charge = steps.result.groups.find(
      (g: any) => g.dimensions.stepName === "charge" && g.dimensions.eventType === "ATTEMPT_FAILURE",
    );
    expect(charge.count).toBe(2);
    expect(JSON.stringify([body, top, steps])).not.toContain(SECRET);

    // Outside the range: nothing.
    const before = await get(
      `/workflows/scripted/metrics?date_start=${clock.now() - 20_000}&date_end=${clock.now() - 10_000}`,
    );
    expect(((await before.json()) as any).result.groups).toEqual([]);
  });

  it("refuses bad dates and group keys with the texts of §12, and an unknown workflow", async () => {
    const { get } = await setup();
    const bad: [string, string][] = [
      ["date_start=soon", '(body) query date_start: expected an ISO date or epoch milliseconds, got "soon"'],
      [
        "date_end=2026-02-30T99:00",
        '(body) query date_end: expected an ISO date or epoch milliseconds, got "2026-02-30T99:00"',
      ],
      ["date_start=2000&date_end=1000", "(body) query date_start: must not be after date_end"],
      [
        "date_start=0&date_end=2678400001",
        "(body) query date_start: the range from date_start to date_end is longer than 31 days",
      ],
      [
        "group_by=eventType,colour",
        '(body) query group_by: expected eventType, stepName, instanceId, datetimeHour, datetimeMinute (comma-separated), got "colour"',
      ],
    ];
    for (const [query, message] of bad) {
      const res = await get(`/workflows/scripted/metrics?${query}`);
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as any;
      expect(body.errors).toEqual([{ code: "body", message }]);
    }
    const limit = await get("/workflows/scripted/metrics?limit=0");
    expect(limit.status).toBe(400);
    const missing = await get("/workflows/nope/metrics");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).errors[0].code).toBe("workflow.not_found");
  });
});
