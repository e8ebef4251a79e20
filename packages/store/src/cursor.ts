import { WorkflowError } from "@cairn/core";

/** Cursors are opaque to callers: base64url of the last row's `(createdAt, id)`. */
export function encodeCursor(createdAt: number, id: string): string {
  return btoa(JSON.stringify([createdAt, id]))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
}

export function decodeCursor(cursor: string): { createdAt: number; id: string } | undefined {
  try {
    const json = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const v: unknown = JSON.parse(json);
    if (Array.isArray(v) && typeof v[0] === "number" && typeof v[1] === "string")
      return { createdAt: v[0], id: v[1] };
  } catch {}
  return undefined;
}

/** Reads a cursor from a caller; a malformed one is a `body` error that names it. */
export function parseCursor(cursor: string): { createdAt: number; id: string } {
  const c = decodeCursor(cursor);
  if (!c)
    throw new WorkflowError(
      "body",
      `Invalid cursor ${JSON.stringify(cursor)}: pass the cursor of a previous page`,
    );
  return c;
}
