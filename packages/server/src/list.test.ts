import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, harness } from "../test/support.ts";

const TOTAL = 1_050;
let h: Harness;
/** Every instance as [createdAt, id], in ascending list order. */
let all: { id: string; createdAt: number; status: string }[] = [];

beforeAll(async () => {
  h = await harness({ worker: false });
  for (let b = 0; b < TOTAL / 50; b++) {
    // Batches share a timestamp, so ties on created time are broken by id.
    const ids = Array.from(
      { length: 50 },
      (_, i) => `i${String((b * 37 + i * 11) % 1000).padStart(3, "0")}-${b}`,
    );
    await h.cairn.runtime.createBatch(
      "echo",
      ids.map((id) => ({ id })),
    );
    for (const id of ids.filter((_, i) => i % 3 === 0)) await h.cairn.runtime.terminate("echo", id);
    await h.clock.advance(1000);
  }
  for (const wf of ["echo"]) {
    let cursor: string | undefined;
    do {
      const page = await h.cairn.store.instances.list({ workflow: wf, limit: 500, cursor, direction: "asc" });
      all.push(...page.items.map((r) => ({ id: r.id, createdAt: r.createdAt, status: r.status })));
      cursor = page.cursor;
    } while (cursor);
  }
  all = all.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}, 60_000);
afterAll(async () => {
  await h?.close();
});

async function pages(query: string) {
  const ids: string[] = [];
  let cursor: string | undefined;
  let requests = 0;
  for (;;) {
    const q = cursor ? `${query}&cursor=${encodeURIComponent(cursor)}` : query;
    const { status, body } = await h.json("GET", `/workflows/echo/instances?${q}`);
    expect(status).toBe(200);
    requests++;
    ids.push(...body.result.map((r: any) => r.id));
    expect(body.result_info.count).toBe(body.result.length);
    cursor = body.result_info.cursor;
    if (!cursor) break;
    expect(body.result.length).toBe(body.result_info.per_page);
  }
  return { ids, requests };
}

describe("listing instances", () => {
  it("has the instances it needs", () => {
    expect(all).toHaveLength(TOTAL);
    expect(new Set(all.map((a) => a.id)).size).toBe(TOTAL);
  });

  it("pages newest first by default, with no duplicates and none missed", async () => {
    const { ids, requests } = await pages("per_page=100");
    expect(requests).toBe(11);
    expect(ids).toEqual(all.map((a) => a.id).reverse());
  });

  it("pages oldest first with direction=asc", async () => {
    const { ids, requests } = await pages("per_page=77&direction=asc");
    expect(requests).toBe(Math.ceil(TOTAL / 77));
    expect(ids).toEqual(all.map((a) => a.id));
  });

  it("filters by status in both directions", async () => {
    const terminated = all.filter((a) => a.status === "terminated").map((a) => a.id);
    expect(terminated.length).toBe((TOTAL / 50) * 17);
    const asc = await pages("status=terminated&per_page=40&direction=asc");
    expect(asc.ids).toEqual(terminated);
    const desc = await pages("status=queued&per_page=250");
    expect(desc.ids).toEqual(
      all
        .filter((a) => a.status === "queued")
        .map((a) => a.id)
        .reverse(),
    );
  });

  it("stays stable when instances are created between pages", async () => {
    const first = await h.json("GET", "/workflows/echo/instances?per_page=300&direction=asc");
    await h.cairn.runtime.create("echo", { id: "late-comer" });
    const ids = first.body.result.map((r: any) => r.id);
    let cursor = first.body.result_info.cursor;
    while (cursor) {
      const { body } = await h.json(
        "GET",
        `/workflows/echo/instances?per_page=300&direction=asc&cursor=${cursor}`,
      );
      ids.push(...body.result.map((r: any) => r.id));
      cursor = body.result_info.cursor;
    }
    expect(ids).toEqual([...all.map((a) => a.id), "late-comer"]);
    await h.cairn.runtime.delete("echo", "late-comer");
  });

  it("filters by creation date (ISO or epoch ms) and by id substring", async () => {
    const start = all[100]!.createdAt;
    const end = all[299]!.createdAt;
    const expected = all.filter((a) => a.createdAt >= start && a.createdAt <= end).map((a) => a.id);
    const iso = await pages(
      `per_page=1000&direction=asc&date_start=${new Date(start).toISOString()}&date_end=${new Date(end).toISOString()}`,
    );
    expect(iso.ids).toEqual(expected);
    const ms = await pages(`per_page=1000&direction=asc&date_start=${start}&date_end=${end}`);
    expect(ms.ids).toEqual(expected);
    const search = await pages("per_page=1000&direction=asc&search=-20");
    expect(search.ids).toEqual(all.filter((a) => a.id.includes("-20")).map((a) => a.id));
    expect(search.ids.length).toBe(50);
  });

  it("returns list items as instance summaries", async () => {
    const { body } = await h.json("GET", "/workflows/echo/instances?per_page=1");
    expect(body.result[0]).toEqual({
      id: all.at(-1)!.id,
      status: all.at(-1)!.status,
      workflow: "echo",
      created_on: new Date(all.at(-1)!.createdAt).toISOString(),
      modified_on: expect.any(String),
      started_on: null,
      ended_on: all.at(-1)!.status === "terminated" ? expect.any(String) : null,
    });
  });
});
