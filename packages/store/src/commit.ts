import type { InstanceStatus } from "@cairn/core";
import type { StoreTx } from "./store.ts";
import type { StepCommit } from "./types.ts";

const OWNED: readonly InstanceStatus[] = ["running", "waiting", "waitingForPause"];

/**
 * `steps.commit` from a store's other operations, for stores whose transactions are cheap (SQLite):
 * call it inside `transaction`, where the locked read orders it against concurrent claims.
 */
export async function commitStepWith(tx: StoreTx, c: StepCommit): Promise<InstanceStatus | undefined> {
  const row = await tx.instances.get(c.workflow, c.instanceId, { lock: true });
  if (!row || row.epoch !== c.epoch || !OWNED.includes(row.status)) return undefined;
  const history = [...c.history];
  if (row.status !== "waitingForPause" && row.status !== c.status) {
    await tx.instances.update(c.workflow, c.instanceId, { status: c.status, updatedAt: c.now });
    if (c.statusEntry) history.push(c.statusEntry);
  }
  await tx.steps.put(c.step);
  await tx.history.append(history);
  return row.status;
}
