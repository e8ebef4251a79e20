import { type SerializedError, validateEventType } from "@cairn/core";
import { type StepSelector, selectorKey } from "./selectors.ts";

/** A failure forced on one attempt of a step. */
type Fault = { kind: "error"; error: SerializedError } | { kind: "timeout" };

interface StepFaults {
  /** Applied to every attempt (`times` omitted). */
  error?: SerializedError;
  timeout?: boolean;
  /** Applied to one attempt each, by attempt number. */
  byAttempt: Map<number, Fault>;
  /** The attempt the next `times`-limited fault starts at (shared by errors and timeouts). */
  next: number;
}

/**
 * The modifications recorded for one instance. The testing hooks consult it while the instance runs,
 * so a modification made after `create` applies to the steps that have not run yet.
 */
export class InstanceModifications {
  disableAllSleeps = false;
  readonly sleeps = new Set<string>();
  disableAllRetryDelays = false;
  readonly retryDelays = new Set<string>();
  readonly results = new Map<string, unknown>();
  readonly faults = new Map<string, StepFaults>();
  readonly eventTimeouts = new Set<string>();
  /** Events to deliver once the instance exists. */
  readonly events: { type: string; payload: unknown }[] = [];
  /** Events delivered so far (sent again when a restart wipes them). */
  readonly sentEvents: { type: string; payload: unknown }[] = [];
  /** The delivery in progress, so deliveries for one instance never overlap. */
  flushing: Promise<void> = Promise.resolve();

  /** What the `wrapStep` hook does for an attempt: fail it, time it out, return a value, or run it. */
  attemptOutcome(key: string, attempt: number): Fault | { kind: "result"; value: unknown } | undefined {
    const f = this.faults.get(key);
    if (f) {
      const at = f.byAttempt.get(attempt);
      const error = f.error ?? (at?.kind === "error" ? at.error : undefined);
      if (error) return { kind: "error", error };
      if (f.timeout || at?.kind === "timeout") return { kind: "timeout" };
    }
    if (this.results.has(key)) return { kind: "result", value: structuredClone(this.results.get(key)) };
    return undefined;
  }

  faultsOf(key: string): StepFaults {
    let f = this.faults.get(key);
    if (!f) this.faults.set(key, (f = { byAttempt: new Map(), next: 1 }));
    return f;
  }
}

/**
 * What `modify(async (m) => …)` hands out: Cloudflare's `WorkflowInstanceModifier`. Every method is
 * async for compatibility; each takes effect before its promise resolves.
 */
export interface WorkflowInstanceModifier {
  /** Makes every sleep (or only the selected ones) end at once. */
  disableSleeps(steps?: StepSelector[]): Promise<void>;
  /** Retries still happen, without waiting between attempts (for every step or the selected ones). */
  disableRetryDelays(steps?: StepSelector[]): Promise<void>;
  /** The step's attempts return `stepResult` instead of running the callback. Once per step. */
  mockStepResult(step: StepSelector, stepResult: unknown): Promise<void>;
  /** The step's attempts throw `error` (the next `times` attempts, or every attempt). */
  mockStepError(step: StepSelector, error: Error, times?: number): Promise<void>;
  /** The step's attempts time out at once (the next `times` attempts, or every attempt). */
  forceStepTimeout(step: StepSelector, times?: number): Promise<void>;
  /** Sends an event to the instance, or buffers it until the instance is created. */
  mockEvent(event: { type: string; payload: unknown }): Promise<void>;
  /** The selected `waitForEvent` times out as soon as it starts waiting. */
  forceEventTimeout(step: StepSelector): Promise<void>;
}

/** Applies modifier calls to an `InstanceModifications`; `onEvent` is told when `mockEvent` queued one. */
export class Modifier implements WorkflowInstanceModifier {
  readonly #mods: InstanceModifications;
  readonly #onEvent: () => Promise<void>;

