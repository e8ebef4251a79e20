/**
 * How stored values (structured-clone data) are shown as JSON: Dates become ISO strings, Maps
 * become `{ "$map": [[k, v], …] }`, Sets `{ "$set": [...] }`, BigInts `{ "$bigint": "123" }`, typed
 * arrays `{ "$bytes": "<base64>" }` (with `$type` naming the array), `undefined` is left out of
 * objects and becomes `null` in arrays. Cycles become `"[Circular]"`.
 */
export function toJson(value: unknown, seen: Set<object> = new Set()): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (value === undefined) return null;
  if (typeof value !== "object") return String(value);
  if (seen.has(value)) return "[Circular]";
  seen.add(value);
  try {
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
    if (ArrayBuffer.isView(value)) {
      const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000)
        binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return { $type: value.constructor.name, $bytes: btoa(binary) };
    }
    if (value instanceof ArrayBuffer) return toJson(new Uint8Array(value), seen);
    if (Array.isArray(value)) return value.map((v) => toJson(v, seen));
    if (value instanceof Map) return { $map: [...value].map(([k, v]) => [toJson(k, seen), toJson(v, seen)]) };
    if (value instanceof Set) return { $set: [...value].map((v) => toJson(v, seen)) };
    if (value instanceof Error) return { name: value.name, message: value.message };
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJson(v, seen);
    return out;
  } finally {
    seen.delete(value);
  }
}
