import type { DurableObjectState } from "./state.ts";
import type { WebSocket } from "./websocket.ts";

/**
 * The base class of a Durable Object, compatible with `import { DurableObject } from
 * "cloudflare:workers"`: the host constructs it with `(ctx, env)` when the object is first needed
 * (and again after it was unloaded), and keeps `this.ctx` and `this.env`.
 *
 * Any public method is callable through a stub (RPC). Optional handlers: `fetch(request)`,
 * `alarm({ retryCount, isRetry })`, `webSocketMessage(ws, message)`, `webSocketClose(ws, code,
 * reason, wasClean)`, `webSocketError(ws, error)`.
 *
 * ```ts
 * export class Counter extends DurableObject {
 *   increment(by = 1): number {
 *     const n = (this.ctx.storage.kv.get<number>("n") ?? 0) + by;
 *     this.ctx.storage.kv.put("n", n);
 *     return n;
 *   }
 * }
 * ```
 */
export abstract class DurableObject<Env = unknown, Props = unknown> {
  protected ctx: DurableObjectState<Props>;
  protected env: Env;

  constructor(ctx: DurableObjectState<Props>, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }

  /** Optional handlers, as in Cloudflare's declaration of the class. */
  fetch?(request: Request): Response | Promise<Response>;
  alarm?(alarmInfo?: { retryCount: number; isRetry: boolean }): void | Promise<void>;
  webSocketMessage?(ws: WebSocket, message: string | ArrayBuffer): void | Promise<void>;
  webSocketClose?(ws: WebSocket, code: number, reason: string, wasClean: boolean): void | Promise<void>;
  webSocketError?(ws: WebSocket, error: unknown): void | Promise<void>;
}

/** A class the host can construct as a Durable Object (extending `DurableObject` or not). */
export type DurableObjectClass = new (ctx: DurableObjectState<any>, env: any) => object;

/** Whether `cls` extends a class named `DurableObject` (Cairn's, or a copy bundled into the project). */
export function isDurableObjectClass(cls: unknown): cls is DurableObjectClass {
  if (typeof cls !== "function" || typeof cls.prototype !== "object") return false;
  for (let p = Object.getPrototypeOf(cls); typeof p === "function"; p = Object.getPrototypeOf(p))
    if (p.name === "DurableObject") return true;
  return false;
}
