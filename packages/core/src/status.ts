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

/** The statuses the HTTP API, CLI and dashboard show: the stored ones and `rollingBack` (SPEC §9.1). */
export type ApiInstanceStatus = InstanceStatus | "rollingBack";

export function isFinalStatus(s: ApiInstanceStatus): s is FinalStatus {
  return s === "errored" || s === "terminated" || s === "complete";
}

/** Statuses in which an instance's steps may still write outcomes. */
export const ACTIVE_STATUSES: readonly InstanceStatus[] = ["running", "waiting", "waitingForPause"];
