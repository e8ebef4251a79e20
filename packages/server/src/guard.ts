import { isLoopback } from "./auth.ts";

/**
 * Browser-facing checks of the HTTP server, as pure functions of request headers:
 * - Host: a server on loopback answers only requests addressed to a loopback name or a host the
 *   operator allowed, so a page whose domain re-resolves to 127.0.0.1 (DNS rebinding) is refused.
 * - Cross-site: the API refuses requests a browser marks as coming from another site or origin
 *   (`Sec-Fetch-Site`, `Origin`), so a foreign page cannot drive it with form or `fetch` posts.
 * - JSON bodies: the API reads bodies only when they say `application/json`, which a browser cannot
 *   send cross-origin without a CORS preflight (the API answers none).
 */

/**
 * An allowed host: an exact name or address (`cairn.example.com`, `10.0.0.5`, `[::1]`), or
 * `*.example.com` for every subdomain of `example.com` (not `example.com` itself).
 */
export type HostPattern = string;

const HOST_NAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;

/**
 * Validates and normalises `hostAllow` entries (lower case; IPv6 in brackets). A port is not part of
 * an entry: every port of an allowed host is allowed. Throws naming the first bad entry.
 */
export function parseHostAllow(entries: readonly string[], where = "hostAllow"): HostPattern[] {
  if (!Array.isArray(entries)) throw new TypeError(`${where}: expected a list of host names`);
  return entries.map((entry, i) => {
    if (typeof entry !== "string")
      throw new TypeError(`${where}[${i}]: expected a host name, got ${typeof entry}`);
    let h = entry.trim().toLowerCase();
    if (h.includes(":") && !h.startsWith("[") && /^[0-9a-f:.]+$/.test(h)) h = `[${h}]`;
    if (!HOST_NAME.test(h) && !IPV6.test(h))
      throw new TypeError(
        `${where}: "${entry}" is not a host name (expected e.g. "cairn.example.com", "*.example.com" or "10.0.0.5"; no scheme, port or path)`,
      );
    return h;
  });
}

/** The host part of a `Host` header value, lower case, brackets kept for IPv6; undefined if malformed. */
export function hostName(header: string): string | undefined {
  const h = header.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(:\d{1,5})?$/.exec(h);
  return m ? m[1] : undefined;
}

/**
 * Whether a request's `Host` header names this server: a loopback name (`localhost`, `*.localhost`,
 * `127.x.x.x`, `[::1]`) or an allowed host. A request without a `Host` header (HTTP/1.0; browsers
 * always send one) passes.
 */
export function hostAllowed(header: string | undefined, allowed: readonly HostPattern[]): boolean {
  if (header === undefined) return true;
  const name = hostName(header);
  if (name === undefined) return false;
  if (isLoopback(name)) return true;
  return allowed.some((p) => (p.startsWith("*.") ? name.endsWith(p.slice(1)) : name === p));
}

/**
 * Why a browser request to the API comes from another site or origin, or `undefined` when it does
 * not. `Sec-Fetch-Site` other than `same-origin` or `none` (typed in the address bar) is refused;
 * so is an `Origin` whose host differs from `Host` (browsers without `Sec-Fetch-*`). Clients that
 * send neither header (curl, the CLI, SDKs) pass.
 */
export function crossSite(headers: {
  host: string | undefined;
  origin: string | undefined;
  secFetchSite: string | undefined;
}): string | undefined {
  const site = headers.secFetchSite?.trim().toLowerCase();
  if (site !== undefined && site !== "same-origin" && site !== "none") return `Sec-Fetch-Site: ${site}`;
  const origin = headers.origin?.trim();
  if (origin === undefined) return undefined;
  let originHost: string | undefined;
  try {
    originHost = origin === "null" ? undefined : new URL(origin).host;
  } catch {
    originHost = undefined;
  }
  if (originHost === undefined || headers.host === undefined) return `Origin: ${origin}`;
  return originHost === headers.host.trim().toLowerCase() ? undefined : `Origin: ${origin}`;
}

/** Whether a `Content-Type` is JSON: `application/json` or `application/<x>+json`, any parameters. */
export function isJsonType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  return type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}
