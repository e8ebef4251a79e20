import { describe, expect, it } from "vitest";
import {
  decodeValue,
  encodeStreamMarker,
  encodeValue,
  isStreamValue,
  readStepStream,
  STREAM_CHUNK_BYTES,
  StreamResultError,
  storedByteLength,
  streamByteLength,
} from "./codec.ts";

const streamOf = (...sizes: number[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const n of sizes) c.enqueue(new Uint8Array(n).fill(7));
      c.close();
    },
  });

describe("readStepStream", () => {
  it("reads every chunk up to what is left of the instance's storage", async () => {
    const { byteLength, pieces } = await readStepStream(streamOf(3, 4, 5), "s", 12);
    expect(byteLength).toBe(12);
    expect(pieces).toHaveLength(1);
    expect(pieces[0]!.byteLength).toBe(12);
    expect(pieces[0]!.every((b) => b === 7)).toBe(true);
    expect(await readStepStream(streamOf(), "s")).toEqual({ byteLength: 0, pieces: [] });
  });

  it("refuses a stream over what is left of the instance's storage, with upstream's error, and cancels it", async () => {
    let cancelled: unknown;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(new Uint8Array(8));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const error = await readStepStream(stream, "s", 20).catch((e) => e);
    expect(error).toBeInstanceOf(StreamResultError);
    expect(error).toMatchObject({
      name: "StreamOutputStorageLimitError",
      message: "The instance has exceeded the 1GiB storage limit",
    });
    expect(cancelled).toBe(error);
  });

  it("cuts the bytes into chunk rows of 256 KiB, across and within the stream's own chunks", async () => {
    const total = 2 * STREAM_CHUNK_BYTES + 1000;
    const source = new Uint8Array(total);
    for (let i = 0; i < total; i++) source[i] = (i * 7 + 3) & 0xff;
    const sizes = [100_000, 400_000, total - 500_000];
    let at = 0;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (const n of sizes) {
          c.enqueue(source.subarray(at, at + n));
          at += n;
        }
        c.close();
      },
    });
    const { byteLength, pieces } = await readStepStream(stream, "s");
    expect(byteLength).toBe(total);
    expect(pieces.map((p) => p.byteLength)).toEqual([STREAM_CHUNK_BYTES, STREAM_CHUNK_BYTES, 1000]);
    const joined = Buffer.concat(pieces);
    expect(joined.equals(Buffer.from(source))).toBe(true);
  });
});

describe("stored stream results", () => {
  const chunkRows = [new Uint8Array(STREAM_CHUNK_BYTES).fill(1), new Uint8Array(10).fill(2)];
  const marker = encodeStreamMarker(STREAM_CHUNK_BYTES + 10);

  it("stand for their chunk rows by length, and decode to a stream that reads them as it is read", async () => {
    expect(isStreamValue(marker)).toBe(true);
    expect(isStreamValue(encodeValue(new Uint8Array(4)))).toBe(false);
    expect(streamByteLength(marker)).toBe(STREAM_CHUNK_BYTES + 10);
    expect(storedByteLength(marker)).toBe(STREAM_CHUNK_BYTES + 10);
    const asked: number[] = [];
    const stream = decodeValue<ReadableStream<Uint8Array>>(marker, async (i) => {
      asked.push(i);
      return chunkRows[i];
    });
    expect(asked).toEqual([]);
    const reader = stream.getReader();
    expect((await reader.read()).value).toBe(chunkRows[0]);
    expect(asked).toEqual([0]);
    expect((await reader.read()).value).toBe(chunkRows[1]);
    expect((await reader.read()).done).toBe(true);
    expect(asked).toEqual([0, 1]);
  });

  it("error when a chunk row is gone, and need a store to be decoded", async () => {
    const stream = decodeValue<ReadableStream<Uint8Array>>(marker, async (i) =>
      i === 0 ? chunkRows[0] : undefined,
    );
    const reader = stream.getReader();
    await reader.read();
    await expect(reader.read()).rejects.toThrow(
      "The stored stream result has no chunk 1 of 2: its instance was deleted or restarted",
    );
    expect(() => decodeValue(marker)).toThrow(
      "A stream result stored in chunk rows needs its store to be read",
    );
  });

  it("stored whole, as before chunk rows, still decode", async () => {
    const inline = new Uint8Array([0, ...new TextEncoder().encode("cairn-stream"), 0, 9, 8, 7]);
    expect(streamByteLength(inline)).toBe(3);
    expect(storedByteLength(inline)).toBe(inline.byteLength);
    const chunks: number[] = [];
    for await (const c of decodeValue<ReadableStream<Uint8Array>>(inline)) chunks.push(...c);
    expect(chunks).toEqual([9, 8, 7]);
  });
});
