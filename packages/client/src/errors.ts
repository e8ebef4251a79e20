import type { ApiError } from "@cairn/api";

/**
 * Any failure of a call to Cairn's HTTP API: an error envelope (`success: false`), a response that
 * is not an envelope, or a server that cannot be reached.
 *
 * - `status`: the HTTP status; `0` when no response arrived.
 * - `code`: the first error's stable code (`"instance.not_found"`, `"unauthorized"`, …), `"network"`
 *   when the server is unreachable, `"http"` when the response was not an envelope.
 * - `message`: the first error's message (`"(instance.not_found) …"`); for `"network"` it names the URL.
 */
export class CairnApiError extends Error {
  override name = "CairnApiError";
  readonly status: number;
  readonly code: string;
  /** Every error of the envelope (at least one). */
  readonly errors: ApiError[];
  /** The URL that was requested. */
  readonly url: string;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    url: string;
    errors?: ApiError[];
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.url = init.url;
    this.errors = init.errors ?? [{ code: init.code, message: init.message }];
  }

  static is(e: unknown): e is CairnApiError {
    return e instanceof CairnApiError || (e instanceof Error && e.name === "CairnApiError" && "code" in e);
  }
}
