import { API_PREFIX, type Envelope } from "@cairn/api";
import {
  FakeClock,
  NonRetryableError,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
} from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import { type ApiOptions, createApi } from "../src/index.ts";

/** Runs one step that returns the params, then completes with them. */
export class Echo extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    return await step.do("echo", async () => event.payload);
  }
}

/** Waits for an event of type "go" and returns its payload. */
export class Waiter extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const e = await step.waitForEvent("approval", { type: "go", timeout: "1 day" });
    return { got: e.payload };
  }
}

let flakyFailures = 0;

/** Every kind of step: do (with retries, big and sensitive outputs), sleep and waitForEvent. */
export class Tour extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const hello = await step.do("hello", async () => ({ greeting: "hi", when: new Date(0) }));
    await step.do("flaky", { retries: { limit: 2, delay: "1 second", backoff: "constant" } }, async () => {
      if (flakyFailures++ % 2 === 0) throw new Error("flaked");
      return "steady";
    });
    await step.do("big", async () => "x".repeat(10_000));
    await step.do("secret", { sensitive: "output" }, async () => "s3cret");
    await step.sleep("nap", "1 hour");
    const approval = await step.waitForEvent("approval", { type: "approved", timeout: "1 day" });
    await step.do("hello", async () => "again");
    return { hello: hello.greeting, by: (approval.payload as { by: string }).by };
  }
}

/** Fails at once. */
export class Failing extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("boom", async () => {
      throw new NonRetryableError("kaput");
    });
  }
}

export interface Harness {
  cairn: Cairn;
  clock: FakeClock;
  app: ReturnType<typeof createApi>;
  idle: () => Promise<void>;
  advance: (ms: number) => Promise<void>;
  /** Change listeners currently registered on the runtime through `onChange`. */
  listeners: () => number;
  /** `app.request` under `/api/v1`, with JSON bodies encoded and the token added when given. */
  call: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<Response>;
  json: <T = any>(
    method: string,
    path: string,
    body?: unknown,
  ) => Promise<{ status: number; body: Envelope<T> }>;
  close: () => Promise<void>;
}

export async function harness(
  options: Partial<Omit<ApiOptions, "runtime">> & { worker?: boolean; maxConcurrent?: number } = {},
): Promise<Harness> {
  flakyFailures = 0;
  const clock = new FakeClock();
  const cairn = await createCairn({
    store: ":memory:",
    clock,
    defaultRetryDelay: "1 second",
    worker: options.worker,
    maxConcurrent: options.maxConcurrent,
    workflows: [
      { binding: "ECHO", name: "echo", class: Echo },
      { binding: "WAITER", name: "waiter", class: Waiter },
      { binding: "TOUR", name: "tour", class: Tour },
      { binding: "FAILING", name: "failing", class: Failing },
    ],
  });
  let count = 0;
  const runtime = cairn.runtime;
  const original = runtime.onChange.bind(runtime);
  runtime.onChange = (listener) => {
    count++;
    const off = original(listener);
    let done = false;
    return () => {
      if (!done) count--;
      done = true;
      return off();
    };
  };
  const { worker: _w, maxConcurrent: _m, ...apiOptions } = options;
  const app = createApi({ runtime, pollMs: 0, ...apiOptions });
  const idle = () => runtime.whenIdle();
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (options.token && !("authorization" in headers))
      (init.headers as Record<string, string>).authorization = `Bearer ${options.token}`;
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      if (!Object.keys(headers).some((k) => k.toLowerCase() === "content-type"))
        (init.headers as Record<string, string>)["content-type"] = "application/json";
    }
    return Promise.resolve(app.request(`${API_PREFIX}${path}`, init));
  };
  return {
    cairn,
    clock,
    app,
    idle,
    advance: (ms) => clock.advance(ms, idle),
    listeners: () => count,
    call,
    json: async (method, path, body) => {
      const res = await call(method, path, body);
      return { status: res.status, body: (await res.json()) as any };
    },
    close: () => cairn.close(),
  };
}

export interface SseMessage {
  event?: string;
  id?: string;
  data?: any;
  comment?: string;
}

/** Reads server-sent events from a response body, one message at a time. */
export function sseReader(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ended = false;
  return {
    /** The next message, or undefined when the stream ended. */
    async next(): Promise<SseMessage | undefined> {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const msg: SseMessage = {};
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) msg.comment = line.slice(1).trim();
            else if (line.startsWith("event: ")) msg.event = line.slice(7);
            else if (line.startsWith("id: ")) msg.id = line.slice(4);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length) msg.data = JSON.parse(data.join("\n"));
          return msg;
        }
        if (ended) return undefined;
        const { done, value } = await reader.read();
        if (done) ended = true;
        else buffer += decoder.decode(value, { stream: true });
      }
    },
    /** Reads messages (skipping comments) until `n` were read or the stream ended. */
    async take(n: number): Promise<SseMessage[]> {
      const out: SseMessage[] = [];
      while (out.length < n) {
        const m = await this.next();
        if (!m) break;
        if (m.comment === undefined || m.event) out.push(m);
      }
      return out;
    },
    /** Reads everything until the stream ends. */
    async rest(): Promise<SseMessage[]> {
      return this.take(Number.POSITIVE_INFINITY);
    },
    cancel: () => reader.cancel(),
  };
}
