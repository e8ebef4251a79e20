/**
 * The host's side of the control socket: HTTP/1.1 over the jail's Unix socket, every request with
 * the sandbox's token. JSON requests and replies; commands and logs come back as NDJSON events.
 */
import { Agent, request } from "node:http";
import { SandboxError, type SandboxErrorCode } from "./errors.ts";

export interface ControlEvent {
  type: string;
  data?: string;
  pid?: number;
  exitCode?: number;
  duration?: number;
  timestamp?: string;
  processId?: string;
  /** A session's directory after its command (`complete` of a session `exec`). */
  cwd?: string;
  error?: { code: SandboxErrorCode; message: string };
}

export class ControlClient {
  readonly socketPath: string;
  readonly #token: string;
  readonly #agent: Agent;
  constructor(socketPath: string, token: string) {
    this.socketPath = socketPath;
    this.#token = token;
    this.#agent = new Agent({ keepAlive: true, maxSockets: 64 });
  }

  #open(method: string, path: string, body?: unknown, token = this.#token) {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          agent: this.#agent,
          headers: {
            authorization: `Bearer ${token}`,
            ...(text !== undefined
              ? { "content-type": "application/json", "content-length": Buffer.byteLength(text) }
              : {}),
          },
        },
        resolve,
      );
      req.on("error", (e) =>
        reject(
          new SandboxError("sandbox.not_running", `the sandbox's supervisor does not answer: ${e.message}`),
        ),
      );
      req.end(text);
    });
  }

  /** A JSON call; a supervisor error becomes a `SandboxError` with its code. */
  async call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
    const res = await this.#open(method, path, body, token);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const value = text ? JSON.parse(text) : undefined;
    if ((res.statusCode ?? 500) >= 400) {
      const err = value?.error ?? { code: "sandbox.error", message: text };
      throw new SandboxError(err.code, err.message);
    }
    return value;
  }

  /** Raw status of a call (for tests of the token check). */
  async status(method: string, path: string, token: string): Promise<number> {
    const res = await this.#open(method, path, undefined, token);
    res.resume();
    return res.statusCode ?? 0;
  }

  /** An NDJSON stream of events; an `error` event or an error reply throws. */
  async *events(path: string, body: unknown, signal?: AbortSignal): AsyncGenerator<ControlEvent> {
    const res = await this.#open("POST", path, body);
    if ((res.statusCode ?? 500) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const v = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      throw new SandboxError(v.error?.code ?? "sandbox.error", v.error?.message ?? "control call failed");
    }
    const onAbort = () => res.destroy();
    signal?.addEventListener("abort", onAbort);
    let buf = "";
    try {
      res.setEncoding("utf8");
      for await (const chunk of res) {
        buf += chunk as string;
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line) {
            const ev = JSON.parse(line) as ControlEvent;
            if (ev.type === "error" && ev.error) throw new SandboxError(ev.error.code, ev.error.message);
            yield ev;
          }
          nl = buf.indexOf("\n");
        }
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      res.destroy();
    }
  }

  /**
   * `exec` with a streamed stdin (`/exec-io`): the request body is the command's stdin (ended when
   * `stdin` ends, at once without one); the reply is its NDJSON events, output as base64 (`b64`).
   */
  async *execIo(
    options: Record<string, unknown>,
    stdin: AsyncIterable<Uint8Array> | undefined,
    signal?: AbortSignal,
  ): AsyncGenerator<ControlEvent & { b64?: string }> {
    const req = request({
      socketPath: this.socketPath,
      path: "/exec-io",
      method: "POST",
      agent: this.#agent,
      headers: {
        authorization: `Bearer ${this.#token}`,
        "x-cairn-exec": Buffer.from(JSON.stringify(options)).toString("base64url"),
        "transfer-encoding": "chunked",
      },
    });
    const res = new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.on("error", (e) =>
        reject(
          new SandboxError("sandbox.not_running", `the sandbox's supervisor does not answer: ${e.message}`),
        ),
      );
    });
    res.catch(() => {});
    req.flushHeaders();
    void (async () => {
      try {
        if (stdin)
          for await (const chunk of stdin) {
            if (req.destroyed) return;
            if (!req.write(chunk)) await new Promise((r) => req.once("drain", r));
          }
      } catch {}
      if (!req.destroyed) req.end();
    })();
    const r = await res;
    const onAbort = () => r.destroy();
    signal?.addEventListener("abort", onAbort);
    let buf = "";
    try {
      if ((r.statusCode ?? 500) >= 400) {
        const chunks: Buffer[] = [];
        for await (const c of r) chunks.push(c as Buffer);
        const v = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
        throw new SandboxError(v.error?.code ?? "sandbox.error", v.error?.message ?? "control call failed");
      }
      r.setEncoding("utf8");
      for await (const chunk of r) {
        buf += chunk as string;
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line) {
            const ev = JSON.parse(line) as ControlEvent & { b64?: string };
            if (ev.type === "error" && ev.error) throw new SandboxError(ev.error.code, ev.error.message);
            yield ev;
          }
          nl = buf.indexOf("\n");
        }
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      r.destroy();
      req.destroy();
    }
  }

  /** Sends an HTTP request to a port inside the jail (through the supervisor). */
  async proxy(
    port: number,
    path: string,
    init: { method: string; headers: Record<string, string>; body?: Buffer },
  ) {
    const res = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path: `/proxy/${port}${path.startsWith("/") ? path : `/${path}`}`,
          method: init.method,
          agent: this.#agent,
          headers: { ...init.headers, authorization: `Bearer ${this.#token}` },
        },
        resolve,
      );
      req.on("error", (e) => reject(new SandboxError("sandbox.not_running", e.message)));
      req.end(init.body);
    });
    return res;
  }

  close(): void {
    this.#agent.destroy();
  }
}