  constructor(mods: InstanceModifications, onEvent: () => Promise<void>) {
    this.#mods = mods;
    this.#onEvent = onEvent;
  }

  async disableSleeps(steps?: StepSelector[]): Promise<void> {
    if (steps === undefined) this.#mods.disableAllSleeps = true;
    else for (const s of list(steps, "disableSleeps")) this.#mods.sleeps.add(selectorKey("sleep", s));
  }

  async disableRetryDelays(steps?: StepSelector[]): Promise<void> {
    if (steps === undefined) this.#mods.disableAllRetryDelays = true;
    else for (const s of list(steps, "disableRetryDelays")) this.#mods.retryDelays.add(selectorKey("do", s));
  }

  async mockStepResult(step: StepSelector, stepResult: unknown): Promise<void> {
    const key = selectorKey("do", step);
    if (this.#mods.results.has(key))
      throw new Error(`[WorkflowIntrospector] Trying to mock step '${step.name}' multiple times!`);
    let copy: unknown;
    try {
      copy = structuredClone(stepResult);
    } catch (e) {
      throw new TypeError(
        `[WorkflowIntrospector] The mocked result of step '${step.name}' cannot be stored: ${(e as Error).message}`,
      );
    }
    this.#mods.results.set(key, copy);
  }

  async mockStepError(step: StepSelector, error: Error, times?: number): Promise<void> {
    const key = selectorKey("do", step);
    if (this.#mods.results.has(key))
      throw new Error(
        `[WorkflowIntrospector] Trying to mock error on step '${step.name}' after mocking its result!`,
      );
    if (typeof error !== "object" || error === null || typeof (error as Error).message !== "string")
      throw new TypeError(`[WorkflowIntrospector] mockStepError on step '${step.name}' needs an Error`);
    const serialized = {
      name: typeof error.name === "string" && error.name ? error.name : "Error",
      message: error.message,
    };
    const faults = this.#mods.faultsOf(key);
    if (checkTimes(times, "mockStepError"))
      for (let i = 0; i < times!; i++)
        faults.byAttempt.set(faults.next++, { kind: "error", error: serialized });
    else faults.error = serialized;
  }

  async forceStepTimeout(step: StepSelector, times?: number): Promise<void> {
    const key = selectorKey("do", step);
    if (this.#mods.results.has(key))
      throw new Error(
        `[WorkflowIntrospector] Trying to force timeout on step '${step.name}' after mocking its result!`,
      );
    const faults = this.#mods.faultsOf(key);
    if (checkTimes(times, "forceStepTimeout"))
      for (let i = 0; i < times!; i++) faults.byAttempt.set(faults.next++, { kind: "timeout" });
    else faults.timeout = true;
  }

  async mockEvent(event: { type: string; payload: unknown }): Promise<void> {
    if (typeof event !== "object" || event === null)
      throw new TypeError("[WorkflowIntrospector] mockEvent needs { type, payload }");
    const type = validateEventType(event.type);
    this.#mods.events.push({ type, payload: event.payload });
    await this.#onEvent();
  }

  async forceEventTimeout(step: StepSelector): Promise<void> {
    this.#mods.eventTimeouts.add(selectorKey("waitForEvent", step));
  }
}

function list(steps: unknown, what: string): StepSelector[] {
  if (!Array.isArray(steps))
    throw new TypeError(`[WorkflowIntrospector] ${what} takes an array of step selectors, or nothing`);
  return steps;
}

/** `times` as Cloudflare reads it: a positive count limits the fault; 0 or omitted means every attempt. */
function checkTimes(times: unknown, what: string): boolean {
  if (times === undefined) return false;
  if (typeof times !== "number" || !Number.isInteger(times) || times < 0)
    throw new TypeError(
      `[WorkflowIntrospector] ${what}: times must be a whole number ≥ 0, got ${String(times)}`,
    );
  return times > 0;
}
