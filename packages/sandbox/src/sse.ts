/** Server-sent events helpers, as `@cloudflare/sandbox` exports them. */

/** An SSE body (`data: <JSON>\n\n` per event) from an async iterable of events. */
export function asyncIterableToSSEStream<T>(events: AsyncIterable<T>): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  const it = events[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await it.next();
        if (done) controller.close();
        else controller.enqueue(enc.encode(`data: ${JSON.stringify(value)}\n\n`));
      } catch (e) {
        controller.error(e);
      }
    },
    async cancel() {
      await it.return?.();
    },
  });
}

/** Parses an SSE body into its events' JSON values. */
export async function* parseSSEStream<T = unknown>(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<T> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let buf = "";
  try {
    while (true) {
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let end = buf.indexOf("\n\n");
      while (end >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = block
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data && data !== "[DONE]") yield JSON.parse(data) as T;
        end = buf.indexOf("\n\n");
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** `parseSSEStream` over a `Response`'s body. */
export function responseToAsyncIterable<T = unknown>(
  response: Response,
  signal?: AbortSignal,
): AsyncGenerator<T> {
  if (!response.body) throw new Error("the response has no body");
  return parseSSEStream<T>(response.body, signal);
}

export interface FileStreamEvent {
  type: "metadata" | "chunk" | "complete" | "error";
  mimeType?: string;
  size?: number;
  isBinary?: boolean;
  encoding?: "utf-8" | "base64";
  data?: string;
  bytesRead?: number;
  error?: string;
}

/** The chunks of a `readFileStream` body, decoded (`Uint8Array` for binary files, else text). */
export async function* streamFile(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string | Uint8Array, { mimeType?: string; size?: number; isBinary?: boolean }> {
  let meta: { mimeType?: string; size?: number; isBinary?: boolean } = {};
  for await (const ev of parseSSEStream<FileStreamEvent>(stream)) {
    if (ev.type === "metadata")
      meta = { mimeType: ev.mimeType, size: ev.size, isBinary: ev.isBinary } as typeof meta;
    else if (ev.type === "chunk")
      yield meta.isBinary ? Uint8Array.from(Buffer.from(ev.data ?? "", "base64")) : (ev.data ?? "");
    else if (ev.type === "error") throw new Error(ev.error ?? "file stream error");
  }
  return meta;
}

/** A whole `readFileStream` body: `{ content, metadata }`. */
export async function collectFile(stream: ReadableStream<Uint8Array>): Promise<{
  content: string | Uint8Array;
  metadata: { mimeType?: string; size?: number; isBinary?: boolean };
}> {
  const parts: (string | Uint8Array)[] = [];
  const it = streamFile(stream);
  let r = await it.next();
  while (!r.done) {
    parts.push(r.value);
    r = await it.next();
  }
  const metadata = r.value;
  if (metadata.isBinary)
    return { content: Buffer.concat(parts.map((p) => Buffer.from(p as Uint8Array))), metadata };
  return { content: parts.join(""), metadata };
}
