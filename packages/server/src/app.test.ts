import { INSTANCE_STATUSES } from "@cairn/core";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";

let h: Harness;
afterEach(async () => {
  await h?.close();
});

describe("workflows", () => {
  it("lists workflows with a count for every status and when one was last triggered", async () => {
    h = await harness();
    const empty = await h.json("GET", "/workflows");
    expect(empty.status).toBe(200);
    expect(empty.body.success).toBe(true);
    expect(empty.body.errors).toEqual([]);
    const names = empty.body.result.map((w: any) => w.name);
    expect(names).toEqual(["echo", "waiter", "tour", "failing"]);
    for (const w of empty.body.result) {
      expect(Object.keys(w.instances).sort()).toEqual([...INSTANCE_STATUSES].sort());
      expect(w.triggered_on).toBeNull();
    }
    await h.cairn.runtime.create("echo", { id: "a" });
    await h.cairn.runtime.create("waiter", { id: "b" });
    await h.idle();
    const { body } = await h.json("GET", "/workflows");
    const echo = body.result.find((w: any) => w.name === "echo");
    expect(echo).toMatchObject({ id: "echo", name: "echo", class_name: "Echo" });
    expect(echo.instances.complete).toBe(1);
    expect(echo.triggered_on).toBe(new Date(h.clock.now()).toISOString());
    const waiter = body.result.find((w: any) => w.name === "waiter");
    expect(waiter.instances.waiting).toBe(1);
    expect(waiter.instances.complete).toBe(0);
  });

  it("shows one workflow, 404 workflow.not_found for an unknown one", async () => {
    h = await harness();
    const one = await h.json("GET", "/workflows/echo");
    expect(one.status).toBe(200);
    expect(one.body.result).toMatchObject({ name: "echo", class_name: "Echo", triggered_on: null });
    const missing = await h.json("GET", "/workflows/nope");
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ success: false, result: null });
    expect(missing.body.errors[0].code).toBe("workflow.not_found");
    expect(missing.body.errors[0].message).toMatch(/^\(workflow\.not_found\) /);
  });

  it("serves a workflow's graph when one is supplied", async () => {
    h = await harness({ graph: (name) => (name === "echo" ? { nodes: [{ id: "echo" }] } : undefined) });
    const g = await h.json("GET", "/workflows/echo/graph");
    expect(g.status).toBe(200);
    expect(g.body.result).toEqual({ nodes: [{ id: "echo" }] });
    const none = await h.json("GET", "/workflows/waiter/graph");
    expect(none.status).toBe(404);
    expect(none.body.errors[0].code).toBe("not_found");
    const unknown = await h.json("GET", "/workflows/nope/graph");
    expect(unknown.body.errors[0].code).toBe("workflow.not_found");
  });

  it("answers 404 not_found for a graph when no graph source is given", async () => {
    h = await harness();
    const res = await h.json("GET", "/workflows/echo/graph");
    expect(res.status).toBe(404);
    expect(res.body.errors[0].code).toBe("not_found");
  });
});

