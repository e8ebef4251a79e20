import { describe, expect, it } from "vitest";
import { readStepStream, StreamResultError } from "./codec.ts";

const streamOf = (...sizes: number[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const n of sizes) c.enqueue(new Uint8Array(n).fill(7));
      c.close();
    },
  });

describe("readStepStream", () => {
  it("reads every chunk up to what is left of the instance's storage", async () => {
    const bytes = await readStepStream(streamOf(3, 4, 5), "s", 12);
    expect(bytes.byteLength).toBe(12);
    expect(bytes.every((b) => b === 7)).toBe(true);
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

  it("refuses a stream over the most one value of the store holds, naming it", async () => {
    await expect(readStepStream(streamOf(8, 8), "big", 100, 10)).rejects.toMatchObject({
      name: "StreamOutputStorageLimitError",
      message:
        'The step "big" returned a ReadableStream of more than 10 bytes, the most one stored value can hold in this store',
    });
    // Within both, it is read whole.
    expect((await readStepStream(streamOf(8, 8), "big", 100, 16)).byteLength).toBe(16);
  });
});
