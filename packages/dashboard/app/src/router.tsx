import { type AnchorHTMLAttributes, type MouseEvent, useSyncExternalStore } from "react";

/**
 * Path routing under /_cairn/ (the server answers index.html for every client route), so any page
 * can be shared as a link:
 *   /_cairn/                                    overview
 *   /_cairn/workflows/<workflow>?status=…        instances of a workflow (filters in the query)
 *   /_cairn/workflows/<workflow>/instances/<id>?step=<name>-<n>   one instance
 *   /_cairn/objects                              Durable Object namespaces and objects
 *   /_cairn/objects/<binding>/<id>               one object (read-only)
 *   /_cairn/agents                               agents; /_cairn/agents/<binding>/<id> one agent
 *   /_cairn/sandboxes                            sandboxes
 */
export const BASE = "/_cairn";

export type Route =
  | { page: "overview" }
  | { page: "instances"; workflow: string; query: URLSearchParams }
  | { page: "instance"; workflow: string; id: string; query: URLSearchParams }
  | { page: "objects" }
  | { page: "object"; binding: string; id: string }
  | { page: "agents" }
  | { page: "agent"; binding: string; id: string }
  | { page: "sandboxes" }
  | { page: "not-found"; path: string };

const listeners = new Set<() => void>();
let href = location.href;
window.addEventListener("popstate", () => notify());
function notify() {
  href = location.href;
  for (const l of listeners) l();
}

export function parseRoute(url: URL): Route {
  let path = url.pathname;
  if (path.startsWith(BASE)) path = path.slice(BASE.length);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "overview" };
  if (parts[0] === "objects" && parts.length === 1) return { page: "objects" };
  if (parts[0] === "objects" && parts.length === 3)
    return { page: "object", binding: parts[1]!, id: parts[2]! };
  if (parts[0] === "agents" && parts.length === 1) return { page: "agents" };
  if (parts[0] === "agents" && parts.length === 3)
    return { page: "agent", binding: parts[1]!, id: parts[2]! };
  if (parts[0] === "sandboxes" && parts.length === 1) return { page: "sandboxes" };
  if (parts[0] === "workflows" && parts.length === 2)
    return { page: "instances", workflow: parts[1]!, query: url.searchParams };
  if (parts[0] === "workflows" && parts[2] === "instances" && parts.length === 4)
    return { page: "instance", workflow: parts[1]!, id: parts[3]!, query: url.searchParams };
  return { page: "not-found", path: url.pathname };
}

export function useRoute(): Route {
  const current = useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => href,
  );
  return parseRoute(new URL(current));
}

export function navigate(to: string, options: { replace?: boolean } = {}) {
  const target = BASE + to;
  if (target === location.pathname + location.search) return;
  if (options.replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  notify();
  if (!options.replace) window.scrollTo(0, 0);
}

export const paths = {
  overview: () => "/",
  objects: () => "/objects",
  object: (binding: string, id: string) =>
    `/objects/${encodeURIComponent(binding)}/${encodeURIComponent(id)}`,
  agents: () => "/agents",
  agent: (binding: string, id: string) => `/agents/${encodeURIComponent(binding)}/${encodeURIComponent(id)}`,
  sandboxes: () => "/sandboxes",
  instances: (workflow: string, query?: Record<string, string | undefined>) =>
    `/workflows/${encodeURIComponent(workflow)}${queryString(query)}`,
  instance: (workflow: string, id: string, query?: Record<string, string | undefined>) =>
    `/workflows/${encodeURIComponent(workflow)}/instances/${encodeURIComponent(id)}${queryString(query)}`,
};

export function queryString(query: Record<string, string | undefined> | undefined): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** An `<a>` that navigates inside the app (a modified click still opens a new tab). */
export function Link({ to, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    rest.onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a {...rest} href={BASE + to} onClick={onClick} />;
}
