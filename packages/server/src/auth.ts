import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Compares a presented token with the expected one in constant time. Both are hashed first, so
 * neither the content nor the length of the token leaks through timing.
 */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, if it has that form. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer[ \t]+(.+)$/i.exec(header.trim());
  return m ? m[1]!.trim() : undefined;
}

/** Whether a host name or address only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h.endsWith(".localhost") || h === "::1") return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  return /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** API paths served without a token: the OpenAPI document and the health check. */
const OPEN_PATHS = new Set(["/api/v1/openapi.json", "/api/v1/health"]);

/**
 * Whether an API request carries the token: `Authorization: Bearer <token>`, or for event streams
 * (`GET …/subscribe`, which `EventSource` cannot add headers to) `?token=`. The OpenAPI document
 * and `GET /api/v1/health` need none. Returns the reason when it does not.
 */
export function checkToken(
  request: {
    method: string;
    path: string;
    authorization: string | undefined;
    queryToken: string | undefined;
  },
  token: string,
): "ok" | "missing" | "invalid" {
  if (request.method === "GET" && OPEN_PATHS.has(request.path)) return "ok";
  let presented = bearerToken(request.authorization);
  if (presented === undefined && request.method === "GET" && request.path.endsWith("/subscribe"))
    presented = request.queryToken;
  if (presented === undefined) return "missing";
  return tokenMatches(presented, token) ? "ok" : "invalid";
}
