import { describe, expect, it } from "vitest";
import { parseSse, type SseMessage } from "./sse.ts";

function stream(...chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      controller.close();
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  for await (const m of parseSse(body)) out.push(m);
  return out;
}

describe("parseSse", () => {
  it("joins multi-line data, keeps the last id and skips comments", async () => {
    expect(
      await collect(stream(": ping\n\nid: 7\nevent: step_started\ndata: a\ndata:b\n\ndata: c\n\n")),
    ).toEqual([
      { event: "step_started", id: "7", data: "a\nb" },
      { event: "message", id: "7", data: "c" },
    ]);
  });

  it("accepts \\r\\n and lone \\r line ends, even split between chunks", async () => {
    expect(await collect(stream("data: x\r", "\n\r\ndata: y\r\r"))).toEqual([
      { event: "message", id: undefined, data: "x" },
      { event: "message", id: undefined, data: "y" },
    ]);
  });

  it("decodes UTF-8 split inside a character and drops an unterminated last message", async () => {
    const bytes = new TextEncoder().encode("data: ⏸️ paused\n\ndata: half");
    expect(await collect(stream(bytes.slice(0, 8), bytes.slice(8)))).toEqual([
      { event: "message", id: undefined, data: "⏸️ paused" },
    ]);
  });

  it("remembers retry for later messages", async () => {
    expect(await collect(stream("retry: 1500\n\ndata: 1\n\n"))).toEqual([
      { event: "message", id: undefined, data: "1", retry: 1500 },
    ]);
  });
});
