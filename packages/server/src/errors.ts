import {
  type ApiError,
  type ApiErrorCode,
  type Envelope,
  ERROR_STATUS,
  errorStatus,
  type ResultInfo,
} from "@cairn/api";
import { WorkflowError } from "@cairn/core";
import type { z } from "zod";

/**
 * An error the HTTP layer answers with itself (`not_found`, `unauthorized`, `internal`), beside the
 * engine's `WorkflowError` codes. Its message reads `"(<code>) <text>"` like every Cairn error.
 */
export class HttpError extends Error {
  override name = "HttpError";
  readonly code: ApiErrorCode;
  readonly status: number;

  constructor(code: ApiErrorCode, text: string, status = errorStatus(code)) {
    super(`(${code}) ${text}`);
    this.code = code;
    this.status = status;
  }
}

export function envelope<T>(result: T, resultInfo?: ResultInfo): Envelope<T> {
  const body: Envelope<T> = { success: true, errors: [], messages: [], result };
  if (resultInfo) body.result_info = resultInfo;
  return body;
}

export function errorEnvelope(error: ApiError): Envelope<null> {
  return { success: false, errors: [error], messages: [], result: null };
}

/**
 * The status and `{ code, message }` an error is answered with. `WorkflowError`s keep their code and
 * read `"(<code>) <text>"`; `HttpError`s keep their code and message; anything else is a 500
 * `internal` without details (no stacks leave the server).
 */
export function describeError(e: unknown): { status: number; error: ApiError; unexpected: boolean } {
  if (e instanceof HttpError)
    return { status: e.status, error: { code: e.code, message: e.message }, unexpected: false };
  if (WorkflowError.is(e)) {
    const code = e.code;
    // Cairn's description, "(<code>) <text>": the in-process message may be the bare code.
    const text = (e as Partial<WorkflowError>).text;
    return {
      status: ERROR_STATUS[code],
      error: { code, message: typeof text === "string" ? `(${code}) ${text}` : (e as Error).message },
      unexpected: false,
    };
  }
  return {
    status: 500,
    error: { code: "internal", message: "(internal) The server failed to handle the request" },
    unexpected: true,
  };
}

/** A zod failure as one `body` error naming each offending field. */
export function validationError(where: "body" | "query", error: z.ZodError): WorkflowError {
  const parts = error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    let message = issue.message;
    if (issue.code === "unrecognized_keys")
      message = `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    const field = path ? `${where === "query" ? "query " : ""}${path}` : where;
    return `${field}: ${message}`;
  });
  return new WorkflowError("body", parts.join("; "));
}
