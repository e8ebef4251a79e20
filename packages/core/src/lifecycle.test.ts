import { describe, expect, it } from "vitest";
import { WorkflowError } from "./errors.ts";
import { decidePause, decideResume, decideSendEvent, decideTerminate, type Transition } from "./lifecycle.ts";
import { INSTANCE_STATUSES, type InstanceStatus } from "./status.ts";

const paused: Transition = { status: "paused", history: ["workflow_paused"] };
const waitingForPause: Transition = { status: "waitingForPause", history: ["workflow_waiting_for_pause"] };

/** The error code a decision throws, or its result. */
function outcome<T>(decide: () => T): T | { throws: string } {
  try {
    return decide();
  } catch (e) {
    if (WorkflowError.is(e)) return { throws: e.code };
    throw e;
  }
}

describe("decidePause", () => {
  const rows: [InstanceStatus, boolean, Transition | undefined | { throws: string }][] = [
    ["queued", false, paused],
    ["queued", true, paused],
    // A live run may have step callbacks in flight: it parks in waitingForPause until they settle.
    ["running", true, waitingForPause],
    ["running", false, paused],
    ["waiting", true, waitingForPause],
    ["waiting", false, paused],
    ["paused", false, undefined],
    ["paused", true, undefined],
    ["waitingForPause", true, undefined],
    ["waitingForPause", false, undefined],
    ["complete", false, { throws: "instance.cannot_pause" }],
    ["errored", false, { throws: "instance.cannot_pause" }],
    ["terminated", true, { throws: "instance.cannot_pause" }],
    ["unknown", false, { throws: "instance.cannot_pause" }],
  ];
  it.each(rows)("%s (hot %s)", (status, hot, expected) => {
    expect(outcome(() => decidePause(status, hot))).toEqual(expected);
  });

  it("names the status it refuses", () => {
    expect(() => decidePause("complete", false)).toThrow(
      "(instance.cannot_pause) Cannot pause instance since it is complete",
    );
  });
});

describe("decideResume", () => {
  const rows: [InstanceStatus, Transition | undefined][] = [
    ["paused", { status: "queued", history: ["workflow_queued"] }],
    // Resuming before the pause took effect cancels it: the run never stopped.
    ["waitingForPause", { status: "running", history: ["workflow_running"] }],
    ["queued", undefined],
    ["running", undefined],
    ["waiting", undefined],
    ["complete", undefined],
    ["errored", undefined],
    ["terminated", undefined],
    ["unknown", undefined],
  ];
  it.each(rows)("%s", (status, expected) => {
    expect(decideResume(status)).toEqual(expected);
  });

  it("covers every status", () => {
    expect(rows.map(([s]) => s).sort()).toEqual([...INSTANCE_STATUSES].sort());
  });
});

describe("decideTerminate", () => {
  it.each(["queued", "running", "waiting", "paused", "waitingForPause", "unknown"] as InstanceStatus[])(
    "%s → terminated",
    (status) => {
      expect(decideTerminate(status)).toEqual({ status: "terminated", history: ["workflow_terminated"] });
    },
  );

  it.each(["complete", "errored", "terminated"] as InstanceStatus[])("%s is final: refused", (status) => {
    expect(outcome(() => decideTerminate(status))).toEqual({ throws: "instance.cannot_terminate" });
    expect(() => decideTerminate(status)).toThrow(`on a finite state (${status})`);
  });
});

describe("decideSendEvent", () => {
  it.each(["queued", "running", "waiting", "paused", "waitingForPause", "unknown"] as InstanceStatus[])(
    "%s accepts events (buffered until a wait takes them)",
    (status) => {
      expect(decideSendEvent(status)).toBeUndefined();
    },
  );

  it.each(["complete", "errored", "terminated"] as InstanceStatus[])("%s refuses events", (status) => {
    expect(outcome(() => decideSendEvent(status))).toEqual({ throws: "instance.cannot_send_event" });
    expect(() => decideSendEvent(status)).toThrow(
      `(instance.cannot_send_event) Cannot send an event to an instance that is ${status}`,
    );
  });
});
