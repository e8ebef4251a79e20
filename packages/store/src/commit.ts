import type { InstanceStatus } from "@cairn/core";
import type { StoreTx } from "./store.ts";
import type { InstanceCreate, NewInstance, StepCommit, StepRow } from "./types.ts";

const OWNED: readonly InstanceStatus[] = ["running", "waiting", "waitingForPause"];

/**
 * The row writers of a store that the helpers below build on. They are not part of `Store`: only the
 * store's own operations write rows this way.
 */
export interface RowWriters {
  /** Inserts unless an instance with that workflow and id exists; returns whether it was inserted. */
  insertInstance(row: NewInstance): Promise<boolean>;
  /** Inserts or replaces the row for that step. */
  putStep(row: StepRow): Promise<void>;
}

/**
 * `steps.commit` from a store's other operations, for stores whose transactions are cheap (SQLite):
 * call it inside `transaction`, where the locked read orders it against concurrent claims.
 */
export async function commitStepWith(
  tx: StoreTx,
  rows: Pick<RowWriters, "putStep">,
  c: StepCommit,
): Promise<InstanceStatus | undefined> {
  const row = await tx.instances.get(c.workflow, c.instanceId, { lock: true });
  if (!row || row.epoch !== c.epoch || !OWNED.includes(row.status)) return undefined;
  const history = [...c.history];
  if (row.status !== "waitingForPause" && row.status !== c.status) {
    await tx.instances.update(c.workflow, c.instanceId, { status: c.status, updatedAt: c.now });
    if (c.statusEntry) history.push(c.statusEntry);
  }
  await rows.putStep(c.step);
  await tx.history.append(history);
  return row.status;
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
