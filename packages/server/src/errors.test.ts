import { API_PREFIX, ERROR_STATUS } from "@cairn/api";
import { ERROR_CODES, FakeClock, WorkflowError } from "@cairn/core";
import { createCairn } from "@cairn/engine";
import type { Store, StoreTx } from "@cairn/store";
import { openSqliteStore } from "@cairn/store-sqlite";
import { describe, expect, it } from "vitest";
import { Waiter } from "../test/support.ts";
import { createApi } from "./app.ts";
import { describeError, HttpError } from "./errors.ts";

describe("error statuses", () => {
  it("every engine code and every HTTP code has a status, and nothing else does", () => {
    expect(Object.keys(ERROR_STATUS).sort()).toEqual(
      [...ERROR_CODES, "unauthorized", "forbidden", "not_found", "unsupported_media_type", "internal"].sort(),
    );
    for (const status of Object.values(ERROR_STATUS))
      expect([400, 401, 403, 404, 409, 413, 415, 429, 500, 503]).toContain(status);
  });

  it("a command that lost a race answers 409 instance.changed", () => {
    const e = new WorkflowError("instance.changed", 'Instance "a" changed while the command ran; try again');
    expect(describeError(e)).toEqual({
      status: 409,
      error: {
        code: "instance.changed",
        message: '(instance.changed) Instance "a" changed while the command ran; try again',
      },
      unexpected: false,
    });
  });

  it("a WorkflowError that crossed a process boundary keeps its code and status", () => {
    const e = { name: "WorkflowError", code: "instance.not_found", message: "(instance.not_found) x" };
    expect(describeError(e)).toMatchObject({ status: 404, error: { code: "instance.not_found" } });
  });

  it("HttpError takes its status from the table unless told", () => {
    expect(new HttpError("unauthorized", "Missing bearer token").status).toBe(401);
    expect(new HttpError("payload.too_large", "too big").status).toBe(413);
    expect(new HttpError("not_found", "No graph", 404).message).toBe("(not_found) No graph");
  });

  it("anything else is a 500 internal without details", () => {
    expect(describeError(new Error("secret stack"))).toEqual({
      status: 500,
      error: { code: "internal", message: "(internal) The server failed to handle the request" },
      unexpected: true,
    });
  });
});

describe("a control command that loses a race", () => {
  it("answers 409 instance.changed and changes nothing", async () => {
    const real = await openSqliteStore({ path: ":memory:" });
    // Another writer moves the instance on between the command's read and its guarded write,
    // as a worker claiming it elsewhere would.
    let race = false;
    const racing = (tx: StoreTx): StoreTx => ({
      ...tx,
      instances: new Proxy(tx.instances, {
        get(target, key) {
          const value = Reflect.get(target, key);
          if (key !== "get") return typeof value === "function" ? value.bind(target) : value;
          return async (workflow: string, id: string, options?: { lock?: boolean }) => {
            const row = await target.get(workflow, id, options);
            if (race && row && options?.lock) {
              race = false;
              await target.update(workflow, id, { epoch: row.epoch + 1 });
            }
            return row;
          };
        },
      }),
    });
    const store = new Proxy(real, {
      get(target, key) {
        if (key === "transaction")
          return <T>(fn: (tx: StoreTx) => Promise<T>) => target.transaction((tx) => fn(racing(tx)));
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as Store;
    const cairn = await createCairn({
      store,
      clock: new FakeClock(),
      workflows: [{ binding: "WAITER", name: "waiter", class: Waiter }],
    });
    try {
      await cairn.runtime.create("waiter", { id: "w" });
      await cairn.runtime.whenIdle();
      expect((await real.instances.get("waiter", "w"))?.status).toBe("waiting");
      const before = await real.instances.get("waiter", "w");
      const history = await real.history.list("waiter", "w");
      race = true;
      const app = createApi({ runtime: cairn.runtime, pollMs: 0 });
      const res = await app.request(`${API_PREFIX}/workflows/waiter/instances/w/status`, {
        method: "PATCH",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ status: "pause" }),
      });
      expect(res.status).toBe(409);
      expect(await res.json()).toEqual({
        success: false,
        errors: [
          {
            code: "instance.changed",
            message: '(instance.changed) Instance "w" changed while the command ran; try again',
          },
        ],
        messages: [],
        result: null,
      });
      // The transaction rolled back, the other writer's change with it.
      expect(await real.instances.get("waiter", "w")).toEqual(before);
      expect(await real.history.list("waiter", "w")).toEqual(history);
    } finally {
      await cairn.close();
      await real.close();
    }
  });
});
