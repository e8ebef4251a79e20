/** One dispatched server-sent event (https://html.spec.whatwg.org/multipage/server-sent-events.html). */
export interface SseMessage {
  /** The `event:` field; `"message"` when absent. */
  event: string;
  /** The last `id:` seen on the stream (it persists across messages, as in EventSource). */
  id: string | undefined;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The last `retry:` seen on the stream (reconnection time in ms), if any. */
  retry?: number;
}

/**
 * Parses a `text/event-stream` body. Handles `\n`, `\r\n` and `\r` line ends, chunks split anywhere
 * (even inside a UTF-8 sequence), comments (`:`), multi-line data and `retry:`. A message is
 * dispatched at a blank line; an unterminated message at the end of the stream is dropped, as the
 * standard says.
 */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let hasData = false;
  let id: string | undefined;
  let retry: number | undefined;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (;;) {
        const end = lineEnd(buffer, done);
        if (end === undefined) break;
        const line = buffer.slice(0, end.at);
        buffer = buffer.slice(end.at + end.length);
        if (line === "") {
          if (hasData) {
            const message: SseMessage = { event: event || "message", id, data: data.join("\n") };
            if (retry !== undefined) message.retry = retry;
            yield message;
          }
          event = "";
          data = [];
          hasData = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event = val;
        else if (field === "data") {
          data.push(val);
          hasData = true;
        } else if (field === "id") {
          if (!val.includes("\0")) id = val;
        } else if (field === "retry" && /^\d+$/.test(val)) retry = Number(val);
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}

/** The next line end in `buffer`; a lone `\r` at the very end waits for more input (it may be `\r\n`). */
function lineEnd(buffer: string, done: boolean): { at: number; length: number } | undefined {
  for (let i = 0; i < buffer.length; i++) {
    const c = buffer.charCodeAt(i);
    if (c === 10) return { at: i, length: 1 };
    if (c === 13) {
      if (i + 1 < buffer.length) return { at: i, length: buffer.charCodeAt(i + 1) === 10 ? 2 : 1 };
      return done ? { at: i, length: 1 } : undefined;
    }
  }
  return undefined;
}
