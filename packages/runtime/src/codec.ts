import { deserialize, serialize } from "node:v8";
import {
  MAX_INSTANCE_STORAGE_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_STREAM_CHUNK_BYTES,
  WorkflowError,
} from "@cairn/core";

/**
 * Values that cross a durable boundary (params, step results, event payloads, outputs) are stored
 * with the structured-clone algorithm, so Date, Map, Set, BigInt, typed arrays and `undefined` come
 * back as they went in. Functions, symbols and other unclonable values are refused.
 */
export function encodeValue(value: unknown): Uint8Array {
  return serialize(value);
}

export function decodeValue<T = unknown>(bytes: Uint8Array | null): T {
  if (bytes === null) return undefined as T;
  if (isStreamValue(bytes)) return streamOf(bytes.subarray(STREAM_MAGIC.length)) as T;
  return deserialize(bytes) as T;
}

/**
 * `ReadableStream` step results (SPEC §9.3) are stored as their bytes after a marker no structured
 * clone starts with (those start with the version byte 0xFF), and decode to a new stream over them.
 */
const STREAM_MAGIC = new Uint8Array([0x00, ...new TextEncoder().encode("cairn-stream"), 0x00]);
/** Chunks of a stream read back from the store. */
export const STREAM_CHUNK_BYTES = 256 * 1024;

/** Stores a stream's bytes (see `decodeValue`). */
export function encodeStreamBytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(STREAM_MAGIC.length + bytes.byteLength);
  out.set(STREAM_MAGIC, 0);
  out.set(bytes, STREAM_MAGIC.length);
  return out;
}

/** Whether stored bytes are a stream result. */
export function isStreamValue(bytes: Uint8Array): boolean {
  if (bytes.byteLength < STREAM_MAGIC.length) return false;
  for (let i = 0; i < STREAM_MAGIC.length; i++) if (bytes[i] !== STREAM_MAGIC[i]) return false;
  return true;
}

/** How many bytes a stored stream result holds. */
export function streamByteLength(bytes: Uint8Array): number {
  return bytes.byteLength - STREAM_MAGIC.length;
}

/** A fresh, unlocked stream over `bytes`, in chunks of `STREAM_CHUNK_BYTES`. */
export function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      const end = Math.min(bytes.byteLength, offset + STREAM_CHUNK_BYTES);
      controller.enqueue(bytes.slice(offset, end));
      offset = end;
    },
  });
}

/** Why a value cannot be stored, or undefined when it can. */
export function unclonableReason(e: unknown): string | undefined {
  if (e instanceof Error && (e.name === "DataCloneError" || /could not be cloned/i.test(e.message)))
    return e.message;
  return undefined;
}

/** Encodes a value that comes from outside (params, event payloads) and checks the 1 MiB limit. */
export function encodeInput(value: unknown, what: string, limit = MAX_PAYLOAD_BYTES): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = serialize(value);
  } catch (e) {
    throw new WorkflowError("body", `${what} cannot be stored: ${(e as Error).message}`);
  }
  if (bytes.byteLength > limit)
    throw new WorkflowError(
      "payload.too_large",
      `${what} is ${bytes.byteLength} bytes encoded; the limit is ${limit} bytes (1 MiB)`,
    );
  return bytes;
}

/** A stream result that cannot be stored; it fails the instance (SPEC §9.3). */
export class StreamResultError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/**
 * Reads a step's `ReadableStream` result to its end: the bytes, or a `StreamResultError` (a locked
 * stream, a chunk that is not an ArrayBuffer or TypedArray, one of 16 MiB or more, more than `budget`
 * bytes in all: what is left of the instance's 1 GiB of storage, or more than `valueMax`, the most one
 * value of the store holds). A stream that errors rejects with its error (the attempt failed).
 */
export async function readStepStream(
  stream: ReadableStream<unknown>,
  step: string,
  budget: number = MAX_INSTANCE_STORAGE_BYTES,
  valueMax: number = Number.POSITIVE_INFINITY,
): Promise<Uint8Array> {
  if (stream.locked)
    throw new StreamResultError(
      "InvalidStepReadableStreamError",
      `The step "${step}" returned a ReadableStream that is locked; return a fresh, unlocked stream`,
    );
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let chunk: Uint8Array;
      if (value instanceof ArrayBuffer) chunk = new Uint8Array(value);
      else if (ArrayBuffer.isView(value))
        chunk = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      else
        throw new StreamResultError(
          "UnsupportedStreamChunkError",
          `The step "${step}" returned a ReadableStream with a chunk of type ${value === null ? "null" : typeof value}; chunks must be ArrayBuffers or TypedArrays`,
        );
      if (chunk.byteLength >= MAX_STREAM_CHUNK_BYTES)
        throw new StreamResultError(
          "OversizedStreamChunkError",
          `The step "${step}" returned a ReadableStream with a chunk of ${chunk.byteLength} bytes; each chunk must be smaller than 16 MiB`,
        );
      total += chunk.byteLength;
      if (total > valueMax && valueMax < budget)
        throw new StreamResultError(
          "StreamOutputStorageLimitError",
          `The step "${step}" returned a ReadableStream of more than ${valueMax} bytes, the most one stored value can hold in this store`,
        );
      if (total > budget)
        throw new StreamResultError(
          "StreamOutputStorageLimitError",
          "The instance has exceeded the 1GiB storage limit",
        );
      chunks.push(chunk.slice());
    }
  } catch (e) {
    if (e instanceof StreamResultError) await reader.cancel(e).catch(() => {});
    throw e;
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.byteLength;
  }
  return bytes;
}
