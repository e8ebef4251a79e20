import { WorkflowError } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { listQuery, pageOf } from "./list.ts";
import type { InstanceRow } from "./types.ts";

const T0 = 1_767_225_600_000;

function row(id: string, createdAt = T0): InstanceRow {
  return {
    workflow: "orders",
    id,
    status: "queued",
    params: new Uint8Array(),
    output: null,
    error: null,
    createdAt,
    updatedAt: createdAt,
    startedAt: null,
    endedAt: null,
    pausedAt: null,
    readyAt: createdAt,
    priority: 1,
    epoch: 0,
    owner: null,
    leaseUntil: null,
  };
}

describe("listQuery", () => {
  it("asks for one row more than a page, with only the workflow when nothing else is given", () => {
    expect(listQuery({ workflow: "orders", limit: 25 })).toEqual({
      shape: { status: false, after: false, desc: false, from: false, to: false, search: false },
      params: ["orders", 26],
    });
  });

  it("puts every filter's parameters in the documented order", () => {
    const cursor = encodeCursor(T0 + 5, "i-9");
    expect(
      listQuery({
        workflow: "orders",
        status: "running",
        createdAfter: T0,
        createdBefore: T0 + 10,
        search: "i-",
        cursor,
        direction: "desc",
        limit: 3,
      }),
    ).toEqual({
      shape: { status: true, after: true, desc: true, from: true, to: true, search: true },
      params: ["orders", "running", T0, T0 + 10, "i-", T0 + 5, "i-9", 4],
    });
  });

  it("treats an empty search as none", () => {
    expect(listQuery({ workflow: "orders", limit: 1, search: "" }).shape.search).toBe(false);
  });

  it("refuses a malformed cursor with a body error that names it", () => {
    const error = (() => {
      try {
        listQuery({ workflow: "orders", limit: 1, cursor: "nope" });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(WorkflowError);
    expect(error).toMatchObject({ code: "body", message: expect.stringContaining('"nope"') });
  });
});

describe("pageOf", () => {
  it("gives a cursor after the last item only when more rows follow", () => {
    const rows = [row("a"), row("b"), row("c", T0 + 1)];
    const full = pageOf(rows, 2);
    expect(full.items.map((r) => r.id)).toEqual(["a", "b"]);
    expect(decodeCursor(full.cursor!)).toEqual({ createdAt: T0, id: "b" });
    const last = pageOf(rows, 3);
    expect(last.items).toHaveLength(3);
    expect(last.cursor).toBeUndefined();
    expect(pageOf([], 10)).toEqual({ items: [] });
  });
});
