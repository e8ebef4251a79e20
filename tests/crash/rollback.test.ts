/**
 * Crash safety of the rollback phase (SPEC §9.1): a worker SIGKILLed while a rollback runs leaves
 * the phase to the next process, which replays `run()` to register the handlers again and runs the
 * rollbacks that have no outcome yet. A rollback that succeeded never runs again.
 */

import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { calls, cleanUp, snapshot, starts, stepId, tempDir, Worker } from "./harness.ts";

afterEach(cleanUp);

describe("crash during the rollback phase", () => {
  it("resumes after SIGKILL: the remaining rollbacks run, the ones that succeeded do not run again", async () => {
    const dir = tempDir();
    const w1 = await Worker.start({ dir, gen: 1, block: ["undo-r2"] });
    await w1.request({ cmd: "create", workflow: "saga", instance: "s1", params: { n: 1 } });
    await w1.waitFor((e) => e.event === "callback-blocked" && e.instance === "s1" && e.step === "undo-r2");
    await w1.kill();

    const before = snapshot(dir);
    expect(before.instances.get("s1")?.status).not.toBe("errored");
    expect(before.steps.get(stepId("s1", "rollback", "r3"))?.status).toBe("succeeded");
    expect(before.steps.has(stepId("s1", "rollback", "r1"))).toBe(false);
    expect(before.history.filter((h) => h.instance === "s1").map((h) => h.type)).toContain(
      "rollback_started",
    );

    const w2 = await Worker.start({ dir, gen: 2 });
    const { results } = await w2.request({ cmd: "waitFinal", workflow: "saga", ids: ["s1"] });
    expect(results.s1).toMatchObject({ status: "errored", error: { message: "saga s1 fails" } });
    await w2.request({ cmd: "close" });

    const records = calls(dir);
    expect(starts(records, "s1", "undo-r3")).toEqual([1]); // succeeded before the kill: never again
    expect(starts(records, "s1", "undo-r2")).toEqual([1, 2]); // killed in its callback: runs again
    expect(starts(records, "s1", "undo-r1")).toEqual([2]);
    // Forward steps were replayed from their stored results, not run again.
    for (const s of ["r1", "r2", "r3"]) expect(starts(records, "s1", s)).toEqual([1]);

    const after = snapshot(dir);
    const history = after.history.filter((h) => h.instance === "s1").map((h) => h.type);
    expect(history.filter((t) => t === "rollback_started")).toHaveLength(1);
    expect(history.slice(-2)).toEqual(["rollback_completed", "workflow_errored"]);
    const db = new DatabaseSync(join(dir, "cairn.db"), { readOnly: true });
    const row = db.prepare("SELECT rollback FROM instances WHERE id = 's1'").get() as { rollback: string };
    db.close();
    expect(JSON.parse(row.rollback)).toMatchObject({ trigger: "error", outcome: "complete", totalSteps: 3 });
  });
});
