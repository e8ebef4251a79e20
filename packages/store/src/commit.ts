import type { StoreTx } from "./store.ts";
import type { InstanceCreate, NewInstance } from "./types.ts";

/**
 * The row writers of a store that `createWith` builds on. They are not part of `Store`: only the
 * store's own operations write rows this way.
 */
export interface RowWriters {
  /** Inserts unless an instance with that workflow and id exists; returns whether it was inserted. */
  insertInstance(row: NewInstance): Promise<boolean>;
}

/** The row `instances.create` inserts: queued, or started by `c.start.owner`. */
export function createdRow(c: InstanceCreate, started: boolean): NewInstance {
  if (!started || !c.start) return { ...c.row };
  return {
    ...c.row,
    status: "running",
    readyAt: null,
    startedAt: c.row.createdAt,
    epoch: 1,
    owner: c.start.owner,
    leaseUntil: c.start.leaseUntil,
  };
}

/** `instances.create` from a store's other operations; call it inside `transaction`. */
export async function createWith(
  tx: StoreTx,
  rows: Pick<RowWriters, "insertInstance">,
  c: InstanceCreate,
): Promise<"started" | "queued" | "exists"> {
  let started = c.start !== undefined;
  if (started && c.start!.maxRunning !== undefined)
    started = (await tx.queue.countRunning({ lockClaims: true })) < c.start!.maxRunning;
  if (!(await rows.insertInstance(createdRow(c, started)))) return "exists";
  await tx.history.append(c.history);
  if (!started && c.notify) await tx.notify?.(c.notify);
  return started ? "started" : "queued";
}
