import type { WebSocket } from "@cairn/objects";

/**
 * One client's WebSocket as an agent sees it (upstream's `Connection`, from PartyServer): the
 * socket plus its `id` (the client's `_pk`, or a random one), `uri`, `tags`, and a per-connection
 * `state` that survives hibernation (kept in the socket's attachment).
 */
export interface Connection<TState = unknown> extends WebSocket {
  readonly id: string;
  readonly uri: string | null;
  /** The connection's tags: its id first, then those `getConnectionTags` gave. */
  tags: string[];
  /** The agent's name. */
  server: string;
  readonly state: TState | null;
  setState(state: TState | null | ((previous: TState | null) => TState | null)): TState | null;
}

/** What the framework keeps in a socket's attachment. */
interface Attachment {
  __pk: { id: string; tags: string[]; uri?: string };
  __user: unknown;
  /** Framework flags (readonly, no protocol messages): never visible as the user's state. */
  __cf?: { readonly?: boolean; noProtocol?: boolean };
}

// The socket's own class's methods (a project may hold another copy of Cairn's WebSocket class).
const rawSerialize = (ws: WebSocket, value: unknown) =>
  Object.getPrototypeOf(ws).serializeAttachment.call(ws, value);
const rawDeserialize = (ws: WebSocket): unknown => Object.getPrototypeOf(ws).deserializeAttachment.call(ws);
const cache = new WeakMap<WebSocket, Attachment>();
const wrapped = new WeakSet<WebSocket>();

function attachmentOf(ws: WebSocket): Attachment | null {
  const cached = cache.get(ws);
  if (cached) return cached;
  let raw: unknown;
  try {
    raw = rawDeserialize(ws);
  } catch {
    return null;
  }
  if (!raw || typeof raw !== "object" || !("__pk" in raw)) return null;
  const pk = (raw as Attachment).__pk;
  if (!pk || typeof pk.id !== "string") return null;
  cache.set(ws, raw as Attachment);
  return raw as Attachment;
}

function writeAttachment(ws: WebSocket, attachment: Attachment): void {
  rawSerialize(ws, attachment);
  cache.set(ws, attachment);
}

/** Whether `ws` was accepted by an agent (it carries the connection's id). @internal */
export function isAgentSocket(ws: WebSocket): boolean {
  return attachmentOf(ws) !== null;
}

/** Takes a freshly accepted socket into the framework: id, tags and uri go into its attachment. @internal */
export function initConnection(ws: WebSocket, id: string, tags: string[], uri: string): Connection {
  writeAttachment(ws, { __pk: { id, tags, uri }, __user: null });
  return asConnection(ws);
}

/** The `Connection` view of an agent's socket (idempotent; the fields read the attachment lazily). @internal */
export function asConnection(ws: WebSocket): Connection {
  if (wrapped.has(ws)) return ws as unknown as Connection;
  Object.defineProperties(ws, {
    id: { configurable: true, get: () => attachmentOf(ws)!.__pk.id },
    uri: { configurable: true, get: () => attachmentOf(ws)!.__pk.uri ?? null },
    server: { configurable: true, writable: true, value: "" },
    state: { configurable: true, get: () => attachmentOf(ws)!.__user ?? null },
    setState: {
      configurable: true,
      value(next: unknown) {
        const current = attachmentOf(ws)!;
        const state =
          typeof next === "function" ? (next as (p: unknown) => unknown)(current.__user ?? null) : next;
        writeAttachment(ws, { ...current, __user: state ?? null });
        return state ?? null;
      },
    },
    serializeAttachment: {
      configurable: true,
      value(value: unknown) {
        writeAttachment(ws, { ...attachmentOf(ws)!, __user: value ?? null });
      },
    },
    deserializeAttachment: {
      configurable: true,
      value: () => attachmentOf(ws)!.__user ?? null,
    },
  });
  wrapped.add(ws);
  return ws as unknown as Connection;
}

/** A framework flag of a connection. @internal */
export function connectionFlag(ws: WebSocket, flag: "readonly" | "noProtocol"): boolean {
  return attachmentOf(ws)?.__cf?.[flag] === true;
}

/** Sets or clears a framework flag of a connection (kept across hibernation). @internal */
export function setConnectionFlag(ws: WebSocket, flag: "readonly" | "noProtocol", on: boolean): void {
  const current = attachmentOf(ws);
  if (!current) throw new TypeError("Not a connection of this agent");
  const flags = { ...current.__cf };
  if (on) flags[flag] = true;
  else delete flags[flag];
  writeAttachment(ws, { ...current, __cf: flags });
}
