import { afterEach, describe, expect, it } from "vitest";
import { atApprovalWait, copyStarter, makeProject, removeProject, waitFor } from "../fixtures/helpers.ts";
import * as stub from "../fixtures/stub-server.ts";
import { type HostedProject, hostProject, objectForwardFromEnv } from "./host.ts";
import { createLogger } from "./logger.ts";

// The real @cairn/server when it exports createApi/startServer; otherwise the stub (with a printed reason).
const real = (await import("@cairn/server").catch(() => ({}))) as Partial<typeof stub>;
const hasRealServer = typeof real.startServer === "function" && typeof real.createApi === "function";
if (!hasRealServer)
  console.warn(
    "host.test: @cairn/server does not export startServer/createApi yet; the real-server test is skipped",
  );
const server = { startServer: stub.startServer, createApi: stub.createApi };

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function host(dir: string, options: Partial<Parameters<typeof hostProject>[1]> = {}) {
  const hosted = await hostProject(dir, { port: 0, ...server, ...options });
  cleanup.push(() => hosted.close());
  return hosted;
}

const post = (url: string, body?: unknown) =>
  fetch(url, {
    method: "POST",
    ...(body ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {}),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
const get = (url: string) =>
  fetch(url).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

/** Drives the starter example over HTTP: create, wait for the approval wait, approve, complete. */
async function starterRoundTrip(hosted: HostedProject, headers: Record<string, string> = {}) {
  const created = await post(`${hosted.url}/`, { customer: "Ada", amount: 250 });
  expect(created.status).toBe(200);
  const { id } = created.body;
  expect(typeof id).toBe("string");
  expect(["queued", "running", "waiting"]).toContain(created.body.status.status);
  // The sleep and the approval wait both read "waiting": wait for the event wait itself.
  await waitFor(() => atApprovalWait(hosted.cairn.store, id), "the approval wait");
  const approved = await post(`${hosted.url}/approve?instanceId=${id}&by=grace`);
  expect(approved.status).toBe(200);
  const done = await waitFor(async () => {
    const { body } = await get(`${hosted.url}/?instanceId=${id}`);
    return body.status.status === "complete" ? body : undefined;
  }, "completion");
  expect(done.status.output).toEqual({
    message: "Hello, Ada: receipt for 250",
    chargeId: `ch_${id.slice(0, 8)}`,
    approvedBy: "grace",
  });
  const api = await fetch(`${hosted.url}/api/v1/workflows/my-workflow/instances/${id}`, { headers });
  expect(api.status).toBe(200);
  return id as string;
}

describe("hostProject", () => {
  it("serves the starter's fetch handler and the API on one port, end to end", async () => {
    const dir = copyStarter();
    cleanup.push(() => removeProject(dir));
    const hosted = await host(dir);
    expect(hosted.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(hosted.project.name).toBe("cloudflare-starter");
    await starterRoundTrip(hosted);
    expect((await fetch(`${hosted.url}/nowhere`)).status).toBe(404);
  }, 30_000);

  it.skipIf(!hasRealServer)(
    "works with the real @cairn/server (createApi + startServer), with a token",
    async () => {
      const dir = copyStarter();
      cleanup.push(() => removeProject(dir));
      const hosted = await host(dir, {
        startServer: real.startServer as never,
        createApi: real.createApi as never,
        token: "s3cret",
      });
      const id = await starterRoundTrip(hosted, { authorization: "Bearer s3cret" });
      expect((await fetch(`${hosted.url}/api/v1/workflows/my-workflow/instances/${id}`)).status).toBe(401);
    },
    30_000,
  );

  it("gives the fetch handler env (bindings + vars) and ctx; a throwing handler gets a 500", async () => {
    const dir = makeProject({
      "wrangler.json": JSON.stringify({
        main: "index.ts",
        workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow" }],
        vars: { COLOR: "red", LIMIT: 3 },
      }),
      "index.ts": `
        import { WorkflowEntrypoint, env as globalEnv } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint { async run() { return 1; } }
        let waited = 0;
        export default {
          async fetch(request: Request, env: any, ctx: any) {
            if (new URL(request.url).pathname === "/boom") throw new Error("kaboom");
            ctx.waitUntil(new Promise((r) => setTimeout(r, 10)).then(() => waited++));
            ctx.passThroughOnException();
            return Response.json({
              keys: Object.keys(env).sort(), flow: typeof env.FLOW.create, color: env.COLOR, limit: env.LIMIT,
              same: globalEnv.COLOR === env.COLOR, waited,
            });
          },
        };
      `,
    });
    cleanup.push(() => removeProject(dir));
    const logs: string[] = [];
    const hosted = await host(dir, { log: (m) => logs.push(m) });
    expect(await get(`${hosted.url}/`)).toEqual({
      status: 200,
      body: {
        keys: ["COLOR", "FLOW", "LIMIT"],
        flow: "function",
        color: "red",
        limit: 3,
        same: true,
        waited: 0,
      },
    });
    const boom = await fetch(`${hosted.url}/boom`);
    expect(boom.status).toBe(500);
    expect(await boom.text()).toContain("kaboom");
    expect(logs).toEqual(["GET /boom: the fetch handler threw"]);
  });

  it("cairn dev's /__scheduled?cron= calls the Worker's scheduled() with controller.cron, env and ctx", async () => {
    const dir = makeProject({
      "wrangler.json": JSON.stringify({
        main: "index.ts",
        workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow", schedules: "0 * * * *" }],
        triggers: { crons: ["*/5 * * * *"] },
        vars: { COLOR: "red" },
      }),
      "index.ts": `
        import { WorkflowEntrypoint } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint { async run() { return 1; } }
        export const calls: unknown[] = [];
        export default {
          async fetch() { return Response.json(calls); },
          async scheduled(controller: any, env: any, ctx: any) {
            ctx.waitUntil(Promise.resolve());
            calls.push({ cron: controller.cron, type: controller.type, time: typeof controller.scheduledTime, color: env.COLOR });
          },
        };
      `,
    });
    cleanup.push(() => removeProject(dir));
    const devLogger = createLogger({ format: "text", write: () => {} });
    const hosted = await host(dir, { devLogger });
    expect(hosted.project.crons).toEqual(["*/5 * * * *"]);
    expect(hosted.project.workflows[0]!.schedules).toEqual(["0 * * * *"]);
    expect(hosted.cairn.runtime.schedules("flow")[0]!.cron).toBe("0 * * * *");
    const fired = await fetch(`${hosted.url}/__scheduled?cron=${encodeURIComponent("*/5 * * * *")}`);
    expect(fired.status).toBe(200);
    expect(await fired.text()).toBe('Ran scheduled event for cron "*/5 * * * *"\n');
    expect(await get(`${hosted.url}/`)).toEqual({
      status: 200,
      body: [{ cron: "*/5 * * * *", type: "scheduled", time: "number", color: "red" }],
    });
  });

  it("refuses triggers.crons without a scheduled() handler", async () => {
    const dir = makeProject({
      "wrangler.json": JSON.stringify({
        main: "index.ts",
        workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow" }],
        triggers: { crons: ["*/5 * * * *"] },
      }),
      "index.ts": `
        import { WorkflowEntrypoint } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint { async run() { return 1; } }
      `,
    });
    cleanup.push(() => removeProject(dir));
    await expect(host(dir)).rejects.toThrow(
      "index.ts: wrangler.json has triggers.crons, but the default export has no scheduled(controller, env, ctx) handler",
    );
  });

  it("exports of cloudflare:workers calls the Worker's own entrypoints in-process", async () => {
    const dir = makeProject({
      "wrangler.json": JSON.stringify({
        main: "index.ts",
        workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow" }],
      }),
      "index.ts": `
        import { WorkflowEntrypoint, WorkerEntrypoint, exports } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint { async run() { return 1; } }
        export class Greeter extends WorkerEntrypoint {
          greet(name: string) { return "hi " + name + " (" + typeof this.env.FLOW + ")"; }
        }
        export default {
          async fetch(request: Request) {
            if (new URL(request.url).pathname === "/inner") return new Response("inner " + request.method);
            const inner = await exports.default.fetch("https://self/inner", { method: "POST" });
            return Response.json({ inner: await inner.text(), greeting: await exports.Greeter.greet("ada") });
          },
        };
      `,
    });
    cleanup.push(() => removeProject(dir));
    const hosted = await host(dir);
    expect(await get(`${hosted.url}/`)).toEqual({
      status: 200,
      body: { inner: "inner POST", greeting: "hi ada (object)" },
    });
  });

  it("keeps state in <dir>/.cairn/cairn.db: a closed host resumes unfinished instances at the next start", async () => {
    const dir = copyStarter();
    cleanup.push(() => removeProject(dir));
    const first = await hostProject(dir, { port: 0, ...server });
    const { body } = await post(`${first.url}/`, { customer: "Lin", amount: 500 });
    // Close during the retry backoff or the sleep, before the approval wait.
    await waitFor(async () => {
      const s = (await get(`${first.url}/?instanceId=${body.id}`)).body.status.status;
      return s === "waiting" ? true : undefined;
    }, "waiting");
    expect(await atApprovalWait(first.cairn.store, body.id)).toBeUndefined();
    await first.close();
    const second = await host(dir);
    expect(second.project.storePath).toBe(`${dir}/.cairn/cairn.db`);
    await waitFor(() => atApprovalWait(second.cairn.store, body.id), "the approval wait after restart");
    await post(`${second.url}/approve?instanceId=${body.id}`);
    const done = await waitFor(async () => {
      const s = (await get(`${second.url}/?instanceId=${body.id}`)).body.status;
      return s.status === "complete" ? s : undefined;
    }, "completion after restart");
    expect(done.output.message).toBe("Hello, Lin: receipt for 500");
  }, 30_000);

  it("refuses to start without the server functions", async () => {
    await expect(hostProject(".", {} as never)).rejects.toThrow(/needs startServer and createApi/);
  });
});

describe("objectForwardFromEnv", () => {
  it("reads CAIRN_OBJECTS_FORWARD, _LISTEN and _URL, and names the variable that is wrong", () => {
    expect(objectForwardFromEnv({})).toEqual({});
    expect(objectForwardFromEnv({ CAIRN_OBJECTS_FORWARD: "off" })).toEqual({ objectForward: false });
    expect(
      objectForwardFromEnv({
        CAIRN_OBJECTS_FORWARD_LISTEN: "0.0.0.0:9100",
        CAIRN_OBJECTS_FORWARD_URL: "http://10.0.0.5:9100",
      }),
    ).toEqual({ objectForward: { host: "0.0.0.0", port: 9100, advertise: "http://10.0.0.5:9100" } });
    expect(objectForwardFromEnv({ CAIRN_OBJECTS_FORWARD_LISTEN: "[::1]:0" })).toEqual({
      objectForward: { host: "::1", port: 0 },
    });
    expect(() => objectForwardFromEnv({ CAIRN_OBJECTS_FORWARD: "maybe" })).toThrow(
      'CAIRN_OBJECTS_FORWARD must be "on" or "off", not "maybe"',
    );
    expect(() => objectForwardFromEnv({ CAIRN_OBJECTS_FORWARD_LISTEN: "9100" })).toThrow(
      "CAIRN_OBJECTS_FORWARD_LISTEN must be <host>:<port>",
    );
    expect(() => objectForwardFromEnv({ CAIRN_OBJECTS_FORWARD_LISTEN: "h:99999" })).toThrow(
      'CAIRN_OBJECTS_FORWARD_LISTEN must be <host>:<port> (a port from 0 to 65535), e.g. 0.0.0.0:9100, not "h:99999"',
    );
    expect(() => objectForwardFromEnv({ CAIRN_OBJECTS_FORWARD_URL: "10.0.0.5" })).toThrow(
      'CAIRN_OBJECTS_FORWARD_URL must be the http:// URL other workers reach this one at, e.g. http://10.0.0.5:9100, not "10.0.0.5"',
    );
  });
});
