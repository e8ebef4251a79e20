/**
 * A worker started while PostgreSQL cannot be reached waits for it: it retries with backoff, logging
 * each retry, and starts working once the server is there. The server "appears" as a TCP proxy to
 * the real one, opened on a free port a while after the worker started.
 */
import { createServer, type Server, Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene, Worker } from "./harness.ts";

const base = postgresUrl("the scale-out tests");
let scene: Scene | undefined;
let proxy: Server | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
  // Closing waits for the proxied connections, which end with the worker.
  await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
  proxy = undefined;
});

/** A port nothing listens on (taken from the system, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** Forwards connections on `port` to `target`. */
async function startProxy(port: number, target: URL): Promise<Server> {
  const server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(Number(target.port || 5432), target.hostname);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return server;
}

describe.skipIf(!base)("scale-out: a worker started before its database", () => {
  it("retries, logging each attempt, and runs work once PostgreSQL is reachable", async () => {
    scene = new Scene(base!);
    const port = await freePort();
    const url = new URL(scene.url);
    url.hostname = "127.0.0.1";
    url.port = String(port);
    const worker = new Worker({
      url: url.toString(),
      name: "early",
      callsPath: join(scene.dir, "early.calls"),
    });
    scene.workers.push(worker);

    // Nothing listens yet: the worker logs its retries and stays up.
    const retry = (e: { event: string; message?: string }) =>
      e.event === "engine-log" && /cannot reach PostgreSQL at 127\.0\.0\.1:\d+\//.test(e.message ?? "");
    await worker.waitFor(retry, { what: "a first retry line", timeoutMs: 30_000 });
    const first = worker.events.findIndex(retry);
    await worker.waitFor(retry, { from: first + 1, what: "a second retry line", timeoutMs: 30_000 });
    expect(worker.events.find(retry)?.message).toMatch(/ECONNREFUSED.*retrying in \d+ ms \(attempt 1\)/);

    proxy = await startProxy(port, new URL(base!));
    await worker.waitFor((e) => e.event === "ready", { what: "ready", timeoutMs: 30_000 });
    expect(
      worker.engineLogs.some((e) => /Cairn reached PostgreSQL at .* \(attempt \d+\)/.test(e.message)),
    ).toBe(true);

    await worker.request({
      cmd: "createEach",
      workflow: "three",
      items: [{ id: "after", params: { n: 1 } }],
    });
    expect(await scene.waitAllFinal(1, 30_000)).toEqual({ complete: 1 });
  });
});
