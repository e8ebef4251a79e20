import { existsSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Context, Hono } from "hono";

/** Where the dashboard is mounted. */
export const DASHBOARD_PREFIX = "/_cairn";

export interface DashboardOptions {
  /**
   * The built single-page app: a directory with `index.html` and `assets/` (`dashboardDir` of
   * `@cairn/dashboard`).
   */
  dir: string;
}

/** Apps that serve the dashboard: `startServer` sends them `/_cairn/*` even when it has a fetch handler. */
const dashboardApps = new WeakSet<object>();

/** Whether `serveDashboard` (or `createApi({ dashboard })`) mounted the dashboard on this app. */
export function servesDashboard(app: object): boolean {
  return dashboardApps.has(app);
}

export function isDashboardPath(pathname: string): boolean {
  return pathname === DASHBOARD_PREFIX || pathname.startsWith(`${DASHBOARD_PREFIX}/`);
}

/** Content-Security-Policy of the dashboard page: its own scripts and the API, nothing else. */
const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/** File names under `assets/` carry a content hash: they never change. */
const ASSET_HEADERS = {
  "Cache-Control": "public, max-age=31536000, immutable",
  "X-Content-Type-Options": "nosniff",
};
const FILE_HEADERS = { "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff" };
const PAGE_HEADERS = {
  "Cache-Control": "no-cache",
  "Content-Security-Policy": CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

function withHeaders(res: Response, headers: Record<string, string>): Response {
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
}

/**
 * Serves the dashboard's static files at `/_cairn/`: hashed files under `assets/` with a long cache
 * life, and `index.html` (never cached) for every other path, so client routes such as
 * `/_cairn/workflows/checkout/instances/order-42` can be opened and shared. `GET /` redirects to
 * `/_cairn/` (`startServer` sends `/` here only when it has no fetch handler of a project).
 * The files need no token; the page asks for one when the API answers 401.
 */
export function serveDashboard(app: Hono, dir: string): void {
  if (typeof dir !== "string" || dir === "") throw new TypeError("serveDashboard: dir must be a path");
  const root = isAbsolute(dir) ? dir : resolve(dir);
  const index = resolve(root, "index.html");
  dashboardApps.add(app);

  const strip = (path: string) => path.slice(DASHBOARD_PREFIX.length) || "/";
  const files = serveStatic({ root, rewriteRequestPath: strip });
  const page = serveStatic({ path: index });
  const notBuilt = (c: Context) =>
    c.text(`The Cairn dashboard is not built (no ${index}).\nRun: npm run build -w @cairn/dashboard\n`, 503);

  app.get("/", (c) => c.redirect(`${DASHBOARD_PREFIX}/`, 302));
  app.get(DASHBOARD_PREFIX, (c) => c.redirect(`${DASHBOARD_PREFIX}/`, 301));
  // serveStatic answers undefined (after calling `next`) when it has no file: a no-op `next` keeps
  // the decision here.
  const none = async () => {};
  const notFound = (c: Context) => c.text("Not found\n", 404);
  app.on(["GET", "HEAD"], `${DASHBOARD_PREFIX}/*`, async (c) => {
    const rel = strip(c.req.path);
    if (/(^|[/\\])\.\.?([/\\]|$)|\\|\0/.test(decodeSafe(rel))) return notFound(c);
    if (rel.startsWith("/assets/")) {
      const res = await files(c, none);
      return res ? withHeaders(res, ASSET_HEADERS) : notFound(c);
    }
    if (!existsSync(index)) return notBuilt(c);
    // A real file (favicon, robots.txt); directories and client routes get the page.
    if (/\.[a-z0-9]+$/i.test(rel) && isFile(resolve(root, `.${decodeSafe(rel)}`))) {
      const res = await files(c, none);
      if (res) return withHeaders(res, FILE_HEADERS);
    }
    const res = await page(c, none);
    return res ? withHeaders(res, PAGE_HEADERS) : notBuilt(c);
  });
}

function decodeSafe(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
