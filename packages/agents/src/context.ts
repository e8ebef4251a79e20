import { AsyncLocalStorage } from "node:async_hooks";
import type { Connection } from "./connection.ts";

/** An inbound email as an agent's `onEmail` sees it (see email.ts). */
export interface AgentEmailLike {
  from: string;
  to: string;
}

/** What `getCurrentAgent()` returns inside a handler. */
export interface AgentContext<A = unknown> {
  agent: A | undefined;
  connection: Connection | undefined;
  request: Request | undefined;
  email: AgentEmailLike | undefined;
}

/** The handler context of the agent code now running. @internal */
export const agentContext: AsyncLocalStorage<AgentContext> = new AsyncLocalStorage<AgentContext>();

/** Runs `fn` as part of a handler of `ctx.agent`. @internal */
export function runInContext<T>(ctx: AgentContext, fn: () => T): T {
  return agentContext.run(ctx, fn);
}

/**
 * The agent whose handler is running, with the connection, request or email it is handling (each
 * undefined when not applicable, all undefined outside an agent), as upstream's `getCurrentAgent()`.
 */
export function getCurrentAgent<A = unknown>(): AgentContext<A> {
  const store = agentContext.getStore();
  if (!store) return { agent: undefined, connection: undefined, request: undefined, email: undefined };
  return store as AgentContext<A>;
}
