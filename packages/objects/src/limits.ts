/** Durable Object limits (SPEC §13.7). Each one is a named constant; the configurable ones are defaults. */

/** Largest database of one object (SQLite `max_page_count` is set from it). */
export const MAX_OBJECT_BYTES = 10 * 1024 ** 3;
/** Longest SQL statement text `sql.exec` accepts, in bytes (UTF-8). */
export const MAX_SQL_STATEMENT_BYTES = 100 * 1024;
/** Largest value: a KV value (encoded) or one SQL binding. */
export const MAX_VALUE_BYTES = 2 * 1024 * 1024;
/** Largest KV key, in bytes (UTF-8). */
export const MAX_KEY_BYTES = 2048;
/** Largest RPC argument list or result, and largest WebSocket message. */
export const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;
/**
 * Largest WebSocket attachment (`serializeAttachment`), encoded. Cloudflare's workerd raised it from
 * 2 KiB to 16 KiB (`MAX_ATTACHMENT_SIZE` in `web-socket.h`); Cairn follows the current value.
 */
export const MAX_ATTACHMENT_BYTES = 16 * 1024;
/** How long a loaded object with nothing to do stays in memory before it is unloaded. */
export const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
/** A throwing `alarm()` is retried this many times (Cloudflare's `ALARM_RETRY_MAX_TRIES`). */
export const ALARM_MAX_RETRIES = 6;
/** The first retry waits this long; each further one twice as long (2, 4, 8, 16, 32, 64 s). */
export const ALARM_RETRY_START_MS = 2000;
/** Tags per accepted WebSocket, and the length of one tag (Cloudflare's limits). */
export const MAX_WEBSOCKET_TAGS = 10;
export const MAX_WEBSOCKET_TAG_LENGTH = 256;

/** The delay before retry number `retryCount` (1-based) of a failed alarm. */
export function alarmRetryDelayMs(retryCount: number): number {
  return ALARM_RETRY_START_MS * 2 ** Math.max(0, retryCount - 1);
}
