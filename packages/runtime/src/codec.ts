import { deserialize, serialize } from "node:v8";
import { MAX_PAYLOAD_BYTES, WorkflowError } from "@cairn/core";

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
  return deserialize(bytes) as T;
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