describe("creating instances", () => {
  it("creates an instance with an id and params (201) and runs it", async () => {
    h = await harness();
    const res = await h.json("POST", "/workflows/echo/instances", { instance_id: "i1", params: { n: 1 } });
    expect(res.status).toBe(201);
    expect(res.body.result).toMatchObject({ id: "i1", workflow: "echo" });
    expect(INSTANCE_STATUSES).toContain(res.body.result.status);
    expect(res.body.result.created_on).toBe(new Date(h.clock.now()).toISOString());
    await h.idle();
    expect(await h.cairn.runtime.status("echo", "i1")).toEqual({ status: "complete", output: { n: 1 } });
  });

  it("creates an instance with a random id from an empty body", async () => {
    h = await harness();
    const res = await h.call("POST", "/workflows/echo/instances");
    expect(res.status).toBe(201);
    const body = (await res.json()) as any;
    expect(body.result.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses an existing id with 409 instance.already_exists", async () => {
    h = await harness();
    await h.json("POST", "/workflows/echo/instances", { instance_id: "dup" });
    const again = await h.json("POST", "/workflows/echo/instances", { instance_id: "dup" });
    expect(again.status).toBe(409);
    expect(again.body.errors[0].code).toBe("instance.already_exists");
  });

  it("creates a batch, skipping ids that exist", async () => {
    h = await harness();
    await h.cairn.runtime.create("echo", { id: "b1" });
    const res = await h.json("POST", "/workflows/echo/instances/batch", [
      { instance_id: "b1" },
      { instance_id: "b2", params: 2 },
      { instance_id: "b3" },
    ]);
    expect(res.status).toBe(201);
    expect(res.body.result.map((r: any) => r.id)).toEqual(["b2", "b3"]);
    expect(res.body.result[0]).toMatchObject({ workflow: "echo", status: expect.any(String) });
    await h.idle();
    expect(await h.cairn.runtime.status("echo", "b2")).toEqual({ status: "complete", output: 2 });
  });
});

describe("instance detail", () => {
  async function runTour() {
    h = await harness();
    await h.json("POST", "/workflows/tour/instances", { instance_id: "t" });
    await h.advance(1000); // flaky's retry
    await h.idle();
    return h;
  }

  it("shows steps in order with attempts, sleeps with until, waits with their event", async () => {
    await runTour();
    let { body } = await h.json("GET", "/workflows/tour/instances/t");
    let d = body.result;
    expect(d.status).toBe("waiting");
    expect(d.params).toEqual({});
    expect(d.success).toBeNull();
    expect(d.steps.map((s: any) => `${s.type}:${s.label}`)).toEqual([
      "step:hello-1",
      "step:flaky-1",
      "step:big-1",
      "step:secret-1",
      "sleep:nap-1",
    ]);
    const [hello, flaky, big, secret, nap] = d.steps;
    expect(hello).toMatchObject({
      name: "hello",
      count: 1,
      success: true,
      output: { greeting: "hi", when: "1970-01-01T00:00:00.000Z" },
      error: null,
    });
    expect(hello.config).toMatchObject({ retries: { limit: 5 }, timeout: "10 minutes" });
    // The fake clock stands still during the attempt; its CPU time is the thread's own.
    expect(hello.attempts).toEqual([
      {
        start: hello.start,
        end: hello.end,
        success: true,
        error: null,
        cpu_time_ms: expect.any(Number),
        wall_time_ms: 0,
      },
    ]);
    // Parked in the sleep: the first run's cost is stored; five step calls, five attempts (flaky twice).
    expect(d.metrics).toEqual({
      cpu_time_ms: expect.any(Number),
      wall_time_ms: 1000,
      steps: 5,
      attempts: 5,
      storage_bytes: expect.any(Number),
    });
    expect(d.metrics.storage_bytes).toBeGreaterThan(10_002);
    expect(flaky.attempts).toHaveLength(2);
    expect(flaky.attempts[0]).toMatchObject({ success: false, error: { name: "Error", message: "flaked" } });
    expect(flaky.attempts[1]).toMatchObject({ success: true, error: null });
    expect(Date.parse(flaky.attempts[1].start) - Date.parse(flaky.attempts[0].end)).toBe(1000);
    expect(flaky.output).toBe("steady");
    expect(big.output).toMatchObject({ $truncated: true, bytes: 10_002 });
    expect(big.output.preview).toHaveLength(4096);
    expect(secret.output).toBe("[REDACTED]");
    expect(secret.config.sensitive).toBe("output");
    expect(nap).toMatchObject({ type: "sleep", finished: false, end: null });
    expect(Date.parse(nap.until) - Date.parse(nap.start)).toBe(3_600_000);

    await h.advance(3_600_000);
    ({ body } = await h.json("GET", "/workflows/tour/instances/t"));
    d = body.result;
    const wait = d.steps[5];
    expect(wait).toMatchObject({
      type: "waitForEvent",
      label: "approval-1",
      finished: false,
      event_type: "approved",
      output: null,
    });
    expect(Date.parse(wait.timeout_at) - Date.parse(wait.start)).toBe(86_400_000);
    expect(d.steps[4]).toMatchObject({ finished: true });
    expect(Date.parse(d.steps[4].until)).toBe(Date.parse(d.steps[4].end));

    const sent = await h.json("POST", "/workflows/tour/instances/t/events/approved", { by: "ana" });
    expect(sent.status).toBe(200);
    await h.idle();
    ({ body } = await h.json("GET", "/workflows/tour/instances/t"));
    d = body.result;
    expect(d).toMatchObject({
      status: "complete",
      success: true,
      output: { hello: "hi", by: "ana" },
      error: null,
    });
    expect(d.step_count).toBe(7);
    expect(d.steps[5]).toMatchObject({
      finished: true,
      output: { payload: { by: "ana" }, type: "approved" },
    });
    expect(d.steps[6]).toMatchObject({
      type: "step",
      label: "hello-2",
      name: "hello",
      count: 2,
      output: "again",
    });
    expect(d.end).toBe(new Date(h.clock.now()).toISOString());
  });

  it("serves one step's full output, error and event type", async () => {
    await runTour();
    const big = await h.json("GET", "/workflows/tour/instances/t/step?name=big-1");
    expect(big.status).toBe(200);
    expect(big.body.result).toEqual({ status: "complete", output: "x".repeat(10_000), error: null });
    const secret = await h.json("GET", "/workflows/tour/instances/t/step?name=secret-1&type=step");
    expect(secret.body.result.output).toBe("[REDACTED]");
    const nap = await h.json("GET", "/workflows/tour/instances/t/step?name=nap&type=sleep");
    expect(nap.body.result).toMatchObject({ status: "waiting", output: null });
    const missing = await h.json("GET", "/workflows/tour/instances/t/step?name=nap-2");
    expect(missing.status).toBe(404);
    expect(missing.body.errors[0].code).toBe("not_found");
    await h.advance(3_600_000);
    const wait = await h.json("GET", "/workflows/tour/instances/t/step?name=approval-1&type=waitForEvent");
    expect(wait.body.result).toEqual({
      status: "waiting",
      output: null,
      error: null,
      event_type: "approved",
    });
    await h.advance(86_400_000);
    const timedOut = await h.json("GET", "/workflows/tour/instances/t/step?name=approval-1");
    expect(timedOut.body.result.status).toBe("errored");
    expect(timedOut.body.result.error.name).toBe("WorkflowTimeoutError");
    const detail = await h.json("GET", "/workflows/tour/instances/t");
    expect(detail.body.result).toMatchObject({ status: "errored", success: false });
    expect(detail.body.result.error.name).toBe("Error");
  });

  it("shows a failed step and an errored instance", async () => {
    h = await harness();
    await h.json("POST", "/workflows/failing/instances", { instance_id: "f" });
    await h.idle();
    const { body } = await h.json("GET", "/workflows/failing/instances/f");
    expect(body.result).toMatchObject({
      status: "errored",
      success: false,
      error: { name: "NonRetryableError", message: "kaput" },
      output: null,
    });
    expect(body.result.steps[0]).toMatchObject({ success: false, error: { message: "kaput" } });
    expect(body.result.steps[0].attempts).toHaveLength(1);
    const step = await h.json("GET", "/workflows/failing/instances/f/step?name=boom-1");
    expect(step.body.result).toMatchObject({ status: "errored", output: null, error: { message: "kaput" } });
  });

  it("answers 404 instance.not_found for an unknown instance", async () => {
    h = await harness();
    for (const path of ["/workflows/echo/instances/nope", "/workflows/echo/instances/nope/step?name=a-1"]) {
      const res = await h.json("GET", path);
      expect(res.status).toBe(404);
      expect(res.body.errors[0].code).toBe("instance.not_found");
    }
  });
});

describe("status changes and events", () => {
  it("pauses, resumes, terminates and restarts", async () => {
    h = await harness();
    await h.json("POST", "/workflows/waiter/instances", { instance_id: "w" });
    await h.idle();
    const pause = await h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "pause" });
    expect(pause.status).toBe(200);
    expect(pause.body.result).toEqual({ status: "paused", timestamp: new Date(h.clock.now()).toISOString() });
    const resume = await h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "resume" });
    expect(["queued", "running", "waiting"]).toContain(resume.body.result.status);
    await h.idle();
    const term = await h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "terminate" });
    expect(term.body.result.status).toBe("terminated");
    const again = await h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "terminate" });
    expect(again.status).toBe(409);
    expect(again.body.errors[0].code).toBe("instance.cannot_terminate");
    const restart = await h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "restart" });
    expect(restart.body.result.status).toBe("queued");
    await h.idle();
    expect((await h.cairn.runtime.status("waiter", "w")).status).toBe("waiting");
  });

  it("restarts from a step", async () => {
    h = await harness();
    await h.json("POST", "/workflows/tour/instances", { instance_id: "t" });
    await h.advance(1000);
    await h.advance(3_600_000);
    const bad = await h.json("PATCH", "/workflows/tour/instances/t/status", {
      status: "restart",
      from: { name: "nope" },
    });
    expect(bad.status).toBe(409);
    expect(bad.body.errors[0].code).toBe("instance.cannot_restart");
    const res = await h.json("PATCH", "/workflows/tour/instances/t/status", {
      status: "restart",
      from: { name: "nap", type: "sleep" },
    });
    expect(res.body.result.status).toBe("queued");
    await h.idle();
    const { body } = await h.json("GET", "/workflows/tour/instances/t");
    expect(body.result.steps.map((s: any) => s.label)).toEqual([
      "hello-1",
      "flaky-1",
      "big-1",
      "secret-1",
      "nap-1",
    ]);
    expect(body.result.steps[4].finished).toBe(false);
  });

  it("delivers an event with a JSON payload, and null for an empty body", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "a" });
    await h.cairn.runtime.create("waiter", { id: "b" });
    await h.idle();
    const a = await h.json("POST", "/workflows/waiter/instances/a/events/go", [1, "two"]);
    expect(a).toEqual({ status: 200, body: { success: true, errors: [], messages: [], result: null } });
    const b = await h.call("POST", "/workflows/waiter/instances/b/events/go");
    expect(b.status).toBe(200);
    await h.idle();
    expect(await h.cairn.runtime.status("waiter", "a")).toEqual({
      status: "complete",
      output: { got: [1, "two"] },
    });
    expect(await h.cairn.runtime.status("waiter", "b")).toEqual({
      status: "complete",
      output: { got: null },
    });
    const done = await h.json("POST", "/workflows/waiter/instances/a/events/go", 1);
    expect(done.status).toBe(409);
    const badType = await h.json("POST", "/workflows/waiter/instances/a/events/bad%20type", 1);
    expect(badType.status).toBe(400);
    expect(badType.body.errors[0].code).toBe("workflow.invalid_event_type");
  });

  it("deletes a batch, reporting missing ids", async () => {
    h = await harness();
    await h.cairn.runtime.createBatch("echo", [{ id: "d1" }, { id: "d2" }]);
    const res = await h.json("POST", "/workflows/echo/instances/batch/delete", {
      instances: ["d1", "nope", "d2"],
    });
    expect(res.status).toBe(200);
    expect(res.body.result.deleted).toEqual([{ id: "d1" }, { id: "d2" }]);
    expect(res.body.result.errors).toEqual([
      { id: "nope", code: 10400, message: "workflows.api.error.instance.not_found" },
    ]);
    expect(await h.cairn.store.instances.get("echo", "d1")).toBeUndefined();
  });
});
