import { afterEach, describe, expect, it } from "vitest";
import { makeProject, removeProject, waitFor } from "../fixtures/helpers.ts";
import * as stub from "../fixtures/stub-server.ts";
import { hostProjectInWorker } from "./worker-host.ts";

const server = { startServer: stub.startServer, createApi: stub.createApi };
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const CONFIG = `
  import { WorkflowEntrypoint } from "cairnjs";

  class Waits extends WorkflowEntrypoint {
    async run(_event, step) {
      const e = await step.waitForEvent("go", { type: "go", timeout: "1 minute" });
      return e.payload;
    }
  }
  class Slow extends WorkflowEntrypoint {
    async run(_event, step) {
      await step.do("slow", async () => { await new Promise((r) => setTimeout(r, 300)); return 1; });
      return step.do("after", async () => 2);
    }
  }

  export default {
    name: "threads",
    workflows: [
      { binding: "WAITS", name: "waits", class: Waits },
      { binding: "SLOW", name: "slow", class: Slow },
    ],
    hooks: {
      beforeCreate({ id }) {
        if (id.startsWith("refused")) throw new Error("refused " + id);
      },
    },
    async fetch(request, env) {
      const url = new URL(request.url);
      if (url.pathname === "/create") return Response.json({ id: (await env.WAITS.create()).id });
      if (url.pathname === "/crash") {
        setTimeout(() => { throw new Error("boom in the project"); });
        return new Response("crashing");
      }
      if (url.pathname === "/crash-before-answer") {
        setTimeout(() => { throw new Error("boom in the project"); });
        await new Promise((r) => setTimeout(r, 60_000));
        return new Response("never");
      }
      const body = await request.text();
      const chunks = [request.method + " ", body];
      const stream = new ReadableStream({
        pull(c) { const next = chunks.shift(); next === undefined ? c.close() : c.enqueue(new TextEncoder().encode(next)); },
      });
      return new Response(stream, { status: 201, headers: { "x-echo": request.headers.get("x-in") ?? "" } });
    },
  };
`;

async function serve(onCrash?: (e: unknown) => void) {
  const dir = makeProject({ "cairn.config.ts": CONFIG });
  cleanup.push(() => removeProject(dir));
  const served = await hostProjectInWorker(dir, { port: 0, ...server, ...(onCrash ? { onCrash } : {}) });
  cleanup.push(() => served.close());
  return served;
}

const statusOf = (served: Awaited<ReturnType<typeof serve>>, workflow: string, id: string) =>
  served.cairn.runtime.status(workflow, id);

