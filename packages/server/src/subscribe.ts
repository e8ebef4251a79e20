import { FINAL_HISTORY_EVENTS, type HistoryEntry, isFinalStatus } from "@cairn/core";
import type { Runtime } from "@cairn/runtime";
import type { InstanceRow, StepRow } from "@cairn/store";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { OUTPUT_EVENTS, subscribeEvent } from "./views.ts";

export interface SubscribeOptions {
  runtime: Runtime;
  workflow: string;
  id: string;
  /** Send only entries after this history event id. */
  cursor?: number;
  keepAliveMs: number;
  pollMs: number;
  log: (message: string, error: unknown) => void;
}

const FINAL = new Set<string>(FINAL_HISTORY_EVENTS);

/**
 * Streams an instance's history as server-sent events: what is stored (after `cursor`), then new
 * entries as they are stored, until a final entry (`workflow_completed|errored|terminated`), the
 * instance is deleted, the client resumes after the end of a finished instance, or the client goes
 * away. Every message is `event: <type>`, `id: <eventId>`
 * and a `SubscribeEvent` as data.
 *
 * Invariant: the change listener is registered before the first read and removed when the stream
 * ends for any reason, so no change is missed and no listener outlives its stream.
 */
export function subscribe(c: Context, o: SubscribeOptions): Response {
  const { runtime, workflow, id } = o;
  const store = runtime.store;
  return streamSSE(c, async (stream) => {
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
    const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), o.keepAliveMs);
    const poll = o.pollMs > 0 ? setInterval(poke, o.pollMs) : undefined;
    const abort = () => stream.abort();
    c.req.raw.signal?.addEventListener("abort", abort);
    stream.onAbort(poke);
    let last = o.cursor;
    try {
      await follow();
    } catch (e) {
      o.log(`Cairn API: event stream of instance ${id} failed`, e);
      await stream.writeSSE({
        event: "error",
        data: JSON.stringify({ code: "internal", message: "(internal) The event stream failed" }),
      });
    } finally {
      off();
      clearInterval(keepAlive);
      if (poll) clearInterval(poll);
      c.req.raw.signal?.removeEventListener("abort", abort);
    }

    async function follow(): Promise<void> {
      while (!stream.aborted) {
        dirty = false;
        let entries = await store.history.list(
          workflow,
          id,
          last === undefined ? {} : { afterEventId: last },
        );
        let instance: InstanceRow | undefined;
        if (entries.length === 0) {
          // Nothing more comes for a deleted instance, or for a finished one whose final entry the
          // client has already seen (it resumed after it).
          instance = await store.instances.get(workflow, id);
          if (!instance) return;
          if (isFinalStatus(instance.status)) {
            // The final entry is stored with the final status: read once more in case it landed
            // between the two reads above.
            entries = await store.history.list(
              workflow,
              id,
              last === undefined ? {} : { afterEventId: last },
            );
            if (entries.length === 0) return;
          }
        }
        for (const entry of entries) {
          if (stream.aborted) return;
          const lookup: { step?: StepRow; instance?: InstanceRow } = {};
          if (entry.step && OUTPUT_EVENTS.has(entry.type))
            lookup.step = await store.steps.get(
              workflow,
              id,
              entry.step.kind,
              entry.step.name,
              entry.step.count,
            );
          if (needsInstance(entry)) lookup.instance = instance ??= await store.instances.get(workflow, id);
          const event = subscribeEvent(entry, lookup);
          await stream.writeSSE({
            event: entry.type,
            id: String(entry.eventId),
            data: JSON.stringify(event),
          });
          last = entry.eventId;
          if (FINAL.has(entry.type)) return;
        }
        if (!dirty && !stream.aborted) await new Promise<void>((resolve) => (wake = resolve));
      }
    }
  });
}

function needsInstance(entry: HistoryEntry): boolean {
  return entry.type === "workflow_started" || entry.type === "workflow_completed";
}
