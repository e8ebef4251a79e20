import { followHistory, type Runtime } from "@cairn/runtime";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { subscribeEvent } from "./views.ts";

export interface SubscribeOptions {
  runtime: Runtime;
  workflow: string;
  id: string;
  /** Send only entries after this history event id. */
  cursor?: number;
  keepAliveMs: number;
  /** Also look for entries other processes stored this often (ms; 0 for never). */
  pollMs: number;
  log: (message: string, error: unknown) => void;
}

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
  return streamSSE(c, async (stream) => {
    const stop = new AbortController();
    const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), o.keepAliveMs);
    const abort = () => stream.abort();
    c.req.raw.signal?.addEventListener("abort", abort);
    stream.onAbort(() => stop.abort());
    try {
      for await (const { entry, step, instance } of followHistory(runtime, workflow, id, {
        ...(o.cursor === undefined ? {} : { cursor: o.cursor }),
        pollMs: o.pollMs,
        signal: stop.signal,
      })) {
        await stream.writeSSE({
          event: entry.type,
          id: String(entry.eventId),
          data: JSON.stringify(
            subscribeEvent(entry, { ...(step ? { step } : {}), ...(instance ? { instance } : {}) }),
          ),
        });
      }
    } catch (e) {
      o.log(`Cairn API: event stream of instance ${id} failed`, e);
      await stream.writeSSE({
        event: "error",
        data: JSON.stringify({ code: "internal", message: "(internal) The event stream failed" }),
      });
    } finally {
      stop.abort();
      clearInterval(keepAlive);
      c.req.raw.signal?.removeEventListener("abort", abort);
    }
  });
}
