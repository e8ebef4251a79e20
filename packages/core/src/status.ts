/** Instance statuses, exactly Cloudflare's (SPEC §2). */
export type InstanceStatus =
  | "queued"
  | "running"
  | "paused"
  | "errored"
  | "terminated"
  | "complete"
  | "waiting"
  | "waitingForPause"
  | "unknown";

export const INSTANCE_STATUSES: readonly InstanceStatus[] = [
  "queued",
  "running",
  "paused",
  "errored",
  "terminated",
  "complete",
  "waiting",
  "waitingForPause",
  "unknown",
];

export type FinalStatus = "errored" | "terminated" | "complete";

export function isFinalStatus(s: InstanceStatus): s is FinalStatus {
  return s === "errored" || s === "terminated" || s === "complete";
}

/** Statuses in which an instance's steps may still write outcomes. */
export const ACTIVE_STATUSES: readonly InstanceStatus[] = ["running", "waiting", "waitingForPause"];
