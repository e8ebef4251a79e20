import { deserialize, serialize } from "node:v8";
import {
  MAX_INSTANCE_STORAGE_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_STREAM_CHUNK_BYTES,
  type StepKey,
  type StepRow,
  WorkflowError,
} from "@cairn/core";
import type { StepStore } from "@cairn/store";

/**
 * Values that cross a durable boundary (params, step results, event payloads, outputs) are stored
 * with the structured-clone algorithm, so Date, Map, Set, BigInt, typed arrays and `undefined` come
 * back as they went in. Functions, symbols and other unclonable values are refused.
 */
export function encodeValue(value: unknown): Uint8Array {
  return serialize(value);
}

/**
 * Reads chunk `index` (0-based) of a stored stream result: `steps.chunk` of the step's row, or
 * `undefined` when the store has no such chunk (the instance was deleted meanwhile).
 */
export type ChunkReader = (index: number) => Promise<Uint8Array | undefined>;

/** The `ChunkReader` of a step's stored stream result. */
export function stepChunks(
  steps: Pick<StepStore, "chunk">,
  workflow: string,
  instanceId: string,
  key: StepKey,
): ChunkReader {
  return (index) => steps.chunk(workflow, instanceId, key, index);
}

/** Decodes a step row's result (a stream result reads its chunk rows from `steps`). */
export function decodeStepResult<T = unknown>(steps: Pick<StepStore, "chunk">, row: StepRow): T {
  return decodeValue<T>(row.result, stepChunks(steps, row.workflow, row.instanceId, row));
}

/**
 * Decodes stored bytes. A stream result decodes to a new stream over its stored chunks, read through
 * `chunks` as the stream is read (a stream stored whole, as Cairn did before chunk rows, needs none).
 */
export function decodeValue<T = unknown>(bytes: Uint8Array | null, chunks?: ChunkReader): T {
  if (bytes === null) return undefined as T;
  if (startsWith(bytes, CHUNKED_MAGIC)) {
    if (!chunks) throw new Error("A stream result stored in chunk rows needs its store to be read");
    return storedStream(streamByteLength(bytes), chunks) as T;
  }
  if (startsWith(bytes, INLINE_MAGIC)) return streamOf([bytes.subarray(INLINE_MAGIC.length)]) as T;
  return deserialize(bytes) as T;
}

/**
 * `ReadableStream` step results (SPEC §9.3) are stored as chunk rows of `STREAM_CHUNK_BYTES` each
 * (`StepCommit.chunks`); the step's result is a marker no structured clone starts with (those start
 * with the version byte 0xFF) followed by the stream's length, a float64. Earlier versions stored the
 * bytes whole after `INLINE_MAGIC`; those still decode.
 */
const CHUNKED_MAGIC = new Uint8Array([0x00, ...new TextEncoder().encode("cairn-chunks"), 0x00]);
const INLINE_MAGIC = new Uint8Array([0x00, ...new TextEncoder().encode("cairn-stream"), 0x00]);
/** The size of a stream result's chunk rows (the last may be shorter). */
export const STREAM_CHUNK_BYTES = 256 * 1024;

function startsWith(bytes: Uint8Array, magic: Uint8Array): boolean {
  if (bytes.byteLength < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic[i]) return false;
  return true;
}

/** The step result that stands for a stream of `byteLength` bytes stored in chunk rows. */
export function encodeStreamMarker(byteLength: number): Uint8Array {
  const out = new Uint8Array(CHUNKED_MAGIC.length + 8);
  out.set(CHUNKED_MAGIC, 0);
  new DataView(out.buffer).setFloat64(CHUNKED_MAGIC.length, byteLength, true);
  return out;
}

/** Whether stored bytes are a stream result. */
export function isStreamValue(bytes: Uint8Array): boolean {
  return startsWith(bytes, CHUNKED_MAGIC) || startsWith(bytes, INLINE_MAGIC);
}

/** How many bytes a stored stream result holds (`isStreamValue`). */
export function streamByteLength(bytes: Uint8Array): number {
  if (startsWith(bytes, INLINE_MAGIC)) return bytes.byteLength - INLINE_MAGIC.length;
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(
    CHUNKED_MAGIC.length,
    true,
  );
}

/** The bytes a stored value stands for: a stream result's length, otherwise its encoded size. */
export function storedByteLength(bytes: Uint8Array | null): number {
  if (bytes === null) return 0;
  return startsWith(bytes, CHUNKED_MAGIC) ? streamByteLength(bytes) : bytes.byteLength;
}

/** A fresh, unlocked stream over `pieces`, a chunk each (copies: the reader may keep or change them). */
export function streamOf(pieces: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i >= pieces.length) return controller.close();
      controller.enqueue(pieces[i++]!.slice());
    },
  });
}

/** A fresh, unlocked stream of a stored stream result's `byteLength` bytes, its chunks read as pulled. */
function storedStream(byteLength: number, chunks: ChunkReader): ReadableStream<Uint8Array> {
  const count = Math.ceil(byteLength / STREAM_CHUNK_BYTES);
  let i = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (i >= count) return controller.close();
        const chunk = await chunks(i);
        if (!chunk) {
          controller.error(
            new Error(
              `The stored stream result has no chunk ${i} of ${count}: its instance was deleted or restarted`,
            ),
          );
          return;
        }
        i++;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
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
 * Reads a step's `ReadableStream` result to its end: its bytes in pieces of `STREAM_CHUNK_BYTES`
 * (the chunk rows it is stored as; the last may be shorter, none when it is empty), or a
 * `StreamResultError` (a locked stream, a chunk that is not an ArrayBuffer or TypedArray, one of
 * 16 MiB or more, more than `budget` bytes in all: what is left of the instance's 1 GiB of storage).
 * A stream that errors rejects with its error (the attempt failed).
 */
export async function readStepStream(
  stream: ReadableStream<unknown>,
  step: string,
  budget: number = MAX_INSTANCE_STORAGE_BYTES,
): Promise<{ byteLength: number; pieces: Uint8Array[] }> {
  if (stream.locked)
    throw new StreamResultError(
      "InvalidStepReadableStreamError",
      `The step "${step}" returned a ReadableStream that is locked; return a fresh, unlocked stream`,
    );
  const reader = stream.getReader();
  const pieces: Uint8Array[] = [];
  let piece: Uint8Array | undefined;
  let filled = 0;
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
      if (total > budget)
        throw new StreamResultError(
          "StreamOutputStorageLimitError",
          "The instance has exceeded the 1GiB storage limit",
        );
      // Copied into pieces as it comes: the stream's producer may reuse its buffers.
      for (let at = 0; at < chunk.byteLength; ) {
        if (!piece) {
          piece = new Uint8Array(STREAM_CHUNK_BYTES);
          filled = 0;
        }
        const n = Math.min(chunk.byteLength - at, STREAM_CHUNK_BYTES - filled);
        piece.set(chunk.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === STREAM_CHUNK_BYTES) {
          pieces.push(piece);
          piece = undefined;
        }
      }
    }
  } catch (e) {
    if (e instanceof StreamResultError) await reader.cancel(e).catch(() => {});
    throw e;
  } finally {
    reader.releaseLock();
  }
  if (piece) pieces.push(piece.slice(0, filled));
  return { byteLength: total, pieces };
}
