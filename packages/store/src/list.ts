import { encodeCursor, parseCursor } from "./cursor.ts";
import type { InstancePage, InstanceRow, ListInstancesQuery } from "./types.ts";

/** Which filters an `instances.list` statement has: each SQL store builds its text from this shape. */
export interface ListShape {
  status: boolean;
  after: boolean;
  desc: boolean;
  from: boolean;
  to: boolean;
  search: boolean;
}

/**
 * The statement shape and parameters of an `instances.list` query, the same in every SQL store:
 * workflow, then status, createdAfter, createdBefore, search and the cursor's `(createdAt, id)` (those
 * present), then `limit + 1` (one row more than a page, to know whether another follows). A malformed
 * cursor is a `body` error.
 */
export function listQuery(q: ListInstancesQuery): { shape: ListShape; params: (string | number)[] } {
  const after = q.cursor ? parseCursor(q.cursor) : undefined;
  const shape: ListShape = {
    status: q.status !== undefined,
    after: after !== undefined,
    desc: q.direction === "desc",
    from: q.createdAfter !== undefined,
    to: q.createdBefore !== undefined,
    search: !!q.search,
  };
  const params: (string | number)[] = [q.workflow];
  if (q.status !== undefined) params.push(q.status);
  if (q.createdAfter !== undefined) params.push(q.createdAfter);
  if (q.createdBefore !== undefined) params.push(q.createdBefore);
  if (q.search) params.push(q.search);
  if (after) params.push(after.createdAt, after.id);
  params.push(q.limit + 1);
  return { shape, params };
}

/** The page of `limit` rows out of the `limit + 1` a `listQuery` statement returned. */
export function pageOf(rows: InstanceRow[], limit: number): InstancePage {
  const page: InstancePage = { items: rows.slice(0, limit) };
  if (rows.length > limit) {
    const last = page.items[page.items.length - 1]!;
    page.cursor = encodeCursor(last.createdAt, last.id);
  }
  return page;
}
