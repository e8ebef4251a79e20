/**
 * Email routing with signed reply headers (SPEC §13.8, upstream's email.ts): resolvers that pick
 * the agent for an inbound message, `routeAgentEmail`, and the HMAC-SHA256 `X-Agent-Sig` headers.
 */
import { camelCaseToKebabCase } from "./names.ts";
import { getAgentByName } from "./routing.ts";

/** The inbound message a Worker's `email()` handler gets (Cloudflare's `ForwardableEmailMessage`). */
export interface ForwardableEmailMessage {
  readonly from: string;
  readonly to: string;
  readonly headers: Headers;
  readonly raw: ReadableStream<Uint8Array> | Uint8Array;
  readonly rawSize: number;
  setReject(reason: string): void;
  forward?(rcptTo: string, headers?: Headers): Promise<void>;
  reply?(message: unknown): Promise<void>;
}

/** What an agent's `onEmail` receives. */
export interface AgentEmail {
  from: string;
  to: string;
  headers: Headers;
  rawSize: number;
  getRaw(): Promise<Uint8Array>;
  setReject(reason: string): void;
  /** Sends a reply (what `replyToEmail` uses); delivered after `onEmail` returns. */
  reply?(message: { from: string; to: string; raw: Uint8Array | string }): Promise<void>;
  /** @internal routed by the secure resolver */
  _secureRouted?: boolean;
}

export interface EmailHeader {
  key: string;
  value: string;
}

export type EmailResolverResult = { agentName: string; agentId: string; _secureRouted?: boolean } | null;
export type EmailResolver<Env = unknown> = (
  email: ForwardableEmailMessage,
  env: Env,
) => EmailResolverResult | Promise<EmailResolverResult>;
export type SignatureFailureReason = "missing_headers" | "malformed_timestamp" | "invalid" | "expired";

export const DEFAULT_MAX_AGE_SECONDS = 30 * 24 * 60 * 60;
/** How far in the future a signature's timestamp may be. */
export const MAX_CLOCK_SKEW_SECONDS = 5 * 60;

/** RFC 3834 and common headers of automatic replies and mass mail. */
export function isAutoReplyEmail(headers: EmailHeader[]): boolean {
  return headers.some(({ key, value }) => {
    const k = key.toLowerCase();
    const v = value.toLowerCase();
    if (k === "auto-submitted") return v !== "no";
    if (k === "x-auto-response-suppress") return true;
    if (k === "precedence") return v === "bulk" || v === "junk" || v === "list";
    return false;
  });
}

async function hmac(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message));
  return Buffer.from(mac).toString("base64");
}

/** The base64 HMAC-SHA256 of `${agentName}:${agentId}:${timestamp}`. */
export function computeAgentSignature(
  secret: string,
  agentName: string,
  agentId: string,
  timestamp: string,
): Promise<string> {
  return hmac(secret, `${agentName}:${agentId}:${timestamp}`);
}

/** The four headers that let a reply find its agent: X-Agent-Name, X-Agent-ID, X-Agent-Sig, X-Agent-Sig-Ts. */
export async function signAgentHeaders(
  secret: string,
  agentName: string,
  agentId: string,
): Promise<Record<string, string>> {
  if (!secret) throw new Error("secret is required for signing agent headers");
  if (!agentName) throw new Error("agentName is required for signing agent headers");
  if (!agentId) throw new Error("agentId is required for signing agent headers");
  if (agentName.includes(":")) throw new Error("agentName cannot contain colons");
  if (agentId.includes(":")) throw new Error("agentId cannot contain colons");
  const timestamp = String(Math.floor(Date.now() / 1000));
  return {
    "X-Agent-Name": agentName,
    "X-Agent-ID": agentId,
    "X-Agent-Sig": await computeAgentSignature(secret, agentName, agentId, timestamp),
    "X-Agent-Sig-Ts": timestamp,
  };
}

/** Compares in time independent of where the strings differ. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Verifies signed headers: the failure reason, or null when valid. */
export async function verifyAgentSignature(
  secret: string,
  agentName: string,
  agentId: string,
  signature: string,
  timestamp: string,
  maxAgeSeconds = DEFAULT_MAX_AGE_SECONDS,
): Promise<Exclude<SignatureFailureReason, "missing_headers"> | null> {
  if (!/^\d+$/.test(timestamp)) return "malformed_timestamp";
  const ts = Number(timestamp);
  const now = Math.floor(Date.now() / 1000);
  if (ts > now + MAX_CLOCK_SKEW_SECONDS) return "invalid";
  if (now - ts > maxAgeSeconds) return "expired";
  const expected = await computeAgentSignature(secret, agentName, agentId, timestamp);
  return constantTimeEqual(expected, signature) ? null : "invalid";
}

