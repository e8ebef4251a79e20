import {
  FINAL_HISTORY_EVENTS,
  type HistoryEntry,
  type InstanceEvent,
  type InstanceSubscribeOptions,
  isFinalStatus,
  REDACTED_STEP_OUTPUT,
  stepLabel,
  type TimerHandle,
  WorkflowError,
} from "@cairn/core";
import { decodeValue } from "./codec.ts";
import type { Runtime } from "./runtime.ts";

const FINAL = new Set<string>(FINAL_HISTORY_EVENTS);
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
  const store = runtime.store;
  let closed = false;
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
  let poll: TimerHandle | undefined;
  const armPoll = () => {
    if (!store.capabilities.sharedByWorkers || closed) return;
    poll = runtime.clock.setTimer(() => {
      poke();
      armPoll();
    }, SHARED_POLL_MS);
  };
  armPoll();

  async function* follow(): AsyncGenerator<InstanceEvent> {
    let last = cursor;
    try {
      while (!closed) {
        dirty = false;
        const entries = await store.history.list(
          workflow,
          id,
          last === undefined ? {} : { afterEventId: last },
        );
        if (entries.length === 0) {
          const row = await store.instances.get(workflow, id);
          // Deleted, or finished with its final entry already seen (a cursor past it).
          if (!row || isFinalStatus(row.status)) return;
        }
        for (const entry of entries) {
          last = entry.eventId;
          const event = await eventOf(entry);
          if (keep(event)) yield event;
          if (FINAL.has(entry.type) || closed) return;
        }
        if (!dirty && !closed) await new Promise<void>((r) => (wake = r));
      }
    } finally {
      off();
      poll?.cancel();
    }
  }

  async function eventOf(entry: HistoryEntry): Promise<InstanceEvent> {
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
    if ((entry.type === "step_completed" || entry.type === "wait_completed") && entry.step) {
      const row = await store.steps.get(workflow, id, entry.step.kind, entry.step.name, entry.step.count);
      if (row?.status === "succeeded")
        event.output = row.config?.sensitive === "output" ? REDACTED_STEP_OUTPUT : decodeValue(row.result);
    } else if (entry.type === "workflow_completed" || entry.type === "workflow_started") {
      const row = await store.instances.get(workflow, id);
      if (entry.type === "workflow_started" && row) event.params = decodeValue(row.params);
      if (entry.type === "workflow_completed" && row?.status === "complete")
        event.output = decodeValue(row.output);
    }
    return event;
  }

  const iterator = follow();
  const stop = async () => {
    closed = true;
    poke();
    await iterator.return(undefined);
  };
  return Object.assign(iterator, { [Symbol.asyncDispose]: stop });
}