describe("hostProjectInWorker", () => {
  it("describes the project, whose workflows run in the worker thread", async () => {
    const served = await serve();
    expect(served.project.name).toBe("threads");
    expect(served.project.workflows.map((w) => [w.name, w.binding, w.classOwnName])).toEqual([
      ["waits", "WAITS", "Waits"],
      ["slow", "SLOW", "Slow"],
    ]);
    expect(served.cairn.runtime.workflows.map((w) => w.class.name)).toEqual(["Waits", "Slow"]);
  });

  it("creates and sends events from the API's side; the worker thread runs them, and its changes are announced", async () => {
    const served = await serve();
    const seen: string[] = [];
    served.cairn.runtime.onChange((_w, id, status) => status && seen.push(`${id} ${status}`));
    const instance = await (served.cairn.env.WAITS as any).create({ id: "w-1" });
    await waitFor(
      async () => ((await served.cairn.store.steps.list("waits", "w-1")).length > 0 ? true : undefined),
      "the event wait",
    );
    await instance.sendEvent({ type: "go", payload: { n: 1 } });
    expect(
      await waitFor(async () => {
        const s = await instance.status();
        return s.status === "complete" ? s : undefined;
      }, "completion"),
    ).toEqual({ status: "complete", output: { n: 1 } });
    // "complete" is stored by the worker thread's runtime, and announced to this one.
    await waitFor(() => (seen.includes("w-1 complete") ? true : undefined), "the announced completion");
    expect(seen[0]).toBe("w-1 queued");
  });

  it("pauses a running instance from the API's side: the run in the worker thread stops after its step", async () => {
    const served = await serve();
    await (served.cairn.env.SLOW as any).create({ id: "s-1" });
    await waitFor(
      async () => ((await statusOf(served, "slow", "s-1")).status === "running" ? true : undefined),
      "the run",
    );
    await served.cairn.runtime.pause("slow", "s-1");
    expect(
      await waitFor(async () => {
        const s = await statusOf(served, "slow", "s-1");
        return s.status === "paused" ? s : undefined;
      }, "the pause"),
    ).toEqual({ status: "paused" });
    const steps = await served.cairn.store.steps.list("slow", "s-1");
    expect(steps.map((s) => [s.name, s.status])).toEqual([["slow", "succeeded"]]);
    await served.cairn.runtime.resume("slow", "s-1");
    expect(
      await waitFor(async () => {
        const s = await statusOf(served, "slow", "s-1");
        return s.status === "complete" ? s : undefined;
      }, "completion after resume"),
    ).toEqual({ status: "complete", output: 2 });
  });

  it("runs the project's beforeCreate hook, in its thread, for creates made on the API's side", async () => {
    const served = await serve();
    await expect((served.cairn.env.WAITS as any).create({ id: "refused-1" })).rejects.toThrow(
      "refused refused-1",
    );
    await expect(served.cairn.runtime.instance("waits", "refused-1")).rejects.toThrow("instance.not_found");
    await (served.cairn.env.WAITS as any).create({ id: "fine-1" });
    expect((await served.cairn.runtime.instance("waits", "fine-1")).id).toBe("fine-1");
  });

  it("sends other requests to the project's fetch handler in its thread, body and headers both ways", async () => {
    const served = await serve();
    const echoed = await fetch(`${served.url}/echo`, {
      method: "POST",
      body: "hello",
      headers: { "x-in": "abc" },
    });
    expect(echoed.status).toBe(201);
    expect(echoed.headers.get("x-echo")).toBe("abc");
    expect(await echoed.text()).toBe("POST hello");
    // An instance created by the fetch handler (the worker thread's bindings) is seen by the API.
    const { id } = (await (await fetch(`${served.url}/create`)).json()) as { id: string };
    expect((await served.cairn.runtime.instance("waits", id)).workflow).toBe("waits");
    const api = await fetch(`${served.url}/api/v1/workflows/waits/instances/${id}`);
    expect(api.status).toBe(200);
  });

  it.each([
    ["/crash", ["crashing", "connection cut"]],
    ["/crash-before-answer", ["connection cut"]],
  ])("reports an uncaught error in the project's thread (%s)", async (path, answers) => {
    let crashed: unknown;
    const served = await serve((e) => (crashed = e));
    // The thread may die before or after the response's body is relayed: the body arrives whole,
    // or the connection is cut; never a hang.
    const answer = await fetch(`${served.url}${path}`)
      .then((r) => r.text())
      .catch(() => "connection cut");
    expect(answers).toContain(answer);
    await waitFor(() => crashed, "the crash");
    expect((crashed as Error).message).toBe("boom in the project");
    // The API's side still answers reads; creates need the hook in the stopped thread.
    expect((await served.cairn.store.instances.list({ workflow: "waits", limit: 10 })).items).toEqual([]);
    await expect((served.cairn.env.WAITS as any).create({ id: "after-crash" })).rejects.toThrow(
      "the project's thread has stopped",
    );
  });

  it("runs a project whose store is in memory in one thread (a second thread could not open it)", async () => {
    const dir = makeProject({
      "cairn.config.ts": `
        import { WorkflowEntrypoint } from "cairnjs";
        class Quick extends WorkflowEntrypoint {
          async run(_event, step) { return step.do("one", async () => "done"); }
        }
        export default { store: ":memory:", workflows: [{ binding: "QUICK", name: "quick", class: Quick }] };
      `,
    });
    cleanup.push(() => removeProject(dir));
    for (const store of [undefined, ":memory:"]) {
      const served = await hostProjectInWorker(dir, { port: 0, ...server, ...(store ? { store } : {}) });
      cleanup.push(() => served.close());
      const instance = await (served.cairn.env.QUICK as any).create();
      expect(
        await waitFor(async () => {
          const s = await instance.status();
          return s.status === "complete" ? s : undefined;
        }, "completion"),
      ).toEqual({ status: "complete", output: "done" });
      await served.close();
    }
  });

  it("fails to start with the project's error when it cannot be loaded", async () => {
    const dir = makeProject({ "cairn.config.ts": "export default { workflows: 3 };" });
    cleanup.push(() => removeProject(dir));
    await expect(hostProjectInWorker(dir, { port: 0, ...server })).rejects.toThrow(
      "cairn.config.ts: workflows must be an array of { binding, name, class }",
    );
  });
});

describe("schedules with the project in a worker thread", () => {
  it("the API's runtime knows the schedules; cairn dev's /__scheduled reaches scheduled() in the thread", async () => {
    const dir = makeProject({
      "wrangler.json": JSON.stringify({
        main: "index.ts",
        workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow", schedules: ["0 * * * *"] }],
        triggers: { crons: ["*/5 * * * *"] },
      }),
      "index.ts": `
        import { WorkflowEntrypoint } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint { async run() { return 1; } }
        const calls: string[] = [];
        export default {
          async fetch() { return Response.json(calls); },
          async scheduled(controller: any) { calls.push(controller.cron); },
        };
      `,
    });
    cleanup.push(() => removeProject(dir));
    const devLogger = (await import("./logger.ts")).createLogger({ format: "text", write: () => {} });
    const served = await hostProjectInWorker(dir, { port: 0, ...server, devLogger });
    cleanup.push(() => served.close());
    expect(served.cairn.runtime.schedules("flow").map((s) => s.cron)).toEqual(["0 * * * *"]);
    const fired = await fetch(`${served.url}/__scheduled?cron=${encodeURIComponent("*/5 * * * *")}`);
    expect(fired.status).toBe(200);
    expect(await (await fetch(`${served.url}/`)).json()).toEqual(["*/5 * * * *"]);
  });
});