/** Routes replies to mail an agent sent with signed headers; anything unsigned or forged gets no route. */
export function createSecureReplyEmailResolver<Env = unknown>(
  secret: string,
  options: {
    maxAge?: number;
    onInvalidSignature?: (email: ForwardableEmailMessage, reason: SignatureFailureReason) => void;
  } = {},
): EmailResolver<Env> {
  if (!secret) throw new Error("secret is required for createSecureReplyEmailResolver");
  const maxAge = options.maxAge ?? DEFAULT_MAX_AGE_SECONDS;
  return async (email) => {
    const h = email.headers;
    const agentName = h.get("x-agent-name");
    const agentId = h.get("x-agent-id");
    const signature = h.get("x-agent-sig");
    const timestamp = h.get("x-agent-sig-ts");
    if (!agentName || !agentId || !signature || !timestamp) {
      options.onInvalidSignature?.(email, "missing_headers");
      return null;
    }
    const failure = await verifyAgentSignature(secret, agentName, agentId, signature, timestamp, maxAge);
    if (failure) {
      options.onInvalidSignature?.(email, failure);
      return null;
    }
    return { agentName, agentId, _secureRouted: true };
  };
}

/** `agent+id@domain` → that agent and id; `id@domain` → `defaultAgentName` and id. */
export function createAddressBasedEmailResolver<Env = unknown>(defaultAgentName: string): EmailResolver<Env> {
  return (email) => {
    const m = email.to.match(/^([^+@]{1,64})(?:\+([^@]{1,64}))?@(.{1,253})$/);
    if (!m) return null;
    const [, local, sub] = m;
    return sub ? { agentName: local!, agentId: sub } : { agentName: defaultAgentName, agentId: local! };
  };
}

/** Every message to one agent. */
export function createCatchAllEmailResolver<Env = unknown>(
  agentName: string,
  agentId: string,
): EmailResolver<Env> {
  return () => ({ agentName, agentId });
}

/** Removed upstream (it trusted spoofable headers): always throws. */
export function createHeaderBasedEmailResolver<Env = unknown>(): EmailResolver<Env> {
  throw new Error(
    "createHeaderBasedEmailResolver has been removed due to a security vulnerability. " +
      "It trusted attacker-controlled email headers for routing, enabling IDOR attacks.\n\n" +
      "Migration options:\n" +
      "  - For inbound mail: use createAddressBasedEmailResolver(agentName)\n" +
      "  - For reply flows: use createSecureReplyEmailResolver(secret) with signed headers",
  );
}

async function rawBytes(raw: ForwardableEmailMessage["raw"]): Promise<Uint8Array> {
  if (raw instanceof Uint8Array) return raw;
  return new Uint8Array(await new Response(raw).arrayBuffer());
}

/**
 * Delivers `email` to the agent its resolver names (binding matched as written, kebab-cased or
 * lower-cased): the agent's `onEmail` runs; a rejection it makes is applied to the message.
 */
export async function routeAgentEmail<Env>(
  email: ForwardableEmailMessage,
  env: Env,
  options: {
    resolver: EmailResolver<Env>;
    onNoRoute?: (email: ForwardableEmailMessage) => void | Promise<void>;
  },
): Promise<void> {
  const route = await options.resolver(email, env);
  if (!route) {
    if (options.onNoRoute) await options.onNoRoute(email);
    else console.warn("No routing information found for email, dropping message");
    return;
  }
  const map: Record<string, unknown> = {};
  const names: string[] = [];
  for (const [key, value] of Object.entries(env as object)) {
    if (value && typeof value === "object" && typeof (value as any).idFromName === "function") {
      map[key] = map[camelCaseToKebabCase(key)] = map[key.toLowerCase()] = value;
      names.push(key);
    }
  }
  const ns = map[route.agentName];
  if (!ns)
    throw new Error(
      `Agent namespace '${route.agentName}' not found in environment. Available agents: ${names.join(", ")}`,
    );
  const agent = (await getAgentByName(ns as never, route.agentId)) as any;
  const { rejection, replies } = (await agent._onEmail({
    from: email.from,
    to: email.to,
    headers: [...email.headers],
    raw: await rawBytes(email.raw),
    rawSize: email.rawSize,
    _secureRouted: route._secureRouted === true,
  })) as { rejection: string | null; replies: { from: string; to: string; raw: Uint8Array | string }[] };
  if (rejection !== null && rejection !== undefined) email.setReject(rejection);
  for (const reply of replies) {
    if (!email.reply) throw new Error("The inbound message does not support reply()");
    await email.reply(reply);
  }
}
