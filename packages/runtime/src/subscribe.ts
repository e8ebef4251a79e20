import {
  FINAL_HISTORY_EVENTS,
  type HistoryEntry,
  type InstanceEvent,
  type InstanceSubscribeOptions,
  isFinalStatus,
  REDACTED_STEP_OUTPUT,
  stepLabel,
  WorkflowError,
} from "@cairn/core";
import type { InstanceRow, StepRow, StepStore } from "@cairn/store";
import { decodeStepResult, decodeValue } from "./codec.ts";
import type { Runtime } from "./runtime.ts";

const FINAL = new Set<string>(FINAL_HISTORY_EVENTS);
/** Which history entries carry an `output` read from the step or the instance. */
const OUTPUT_EVENTS = new Set(["step_completed", "wait_completed", "workflow_completed"]);
/** How often a subscription on a store shared by processes looks for entries other processes wrote. */
const SHARED_POLL_MS = 1000;

/**
 * `instance.subscribe({ filter?, cursor? })` (SPEC §9.3): the instance's history as events, then new
 * entries as they are stored, ending after the final `workflow_*` entry, when the instance is
 * deleted, or when disposed. Woken by the runtime's change notifications (and, on a store shared by
 * processes, by polling).
 *
 * Invariant: the change listener is registered before the first read and removed when the iterator
 * ends for any reason.
 */
export function subscribeInstance(
  runtime: Runtime,
  workflow: string,
  id: string,
  options: InstanceSubscribeOptions = {},
): AsyncIterableIterator<InstanceEvent> & AsyncDisposable {
  if (typeof options !== "object" || options === null)
    throw new WorkflowError("body", "subscribe options must be { filter?, cursor? }");
  const { filter, cursor } = options;
  if (cursor !== undefined && (!Number.isInteger(cursor) || cursor < 0))
    throw new WorkflowError(
      "body",
      `subscribe: cursor must be an eventId (a whole number ≥ 0), got ${cursor}`,
    );
  if (
    filter !== undefined &&
    typeof filter !== "function" &&
    !(Array.isArray(filter) && filter.every((t) => typeof t === "string"))
  )
    throw new WorkflowError("body", "subscribe: filter must be a list of event types or a function");
  const keep =
    filter === undefined
      ? () => true
      : typeof filter === "function"
        ? filter
        : (e: InstanceEvent) => (filter as readonly string[]).includes(e.type);
  const stop = new AbortController();
  const iterator = (async function* (): AsyncGenerator<InstanceEvent> {
    for await (const f of followHistory(runtime, workflow, id, {
      ...(cursor === undefined ? {} : { cursor }),
      signal: stop.signal,
    })) {
      const event = eventOf(f, runtime.store.steps);
      if (keep(event)) yield event;
    }
  })();

  return Object.assign(iterator, {
    [Symbol.asyncDispose]: async () => {
      stop.abort();
      await iterator.return(undefined);
    },
  });
}

/** A subscribe event with values as the workflow sees them (decoded; sensitive outputs redacted). */
function eventOf({ entry, step, instance }: FollowedEntry, steps: StepStore): InstanceEvent {
  const event: InstanceEvent = {
    ...(entry.data ?? {}),
    type: entry.type,
    instanceId: entry.instanceId,
    eventId: entry.eventId,
    timestamp: entry.timestamp,
  };
  if (entry.step) {
    event.stepName = stepLabel(entry.step);
    event.step = { type: entry.step.kind, name: entry.step.name, count: entry.step.count };
  }
  if (entry.type === "step_completed" || entry.type === "wait_completed") {
    if (step?.status === "succeeded")
      event.output =
        step.config?.sensitive === "output" ? REDACTED_STEP_OUTPUT : decodeStepResult(steps, step);
  } else if (entry.type === "workflow_started") {
    if (instance) event.params = decodeValue(instance.params);
  } else if (entry.type === "workflow_completed") {
    if (instance?.status === "complete") event.output = decodeValue(instance.output);
  }
  return event;
}

/** One stored history entry, with the rows its subscribe event draws on. */
export interface FollowedEntry {
  entry: HistoryEntry;
  /** The step row, for `step_completed`, `wait_completed` and `workflow_completed` entries of a step. */
  step?: StepRow;
  /** The instance row, for `workflow_started` and `workflow_completed`. */
  instance?: InstanceRow;
}

export interface FollowOptions {
  /** Yield only entries after this history event id. */
  cursor?: number;
  /**
   * Also look for new entries this often (ms, in real time), for entries written by other
   * processes; 0 for never. Default: every second on a store shared by workers, else never.
   */
  pollMs?: number;
  /** Ends the iteration (the pending wait included) when aborted. */
  signal?: AbortSignal;
}

/**
 * An instance's history as it is stored (after `cursor`), then new entries as they are stored, until
 * the final `workflow_*` entry, the instance's deletion, a resume after the end of a finished
 * instance, or `signal`. Woken by the runtime's change notifications and by polling. The one loop
 * behind `instance.subscribe()` and the HTTP API's event stream, which shape the entries differently.
 *
 * Invariant: the change listener is registered before the first read and removed when the
 * iteration ends for any reason, so no change is missed and no listener outlives it.
 */
export async function* followHistory(
  runtime: Runtime,
  workflow: string,
  id: string,
  options: FollowOptions = {},
): AsyncGenerator<FollowedEntry> {
  const store = runtime.store;
  const { signal } = options;
  const pollMs = options.pollMs ?? (store.capabilities.sharedByWorkers ? SHARED_POLL_MS : 0);
  let dirty = true;
  let wake: (() => void) | undefined;
  const poke = () => {
    dirty = true;
    const w = wake;
    wake = undefined;
    w?.();
  };
  const off = runtime.onChange((w, i) => {
    if (w === workflow && i === id) poke();
  });
  // Real time, not the runtime's clock: other processes write on their own time, fake clock or not.
  const poll = pollMs > 0 ? setInterval(poke, pollMs) : undefined;
  poll?.unref();
  signal?.addEventListener("abort", poke);
  let last = options.cursor;
  const after = () => store.history.list(workflow, id, last === undefined ? {} : { afterEventId: last });
  try {
    while (!signal?.aborted) {
      dirty = false;
      let entries = await after();
      let instance: InstanceRow | undefined;
      if (entries.length === 0) {
        instance = await store.instances.get(workflow, id);
        if (!instance) return;
        if (isFinalStatus(instance.status)) {
          // The final entry is stored with the final status: read once more in case it landed
          // between the two reads above. Nothing is left when the caller resumed after it.
          entries = await after();
          if (entries.length === 0) return;
        }
      }
      for (const entry of entries) {
        if (signal?.aborted) return;
        const f: FollowedEntry = { entry };
        if (entry.step && OUTPUT_EVENTS.has(entry.type))
          f.step = await store.steps.get(workflow, id, entry.step.kind, entry.step.name, entry.step.count);
        if (entry.type === "workflow_started" || entry.type === "workflow_completed")
          f.instance = instance ??= await store.instances.get(workflow, id);
        last = entry.eventId;
        yield f;
        if (FINAL.has(entry.type)) return;
      }
      if (!dirty && !signal?.aborted) await new Promise<void>((r) => (wake = r));
    }
  } finally {
    off();
    clearInterval(poll);
    signal?.removeEventListener("abort", poke);
  }
}
