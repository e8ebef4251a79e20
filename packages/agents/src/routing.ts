import type { DurableObjectNamespace, DurableObjectStub } from "@cairn/objects";
import { codedError } from "./errors.ts";
import { camelCaseToKebabCase, MAX_AGENT_NAME_LENGTH } from "./names.ts";

/** The binding and instance a URL named. */
export interface AgentRouteMatch {
  /** The binding's name in `env` (e.g. `MyAgent`). */
  className: string;
  name: string;
}

/** Options of `routeAgentRequest` (upstream's `AgentOptions`). */
export interface AgentOptions<
  _Env = unknown,
  Props extends Record<string, unknown> = Record<string, unknown>,
> {
  /** URL prefix before the binding and the name. Default "agents". */
  prefix?: string;
  /** Properties for `onStart(props)`. */
  props?: Props;
  /** `true` for permissive CORS headers, or the headers to add (never to WebSocket upgrades). */
  cors?: boolean | ConstructorParameters<typeof Headers>[0];
  /** Return a Response to refuse a WebSocket upgrade, a Request to replace it. */
  onBeforeConnect?: (
    request: Request,
    route: AgentRouteMatch,
  ) => Response | Request | undefined | Promise<Response | Request | undefined>;
  /** Return a Response to answer a plain request, a Request to replace it. */
  onBeforeRequest?: (
    request: Request,
    route: AgentRouteMatch,
  ) => Response | Request | undefined | Promise<Response | Request | undefined>;
  /** Accepted and ignored (one store, no jurisdictions). */
  jurisdiction?: string;
  /** Accepted and ignored. */
  locationHint?: string;
  /** Accepted and ignored: Cairn's objects are local, routing does not fail transiently. */
  routingRetry?: false | Record<string, unknown>;
}

type NamespaceLike = Pick<DurableObjectNamespace, "idFromName" | "get">;

const maps = new WeakMap<
  object,
  { namespaces: Record<string, NamespaceLike>; bindings: Record<string, string> }
>();

function namespacesOf(env: object) {
  let m = maps.get(env);
  if (!m) {
    m = { namespaces: {}, bindings: {} };
    for (const [key, value] of Object.entries(env)) {
      if (value && typeof value === "object" && typeof (value as any).idFromName === "function") {
        const kebab = camelCaseToKebabCase(key);
        m.namespaces[kebab] = value as NamespaceLike;
        m.bindings[kebab] = key;
      }
    }
    maps.set(env, m);
  }
  return m;
}

function corsHeaders(
  cors: boolean | ConstructorParameters<typeof Headers>[0] | undefined,
): Record<string, string> | null {
  if (cors === true)
    return {
      "Access-Control-Allow-Origin": "*",
      "Access-Control-Allow-Methods": "GET, POST, HEAD, OPTIONS",
      "Access-Control-Allow-Headers": "*",
      "Access-Control-Max-Age": "86400",
    };
  if (cors && typeof cors === "object") {
    const record: Record<string, string> = {};
    new Headers(cors).forEach((v, k) => {
      record[k] = v;
    });
    return record;
  }
  return null;
}

function encodeProps(props: unknown): string {
  return Buffer.from(JSON.stringify(props), "utf8").toString("base64");
}

/**
 * Routes `/{prefix}/{binding-kebab}/{name}[/…]` to the named agent: `null` when the path does not
 * have that shape, 400 `Invalid request` when the binding segment names no namespace of `env`.
 */
export async function routeAgentRequest<Env>(
  request: Request,
  env: Env,
  options?: AgentOptions<Env>,
): Promise<Response | null> {
  const { namespaces, bindings } = namespacesOf(env as object);
  const prefixParts = (options?.prefix || "agents").split("/").filter(Boolean);
  const parts = new URL(request.url).pathname.split("/").filter(Boolean);
  if (!prefixParts.every((p, i) => parts[i] === p) || parts.length < prefixParts.length + 2) return null;
  const namespaceName = parts[prefixParts.length]!;
  const name = decodeURIComponent(parts[prefixParts.length + 1]!);
  if (!name || !namespaceName) return null;
  const namespace = namespaces[namespaceName];
  if (!namespace) {
    console.error(
      `The URL ${request.url} with namespace "${namespaceName}" and name "${name}" does not match any Durable Object binding.`,
    );
    return new Response("Invalid request", { status: 400, headers: { "x-cairn-error": "agent.not_found" } });
  }
  if (name.length > MAX_AGENT_NAME_LENGTH)
    return new Response(`Invalid agent name: at most ${MAX_AGENT_NAME_LENGTH} characters`, {
      status: 400,
      headers: { "x-cairn-error": "agent.invalid_name" },
    });
  const cors = corsHeaders(options?.cors);
  const isWebSocket = request.headers.get("Upgrade")?.toLowerCase() === "websocket";
  const withCors = (response: Response): Response => {
    if (!cors || isWebSocket) return response;
    const next = new Response(response.body, response);
    for (const [k, v] of Object.entries(cors)) next.headers.set(k, v);
    return next;
  };
  if (request.method === "OPTIONS" && cors) return new Response(null, { headers: cors });
  let req = new Request(request);
  const route: AgentRouteMatch = { className: bindings[namespaceName]!, name };
  const hook = isWebSocket ? options?.onBeforeConnect : options?.onBeforeRequest;
  const replaced = await hook?.(req, route);
  if (replaced instanceof Request) req = new Request(replaced);
  else if (replaced instanceof Response) return isWebSocket ? replaced : withCors(replaced);
  if (options?.props !== undefined) req.headers.set("x-agents-lifecycle-props", encodeProps(options.props));
  const response = await namespace.get(namespace.idFromName(name)).fetch(req);
  return isWebSocket ? response : withCors(response);
}

/** The stub of the agent `name`, after its `onStart` ran (with `props` when given). */
export async function getAgentByName<T = Record<string, (...args: any[]) => any>>(
  namespace: NamespaceLike,
  name: string,
  options?: {
    props?: Record<string, unknown>;
    jurisdiction?: string;
    locationHint?: string;
    routingRetry?: unknown;
  },
): Promise<DurableObjectStub<T>> {
  if (typeof name !== "string" || name.length === 0)
    throw codedError("agent.invalid_name", "getAgentByName: the name must be a non-empty string", TypeError);
  if (name.length > MAX_AGENT_NAME_LENGTH)
    throw codedError(
      "agent.invalid_name",
      `getAgentByName: the name is ${name.length} characters; at most ${MAX_AGENT_NAME_LENGTH} are allowed`,
      RangeError,
    );
  const stub = namespace.get(namespace.idFromName(name)) as unknown as DurableObjectStub<T> & {
    __unsafe_ensureInitialized(props?: unknown): Promise<void>;
  };
  await stub.__unsafe_ensureInitialized(options?.props);
  return stub;
}
