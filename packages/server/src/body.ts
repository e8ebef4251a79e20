/**
 * Request bodies of the API: read in full whatever their framing, limited in size, JSON only; a
 * refused body is drained so the connection can carry the next request (see `jsonBody`).
 */
import type { Context, MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { describeError, errorEnvelope, HttpError } from "./errors.ts";
import { isJsonType } from "./guard.ts";

/**
 * How many bytes of a refused body (too large, not JSON) are read and discarded so the connection
 * can carry the next request; a longer body is refused with `Connection: close` instead.
 */
export const MAX_DRAIN_BYTES = 16 * 1024 * 1024;

/** How long a closing connection goes on dropping a refused body after the answer (see `jsonBody`). */
const LINGER_MS = 2000;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Reads and drops up to about `budget` bytes of a body; whether it ended (or the client went away). */
async function discard(reader: ReadableStreamDefaultReader<Uint8Array>, budget: number): Promise<boolean> {
  let dropped = 0;
  try {
    while (dropped <= budget) {
      const { done, value } = await reader.read();
      if (done) return true;
      dropped += value.byteLength;
    }
  } catch {
    return true;
  }
  return false;
}

/** The bodies `jsonBody` read, by request context. */
const bodies = new WeakMap<Context, string>();

/** The text of the body `jsonBody` read for this request; `undefined` when the route has none. */
export function bodyText(c: Context): string | undefined {
  return bodies.get(c);
}

/**
 * Reads a JSON request body of at most `maxSize` bytes, whatever its framing (`Content-Length` or
 * chunked), for the route's handler (`readBody`). A non-empty body must say `Content-Type: application/json` (415
 * otherwise); a larger one is answered 413. A refused body is read to its end first (up to
 * `MAX_DRAIN_BYTES`) so the connection can carry the next request; beyond that the answer says
 * `Connection: close`, is sent at once, and the body is dropped for up to `LINGER_MS` more before
 * the connection closes, so the client reads the answer instead of a reset. (Hono's `bodyLimit`
 * leaves a refused body half read on a keep-alive connection, hence this middleware.)
 */
export function jsonBody(maxSize: number): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    const type = c.req.header("content-type");
    const lengthHeader = c.req.header("content-length");
    const declared =
      lengthHeader !== undefined && c.req.header("transfer-encoding") === undefined
        ? Number(lengthHeader)
        : undefined;
    const tooLarge = () =>
      new HttpError("payload.too_large", `Request body is larger than the limit of ${maxSize} bytes`, 413);
    const notJson = () =>
      new HttpError(
        "unsupported_media_type",
        `Request body must be JSON sent with Content-Type: application/json, got ${type === undefined ? "no Content-Type" : `"${type}"`}`,
        415,
      );
    const refuse = async (
      error: HttpError,
      read: { reader?: ReadableStreamDefaultReader<Uint8Array>; ended?: boolean } = {},
    ) => {
      const { status, error: body } = describeError(error);
      const reader = read.ended ? undefined : (read.reader ?? raw.body?.getReader());
      const drainable = declared === undefined || declared <= maxSize + MAX_DRAIN_BYTES;
      if (!reader || (drainable && (await discard(reader, MAX_DRAIN_BYTES))))
        return c.json(errorEnvelope(body), status as ContentfulStatusCode);
      // Too long to drain: answer at once and close the connection, but go on dropping what the
      // client still sends for a while, so that it reads the answer before the connection closes.
      const bytes = new TextEncoder().encode(JSON.stringify(errorEnvelope(body)));
      const lingered = Promise.race([discard(reader, MAX_DRAIN_BYTES), delay(LINGER_MS)]);
      const stream = new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(bytes),
        pull: async (controller) => {
          await lingered;
          controller.close();
        },
      });
      return new Response(stream, {
        status,
        headers: {
          "content-type": "application/json",
          "content-length": String(bytes.byteLength),
          connection: "close",
        },
      });
    };

    if (type !== undefined && !isJsonType(type)) return refuse(notJson());
    if (declared !== undefined && declared > maxSize) return refuse(tooLarge());
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (raw.body) {
      const reader = raw.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        chunks.push(value);
        if (size > maxSize) return refuse(tooLarge(), { reader });
      }
    }
    if (size > 0 && type === undefined) return refuse(notJson(), { ended: true });
    bodies.set(c, new TextDecoder().decode(Buffer.concat(chunks)));
    await next();
  };
}
