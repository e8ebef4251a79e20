import { Cron } from "croner";
import { WorkflowError } from "./errors.ts";
import { MAX_INSTANCE_ID_LENGTH, NAME_PATTERN } from "./limits.ts";

/**
 * Scheduled (cron) triggers (SPEC §9.4): parsing expressions, naming the instances a schedule
 * creates, and the one decision of the scheduler, which slot of a schedule is due now. Cron parsing
 * is croner's (5 fields, UTC, `L`, `W`, `#`, names, nicknames such as `@hourly`); nothing here reads
 * a clock: `now` is passed in.
 */

/** `event.schedule` of an instance a schedule created (Cloudflare's `WorkflowCronSchedule`). */
export interface WorkflowCronSchedule {
  /** The expression, as configured (whitespace collapsed). */
  cron: string;
  /** The slot this instance is for, in ms since the epoch. */
  scheduledTime: number;
}

/** A parsed cron expression: when its slots fall. */
export interface CronExpression {
  /** The expression with its whitespace collapsed to single spaces: how ids and events name it. */
  readonly cron: string;
  /** The latest slot at or before `now`, if any. */
  latestSlot(now: number): number | undefined;
  /** The first slot after `now`, if any. */
  nextSlot(now: number): number | undefined;
}

/** Characters a schedule's instance ids may hold (SPEC §9.4): the expression's are these too. */
const CRON_CHARS = /^[a-zA-Z0-9, */#_-]+$/;
/** A schedule's instance id: `"<cron>#<scheduledTimeMs>"`, at most 271 characters. */
export const MAX_SCHEDULE_INSTANCE_ID_LENGTH = 271;
const SCHEDULE_ID = /^(.+)#(\d{1,16})$/;

/**
 * Parses one cron expression, or throws `workflow.invalid_schedule` naming `owner` (the binding, or
 * `triggers.crons`), the expression and what is wrong:
 * `(workflow.invalid_schedule) MY_WORKFLOW: 61 * * * *: invalid value for minute: 61`.
 */
export function parseCron(expr: unknown, owner: string): CronExpression {
  if (typeof expr !== "string")
    throw invalid(owner, String(expr), `a cron expression must be a string, got ${typeof expr}`);
  const cron = expr.trim().replace(/\s+/g, " ");
  if (cron === "") throw invalid(owner, expr, "the expression is empty");
  if (!CRON_CHARS.test(cron))
    throw invalid(owner, cron, 'use only letters, digits, spaces and , * / # - _ (no "?" or "@")');
  let c: Cron;
  try {
    c = new Cron(cron, { mode: "5-part", timezone: "UTC", paused: true });
  } catch (e) {
    throw invalid(owner, cron, ((e as Error).message ?? String(e)).replace(/^CronPattern: /, ""));
  }
  if (c.getPattern() === undefined) throw invalid(owner, cron, "a date is not a cron expression");
  const first = c.nextRun(new Date(0));
  if (first === null) throw invalid(owner, cron, "it never fires");
  return {
    cron,
    // Slots are whole minutes: "at or before now" is "before now + 1 ms".
    latestSlot: (now) => c.previousRuns(1, new Date(now + 1))[0]?.getTime(),
    nextSlot: (now) => c.nextRun(new Date(now))?.getTime() ?? undefined,
  };
}

/**
 * The schedules of one owner: a string or a list of strings (wrangler's `schedules: string |
 * string[]`), each parsed; the same expression twice is refused.
 */
export function parseSchedules(value: unknown, owner: string): CronExpression[] {
  if (value === undefined) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list))
    throw new WorkflowError(
      "workflow.invalid_schedule",
      `${owner}: schedules must be a cron expression or a list of them, got ${typeof value}`,
    );
  const parsed = list.map((e) => parseCron(e, owner));
  const seen = new Set<string>();
  for (const p of parsed) {
    if (seen.has(p.cron)) throw invalid(owner, p.cron, "the expression is listed twice");
    seen.add(p.cron);
  }
  return parsed;
}

function invalid(owner: string, cron: string, why: string): WorkflowError {
  return new WorkflowError("workflow.invalid_schedule", `${owner}: ${cron}: ${why}`);
}

/** The id of the instance a schedule creates for a slot: `"<cron>#<scheduledTimeMs>"`. */
export function scheduleInstanceId(cron: string, scheduledTime: number): string {
  return `${cron}#${scheduledTime}`;
}

/** The schedule an instance id names (`"<cron>#<ms>"`), or `undefined` for any other id. */
export function scheduleOfInstanceId(id: string): WorkflowCronSchedule | undefined {
  if (id.length > MAX_SCHEDULE_INSTANCE_ID_LENGTH || !CRON_CHARS.test(id)) return undefined;
  const m = SCHEDULE_ID.exec(id);
  if (!m || !m[1]!.includes(" ")) return undefined;
  return { cron: m[1]!, scheduledTime: Number(m[2]) };
}

/**
 * Validates an id that addresses an existing instance (`get()`, the API): SPEC §3's ids, or the ids
 * schedules make. `create()` still takes only the former.
 */
export function validateAddressableId(id: unknown): string {
  if (typeof id === "string" && scheduleOfInstanceId(id)) return id;
  if (typeof id !== "string" || id.length > MAX_INSTANCE_ID_LENGTH || !NAME_PATTERN.test(id))
    throw new WorkflowError(
      "instance.invalid_id",
      `Instance ID ${typeof id === "string" ? JSON.stringify(id) : `a ${typeof id}`} is invalid: use at most ${MAX_INSTANCE_ID_LENGTH} letters, digits, "-" and "_", not starting with "-" (or a schedule's "<cron>#<ms>")`,
    );
  return id;
}

/** What the scheduler does for one schedule now. */
export interface ScheduleDecision {
  /** The slot to fire now, if one is due. */
  fire?: number;
  /**
   * The new stored `lastAt` (slots up to it are settled: fired, or older than the schedule), when it
   * changes; `undefined` means nothing is written.
   */
  settle?: number;
  /** When to look again: the first slot after `now`. */
  nextAt?: number;
}

/**
 * Which slot of a schedule is due, given `lastAt`, the latest slot already settled (stored; `undefined`
 * when the schedule has never been seen), and `now`:
 * - a schedule seen for the first time fires nothing: slots before it existed are settled at `now`;
 * - otherwise the latest slot after `lastAt` and at or before `now` fires, and only that one: after
 *   downtime, however many slots were missed, one catch-up instance runs (SPEC §9.4);
 * - nothing is due: nothing is written.
 */
export function decideSchedule(
  cron: CronExpression,
  lastAt: number | undefined,
  now: number,
): ScheduleDecision {
  const nextAt = cron.nextSlot(now);
  const next = nextAt === undefined ? {} : { nextAt };
  if (lastAt === undefined) return { settle: now, ...next };
  const due = cron.latestSlot(now);
  if (due === undefined || due <= lastAt) return next;
  return { fire: due, settle: due, ...next };
}
