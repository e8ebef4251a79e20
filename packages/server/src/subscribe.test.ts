import { API_PREFIX } from "@cairn/api";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness, sseReader } from "../test/support.ts";

let h: Harness;
afterEach(async () => {
  await h?.close();
});

async function open(path: string, headers: Record<string, string> = {}) {
  const res = await h.app.request(`${API_PREFIX}${path}`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  return sseReader(res.body!);
}

const types = (msgs: { event?: string }[]) => msgs.map((m) => m.event);

async function until(check: () => boolean) {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe("subscribe", () => {
  it("sends the history, then live entries in order, and ends after completion", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "w", params: { p: 1 } });
    await h.idle();
    const stored = await h.cairn.store.history.list("waiter", "w");
    const sse = await open("/workflows/waiter/instances/w/subscribe");
    const history = await sse.take(stored.length);
    expect(types(history)).toEqual(stored.map((e) => e.type));
    expect(history.map((m) => Number(m.id))).toEqual(stored.map((e) => e.eventId));
    for (const m of history) {
      expect(m.data).toMatchObject({ type: m.event, instanceId: "w", eventId: Number(m.id) });
      expect(m.data.timestamp).toEqual(expect.any(Number));
    }
    const started = history.find((m) => m.event === "workflow_started");
    if (started) expect(started.data.params).toEqual({ p: 1 });
    const wait = history.find((m) => m.event === "wait_started")!;
    expect(wait.data).toMatchObject({
      stepName: "approval-1",
      step: { type: "waitForEvent", name: "approval", count: 1 },
      eventType: "go",
    });
    expect(h.listeners()).toBe(1);

    await h.clock.advance(5000);
    const sent = await h.json("POST", "/workflows/waiter/instances/w/events/go", { ok: true });
    expect(sent.status).toBe(200);
    const live = await sse.rest();
    const all = await h.cairn.store.history.list("waiter", "w");
    expect([...history, ...live].map((m) => Number(m.id))).toEqual(all.map((e) => e.eventId));
    expect(live.at(-1)!.event).toBe("workflow_completed");
    expect(live.at(-1)!.data.output).toEqual({ got: { ok: true } });
    const completed = live.find((m) => m.event === "wait_completed")!;
    expect(completed.data.stepName).toBe("approval-1");
    expect(completed.data.output).toMatchObject({ payload: { ok: true }, type: "go" });
    expect(completed.data.timestamp).toBe(h.clock.now());
    expect(await sse.next()).toBeUndefined();
    await until(() => h.listeners() === 0);
  });

  it("resumes after a cursor (query or Last-Event-ID)", async () => {
    h = await harness();
    await h.cairn.runtime.create("echo", { id: "e", params: "hello" });
    await h.idle();
    const stored = await h.cairn.store.history.list("echo", "e");
    expect(stored.length).toBeGreaterThan(4);
    const cursor = stored[2]!.eventId;
    const fromQuery = await (await open(`/workflows/echo/instances/e/subscribe?cursor=${cursor}`)).rest();
    expect(fromQuery.map((m) => Number(m.id))).toEqual(stored.slice(3).map((e) => e.eventId));
    const fromHeader = await (
      await open("/workflows/echo/instances/e/subscribe", { "last-event-id": String(cursor) })
    ).rest();
    expect(fromHeader.map((m) => Number(m.id))).toEqual(stored.slice(3).map((e) => e.eventId));
    const done = fromQuery.find((m) => m.event === "step_completed")!;
    expect(done.data).toMatchObject({ stepName: "echo-1", output: "hello" });
    expect(fromQuery.at(-1)).toMatchObject({ event: "workflow_completed", data: { output: "hello" } });
    // Resuming after the end of a finished instance ends at once.
    const past = await open(`/workflows/echo/instances/e/subscribe?cursor=${stored.at(-1)!.eventId}`);
    expect(await past.next()).toBeUndefined();
    await until(() => h.listeners() === 0);
    // Resuming after the end of a running one waits for more.
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const last = (await h.cairn.store.history.list("waiter", "w")).at(-1)!.eventId;
    const waiting = await open(`/workflows/waiter/instances/w/subscribe?cursor=${last}`);
    await until(() => h.listeners() === 1);
    await h.cairn.runtime.sendEvent("waiter", "w", { type: "go", payload: 1 });
    const rest = await waiting.rest();
    expect(Number(rest[0]!.id)).toBeGreaterThan(last);
    expect(rest.at(-1)!.event).toBe("workflow_completed");
    await until(() => h.listeners() === 0);
  });

  it("carries each entry's details: attempts, errors, retry delays, sleeps, redacted outputs", async () => {
    h = await harness();
    await h.cairn.runtime.create("tour", { id: "t" });
    const sse = await open("/workflows/tour/instances/t/subscribe");
    await h.advance(1000);
    await h.advance(3_600_000);
    await h.json("POST", "/workflows/tour/instances/t/events/approved", { by: "bo" });
    await h.idle();
    const msgs = await sse.rest();
    expect(msgs.at(-1)!.event).toBe("workflow_completed");
    const of = (event: string, stepName?: string) =>
      msgs.filter((m) => m.event === event && (stepName === undefined || m.data.stepName === stepName));
    expect(of("step_started", "hello-1")[0]!.data.config).toMatchObject({ retries: { limit: 5 } });
    expect(of("attempt_started", "flaky-1").map((m) => m.data.attempt)).toEqual([1, 2]);
    const failed = of("attempt_errored", "flaky-1")[0]!.data;
    expect(failed).toMatchObject({
      attempt: 1,
      retryDelayMs: 1000,
      error: { name: "Error", message: "flaked" },
    });
    expect(of("step_completed", "flaky-1")[0]!.data.output).toBe("steady");
    expect(of("step_completed", "secret-1")[0]!.data.output).toBe("[REDACTED]");
    expect(of("step_completed", "big-1")[0]!.data.output).toBe("x".repeat(10_000));
    expect(of("sleep_started", "nap-1")[0]!.data).toMatchObject({ durationMs: 3_600_000 });
    expect(of("sleep_completed", "nap-1")).toHaveLength(1);
    expect(of("wait_started", "approval-1")[0]!.data.eventType).toBe("approved");
    expect(of("step_completed", "hello-2")[0]!.data.output).toBe("again");
    const ids = msgs.map((m) => Number(m.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    await until(() => h.listeners() === 0);
  });

  it("ends after workflow_errored and workflow_terminated", async () => {
    h = await harness();
    await h.cairn.runtime.create("failing", { id: "f" });
    await h.idle();
    const errored = await (await open("/workflows/failing/instances/f/subscribe")).rest();
    expect(errored.at(-1)).toMatchObject({
      event: "workflow_errored",
      data: { error: { message: "kaput" } },
    });
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const sse = await open("/workflows/waiter/instances/w/subscribe");
    await h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "terminate" });
    const msgs = await sse.rest();
    expect(msgs.at(-1)!.event).toBe("workflow_terminated");
    await until(() => h.listeners() === 0);
  });

  it("ends when the instance is deleted", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const stored = await h.cairn.store.history.list("waiter", "w");
    const sse = await open("/workflows/waiter/instances/w/subscribe");
    await sse.take(stored.length);
    await h.cairn.runtime.delete("waiter", "w");
    expect(await sse.next()).toBeUndefined();
    await until(() => h.listeners() === 0);
  });

  it("unsubscribes when the client goes away, leaking no listener", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const readers = await Promise.all([1, 2, 3].map(() => open("/workflows/waiter/instances/w/subscribe")));
    await Promise.all(readers.map((r) => r.take(1)));
    expect(h.listeners()).toBe(3);
    await readers[0]!.cancel();
    await until(() => h.listeners() === 2);
    await readers[1]!.cancel();
    await readers[2]!.cancel();
    await until(() => h.listeners() === 0);
    // The runtime keeps working and can be subscribed to again.
    const again = await open("/workflows/waiter/instances/w/subscribe");
    await h.json("POST", "/workflows/waiter/instances/w/events/go", 1);
    expect((await again.rest()).at(-1)!.event).toBe("workflow_completed");
    await until(() => h.listeners() === 0);
  });

  it("sends keep-alive comments while idle", async () => {
    h = await harness({ keepAliveMs: 10 });
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const stored = await h.cairn.store.history.list("waiter", "w");
    const sse = await open("/workflows/waiter/instances/w/subscribe");
    let comment: string | undefined;
    for (let i = 0; i <= stored.length && comment === undefined; i++) comment = (await sse.next())?.comment;
    expect(comment).toBe("keep-alive");
    await sse.cancel();
    await until(() => h.listeners() === 0);
  });

  it("picks up changes made by other processes by polling", async () => {
    h = await harness({ pollMs: 10 });
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const stored = await h.cairn.store.history.list("waiter", "w");
    const sse = await open("/workflows/waiter/instances/w/subscribe");
    await sse.take(stored.length);
    // Written straight to the store, as another process would: no change notification here.
    await h.cairn.store.history.append([
      { workflow: "waiter", instanceId: "w", type: "workflow_terminated", timestamp: h.clock.now() },
    ]);
    const msgs = await sse.rest();
    expect(types(msgs)).toEqual(["workflow_terminated"]);
    await until(() => h.listeners() === 0);
  });
});
