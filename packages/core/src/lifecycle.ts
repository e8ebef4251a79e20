import { WorkflowError } from "./errors.ts";
import type { HistoryEventType } from "./history.ts";
import { type InstanceStatus, isFinalStatus } from "./status.ts";

/**
 * What a control command does to an instance: the pure half of pause, resume and terminate (SPEC §2).
 * `hot` says whether a run of the instance is live in memory (it may have step callbacks in flight).
 */
export interface Transition {
  status: InstanceStatus;
  history: HistoryEventType[];
}

/** `undefined` means the command changes nothing. */
export function decidePause(status: InstanceStatus, hot: boolean): Transition | undefined {
  switch (status) {
    case "queued":
      return { status: "paused", history: ["workflow_paused"] };
    case "running":
    case "waiting":
      return hot
        ? { status: "waitingForPause", history: ["workflow_waiting_for_pause"] }
        : { status: "paused", history: ["workflow_paused"] };
    case "paused":
    case "waitingForPause":
      return undefined;
    default:
      throw new WorkflowError("instance.cannot_pause", `Cannot pause instance since it is ${status}`);
  }
}

export function decideResume(status: InstanceStatus): Transition | undefined {
  if (status === "paused") return { status: "queued", history: ["workflow_queued"] };
  if (status === "waitingForPause") return { status: "running", history: ["workflow_running"] };
  return undefined;
}

export function decideTerminate(status: InstanceStatus): Transition {
  if (isFinalStatus(status))
    throw new WorkflowError(
      "instance.cannot_terminate",
      `Cannot terminate instance since its on a finite state (${status})`,
    );
  return { status: "terminated", history: ["workflow_terminated"] };
}

export function decideSendEvent(status: InstanceStatus): void {
  if (isFinalStatus(status))
    throw new WorkflowError(
      "instance.cannot_send_event",
      `Cannot send an event to an instance that is ${status}`,
    );
}
