/**
 * Errors crossing an RPC boundary (a stub call in this process, or one forwarded to another
 * worker): the caller gets an error of the same class (built-in ones; others become `Error` with
 * the same name), message and string `code` as the one thrown, never the thrown object itself.
 */

const ERROR_CLASSES: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** What travels of an error: plain data (structured-cloneable, JSON-able). */
export interface ErrorFields {
  name: string;
  message: string;
  code?: string;
  /** It was a `DOMException` (e.g. a `DataCloneError`). */
  dom?: boolean;
}

export function errorFields(e: unknown): ErrorFields {
  const dom = e instanceof DOMException;
  const name = e instanceof Error || dom ? (e as Error).name : "Error";
  const message = e instanceof Error || dom ? (e as Error).message : String(e);
  const code = (e as { code?: unknown } | null)?.code;
  return {
    name,
    message,
    ...(typeof code === "string" && !dom ? { code } : {}),
    ...(dom ? { dom: true } : {}),
  };
}

/** The error the caller sees. */
export function rebuildError(f: ErrorFields): Error {
  if (f.dom) return new DOMException(f.message, f.name) as unknown as Error;
  const Cls = ERROR_CLASSES[f.name] ?? Error;
  const err = new Cls(f.message);
  if (err.name !== f.name) err.name = f.name;
  if (f.code) Object.assign(err, { code: f.code });
  return err;
}

/** What the caller of an RPC method sees of an error it threw. */
export function remoteError(e: unknown): Error {
  return rebuildError(errorFields(e));
}
