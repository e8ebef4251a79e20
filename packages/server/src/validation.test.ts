import { MAX_DRAIN_BYTES, SINGLE_BODY_LIMIT } from "@cairn/server";
import { afterEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";

let h: Harness;
afterEach(async () => {
  await h?.close();
});

/** Everything a rejected request could have changed. */
async function snapshot() {
  const store = h.cairn.store;
  const counts = await store.instances.countByStatus();
  const rows = [];
  for (const wf of ["echo", "waiter"])
    for (const r of (await store.instances.list({ workflow: wf, limit: 1000 })).items)
      rows.push({
        ...r,
        history: await store.history.list(wf, r.id),
        events: await store.events.list(wf, r.id),
      });
  return { counts, rows };
}

async function expectRejected(
  res: Promise<{ status: number; body: any }>,
  status: number,
  code: string,
  message?: RegExp,
) {
  const before = await snapshot();
  const { status: got, body } = await res;
  expect({ status: got, code: body.errors?.[0]?.code }).toEqual({ status, code });
  expect(body.success).toBe(false);
  expect(body.result).toBeNull();
  expect(body.errors[0].message).toMatch(new RegExp(`^\\(${code.replace(".", "\\.")}\\) `));
  if (message) expect(body.errors[0].message).toMatch(message);
  expect(body.errors[0].message).not.toMatch(/\n\s+at /);
  await h.idle();
  expect(await snapshot()).toEqual(before);
  return body.errors[0].message as string;
}

describe("rejected requests change nothing", () => {
  it("malformed JSON is 400 body", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    await expectRejected(
      h.json("POST", "/workflows/echo/instances", "{not json"),
      400,
      "body",
      /Malformed JSON/,
    );
    await expectRejected(
      h.json("POST", "/workflows/echo/instances/batch", "[{"),
      400,
      "body",
      /Malformed JSON/,
    );
    await expectRejected(h.json("POST", "/workflows/waiter/instances/w/events/go", "{"), 400, "body");
    await expectRejected(h.json("PATCH", "/workflows/waiter/instances/w/status", "pause"), 400, "body");
    await expectRejected(h.json("POST", "/workflows/echo/instances/batch/delete", "{]"), 400, "body");
  });

  it("wrong types and unknown keys are 400 body naming the field", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    await expectRejected(
      h.json("POST", "/workflows/echo/instances", { instance_id: 5 }),
      400,
      "body",
      /instance_id/,
    );
    await expectRejected(h.json("POST", "/workflows/echo/instances", { id: "x" }), 400, "body", /"id"/);
    await expectRejected(h.json("POST", "/workflows/echo/instances", [1]), 400, "body");
    await expectRejected(
      h.json("POST", "/workflows/echo/instances/batch", [{ instance_id: "ok" }, { instance_id: 1 }]),
      400,
      "body",
      /1\.instance_id/,
    );
    await expectRejected(h.json("POST", "/workflows/echo/instances/batch", []), 400, "body");
    await expectRejected(
      h.json("POST", "/workflows/echo/instances/batch", { instance_id: "a" }),
      400,
      "body",
    );
    await expectRejected(
      h.json(
        "POST",
        "/workflows/echo/instances/batch",
        Array.from({ length: 101 }, (_, i) => ({ instance_id: `n${i}` })),
      ),
      400,
      "body",
    );
    await expectRejected(
      h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "nap" }),
      400,
      "body",
      /status/,
    );
    await expectRejected(
      h.json("PATCH", "/workflows/waiter/instances/w/status", { status: "pause", from: { name: "a" } }),
      400,
      "body",
      /"from"/,
    );
    await expectRejected(
      h.json("PATCH", "/workflows/waiter/instances/w/status", {
        status: "restart",
        from: { name: "a", count: 0 },
      }),
      400,
      "body",
      /from\.count/,
    );
    await expectRejected(
      h.json("POST", "/workflows/echo/instances/batch/delete", { instances: "w" }),
      400,
      "body",
      /instances/,
    );
    await expectRejected(
      h.json("POST", "/workflows/waiter/instances/batch/delete", { instances: ["w"], x: 1 }),
      400,
      "body",
      /"x"/,
    );
  });

  it("bad queries are 400 body", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    await expectRejected(h.json("GET", "/workflows/echo/instances?per_page=0"), 400, "body", /per_page/);
    await expectRejected(h.json("GET", "/workflows/echo/instances?per_page=abc"), 400, "body", /per_page/);
    await expectRejected(h.json("GET", "/workflows/echo/instances?status=sleeping"), 400, "body", /status/);
    await expectRejected(h.json("GET", "/workflows/echo/instances?direction=up"), 400, "body", /direction/);
    await expectRejected(
      h.json("GET", "/workflows/echo/instances?date_start=yesterday"),
      400,
      "body",
      /date_start/,
    );
    await expectRejected(h.json("GET", "/workflows/echo/instances?color=red"), 400, "body", /"color"/);
    await expectRejected(h.json("GET", "/workflows/echo/instances?cursor=garbage"), 400, "body", /cursor/);
    await expectRejected(h.json("GET", "/workflows/waiter/instances/w/step"), 400, "body", /name/);
    await expectRejected(
      h.json("GET", "/workflows/waiter/instances/w/step?name=a-1&type=wait"),
      400,
      "body",
      /type/,
    );
    await expectRejected(
      h.json("GET", "/workflows/waiter/instances/w/subscribe?cursor=-1"),
      400,
      "body",
      /cursor/,
    );
  });

  it("invalid ids and oversize params are refused by the engine", async () => {
    h = await harness();
    await expectRejected(
      h.json("POST", "/workflows/echo/instances", { instance_id: "bad id!" }),
      400,
      "instance.invalid_id",
    );
    await expectRejected(
      h.json("POST", "/workflows/echo/instances/batch", [
        { instance_id: "fine" },
        { instance_id: "bad id!" },
      ]),
      400,
      "instance.invalid_id",
    );
    // Within the body limit, but over 1 MiB once encoded.
    const params = "é".repeat(600 * 1024);
    await expectRejected(h.json("POST", "/workflows/echo/instances", { params }), 413, "payload.too_large");
  });

  it("bodies over the limit are 413 payload.too_large", async () => {
    h = await harness();
    await h.cairn.runtime.create("waiter", { id: "w" });
    await h.idle();
    const big = JSON.stringify({ params: "x".repeat(SINGLE_BODY_LIMIT) });
    await expectRejected(h.json("POST", "/workflows/echo/instances", big), 413, "payload.too_large");
    await expectRejected(
      h.json("POST", "/workflows/waiter/instances/w/events/go", big),
      413,
      "payload.too_large",
    );
    const batch = JSON.stringify(Array.from({ length: 9 }, () => ({ params: "y".repeat(1024 * 1024) })));
    await expectRejected(h.json("POST", "/workflows/echo/instances/batch", batch), 413, "payload.too_large");
    // A streamed body without Content-Length is refused while it is read and never kept whole: a
    // refused body is read on (and dropped) up to MAX_DRAIN_BYTES so the connection stays usable;
    // beyond that the answer says `Connection: close`.
    const before = await snapshot();
    const chunk = 64 * 1024;
    for (const total of [4 * SINGLE_BODY_LIMIT, SINGLE_BODY_LIMIT + 3 * MAX_DRAIN_BYTES]) {
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            if (sent >= total) return controller.close();
            sent += chunk;
            controller.enqueue(new Uint8Array(chunk).fill(32));
          },
        },
        { highWaterMark: 0 },
      );
      const res = await h.app.request("/api/v1/workflows/echo/instances", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: stream,
        duplex: "half",
      } as RequestInit);
      expect(res.status).toBe(413);
      expect(((await res.json()) as any).errors[0].code).toBe("payload.too_large");
      if (total < MAX_DRAIN_BYTES) {
        expect(sent).toBe(total);
        expect(res.headers.get("connection")).toBeNull();
      } else {
        // Answered once MAX_DRAIN_BYTES were dropped; then dropped for at most as much again.
        expect(sent).toBeLessThan(SINGLE_BODY_LIMIT + 2 * MAX_DRAIN_BYTES + 4 * chunk);
        expect(res.headers.get("connection")).toBe("close");
      }
    }
    expect(await snapshot()).toEqual(before);
  });

  it("unknown workflows and instances are 404", async () => {
    h = await harness();
    await expectRejected(h.json("POST", "/workflows/nope/instances", {}), 404, "workflow.not_found");
    await expectRejected(h.json("POST", "/workflows/nope/instances/batch", [{}]), 404, "workflow.not_found");
    await expectRejected(h.json("GET", "/workflows/nope/instances"), 404, "workflow.not_found");
    await expectRejected(h.json("GET", "/workflows/nope/instances/x"), 404, "workflow.not_found");
    await expectRejected(
      h.json("PATCH", "/workflows/echo/instances/x/status", { status: "pause" }),
      404,
      "instance.not_found",
    );
    await expectRejected(
      h.json("POST", "/workflows/echo/instances/x/events/go", 1),
      404,
      "instance.not_found",
    );
    await expectRejected(h.json("GET", "/workflows/echo/instances/x/subscribe"), 404, "instance.not_found");
    await expectRejected(
      h.json("POST", "/workflows/nope/instances/batch/delete", { instances: ["x"] }),
      404,
      "workflow.not_found",
    );
  });

  it("unknown routes are 404 not_found and unexpected errors 500 internal without details", async () => {
    h = await harness();
    await expectRejected(h.json("GET", "/nowhere"), 404, "not_found");
    await expectRejected(h.json("DELETE", "/workflows/echo"), 404, "not_found");
    const logged: unknown[] = [];
    h.cairn.store.instances.countByStatus = async () => {
      throw new Error("disk on fire at /secret/path");
    };
    const { createApi } = await import("@cairn/server");
    const app = createApi({ runtime: h.cairn.runtime, log: (_m, e) => logged.push(e) });
    const res = await app.request("/api/v1/workflows");
    expect(res.status).toBe(500);
    const body = (await res.json()) as any;
    expect(body.errors).toEqual([
      { code: "internal", message: "(internal) The server failed to handle the request" },
    ]);
    expect(JSON.stringify(body)).not.toContain("secret");
    expect(logged).toHaveLength(1);
  });
});
