import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeProject, removeProject, waitFor } from "../fixtures/helpers.ts";
import * as stub from "../fixtures/stub-server.ts";
import { hostProject } from "./host.ts";
import { runStart } from "./start.ts";

const server = { startServer: stub.startServer, createApi: stub.createApi };
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A project whose "slow" step takes `ms` and logs its start and end to trace.log. */
function slowProject(ms: number) {
  const dir = makeProject({
    "wrangler.json": JSON.stringify({
      name: "slow",
      main: "index.ts",
      workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow" }],
    }),
    "index.ts": `
      import { appendFileSync } from "node:fs";
      import { WorkflowEntrypoint, type WorkflowStep } from "cloudflare:workers";
      const trace = (line: string) => appendFileSync(new URL("./trace.log", import.meta.url), line + "\\n");
      export class Flow extends WorkflowEntrypoint {
        async run(_event: unknown, step: WorkflowStep) {
          const slow = await step.do("slow", async () => {
            trace("start");
            await new Promise((r) => setTimeout(r, ${ms}));
            trace("end");
            return "slow done";
          });
          const next = await step.do("next", async () => { trace("next"); return "next done"; });
          return [slow, next];
        }
      }
    `,
  });
  cleanup.push(() => removeProject(dir));
  return dir;
}
const trace = (dir: string) => {
  try {
    return readFileSync(join(dir, "trace.log"), "utf8").trim().split("\n");
  } catch {
    return [];
  }
};

async function finish(dir: string, id: string) {
  const again = await hostProject(dir, { port: 0, ...server });
  cleanup.push(() => again.close());
  const instance = await (again.cairn.env.FLOW as any).get(id);
  return waitFor(async () => {
    const s = await instance.status();
    return s.status === "complete" ? s.output : undefined;
  }, "completion after restart");
}

describe("runStart", () => {
  it("shuts down gracefully: a step in flight finishes and is stored; the next step waits for the next start", async () => {
    const dir = slowProject(600);
    const lines: string[] = [];
    const started = await runStart({
      dir,
      port: 0,
      ...server,
      handleSignals: false,
      log: (l) => lines.push(l),
    });
    expect(lines).toEqual([`Cairn: slow listening on ${started.url}`]);
    const instance = await (started.cairn.env.FLOW as any).create();
    await waitFor(() => (trace(dir).includes("start") ? true : undefined), "the slow step to start");
    await started.shutdown();
    await started.closed;
    expect(lines.slice(1)).toEqual([
      "Cairn: shutting down (waiting up to 10000 ms for running steps)",
      "Cairn: stopped",
    ]);
    expect(trace(dir)).toEqual(["start", "end"]);
    await expect(fetch(`${started.url}/`)).rejects.toThrow();

    expect(await finish(dir, instance.id)).toEqual(["slow done", "next done"]);
    expect(trace(dir)).toEqual(["start", "end", "next"]);
  });

  it("gives up on steps that outlast the deadline; they run again at the next start", async () => {
    const dir = slowProject(3000);
    const started = await runStart({
      dir,
      port: 0,
      ...server,
      handleSignals: false,
      shutdownTimeoutMs: 100,
      log: () => {},
    });
    const instance = await (started.cairn.env.FLOW as any).create();
    await waitFor(() => (trace(dir).includes("start") ? true : undefined), "the slow step to start");
    await started.shutdown();
    expect(trace(dir)).toEqual(["start"]);
    expect(await finish(dir, instance.id)).toEqual(["slow done", "next done"]);
    expect(trace(dir).filter((l) => l === "start")).toHaveLength(2);
  }, 30_000);

  it("stops the project's thread when a step still blocks it past the deadline", async () => {
    const dir = makeProject({
      "wrangler.json": JSON.stringify({
        name: "spin",
        main: "index.ts",
        workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow" }],
      }),
      "index.ts": `
        import { appendFileSync } from "node:fs";
        import { WorkflowEntrypoint, type WorkflowStep } from "cloudflare:workers";
        const trace = (line: string) => appendFileSync(new URL("./trace.log", import.meta.url), line + "\\n");
        export class Flow extends WorkflowEntrypoint {
          async run(_event: unknown, step: WorkflowStep) {
            return step.do("spin", async () => {
              trace("start");
              const end = Date.now() + 6000;
              while (Date.now() < end) {}
              trace("end");
              return "spun";
            });
          }
        }
      `,
    });
    cleanup.push(() => removeProject(dir));
    const started = await runStart({
      dir,
      port: 0,
      ...server,
      handleSignals: false,
      shutdownTimeoutMs: 100,
      log: () => {},
    });
    await (started.cairn.env.FLOW as any).create();
    await waitFor(() => (trace(dir).includes("start") ? true : undefined), "the busy step to start");
    await started.shutdown();
    // Shut down while the step still spun: its thread was stopped, so it never wrote "end".
    expect(trace(dir)).toEqual(["start"]);
  }, 30_000);

  it("shuts down on SIGTERM", async () => {
    const dir = slowProject(10);
    const listeners = process.listenerCount("SIGTERM");
    const started = await runStart({ dir, port: 0, ...server, log: () => {} });
    expect(process.listenerCount("SIGTERM")).toBe(listeners + 1);
    cleanup.push(() => started.shutdown());
    process.emit("SIGTERM", "SIGTERM");
    await started.closed;
    expect(process.listenerCount("SIGTERM")).toBe(listeners);
  });
});

describe("runStart: metrics of the project's thread (SPEC §12.3)", () => {
  it("relays what the thread's runs stored and cost to the API's runtime, and reports limits.cpu_ms", async () => {
    const dir = makeProject({
      "wrangler.json": JSON.stringify({
        name: "costs",
        main: "index.ts",
        limits: { cpu_ms: 1234 },
        workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow" }],
      }),
      "index.ts": `
        import { WorkflowEntrypoint, type WorkflowStep } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint {
          async run(_event: unknown, step: WorkflowStep) {
            return await step.do("one", async () => 1);
          }
        }
      `,
    });
    cleanup.push(() => removeProject(dir));
    const started = await runStart({ dir, port: 0, ...server, handleSignals: false, log: () => {} });
    cleanup.push(() => started.shutdown());
    const seen: string[] = [];
    const ran: string[] = [];
    const transactions: string[] = [];
    started.cairn.runtime.addTelemetry({
      stored: (entries, instance) =>
        seen.push(...entries.map((e) => `${e.type}${instance ? " (with createdAt)" : ""}`)),
      ran: (workflow) => ran.push(workflow),
      storeTransaction: (store, ms) => transactions.push(`${store} ${ms >= 0}`),
    });
    expect(started.cairn.runtime.cpuLimitMs).toBe(1234);
    const instance = await (started.cairn.env.FLOW as any).create();
    await waitFor(
      async () => ((await instance.status()).status === "complete" ? true : undefined),
      "completion",
    );
    await waitFor(() => (ran.length > 0 ? true : undefined), "the run's cost");
    // Created by the API's runtime, run by the thread's: both reach the API's observers.
    expect(seen).toContain("workflow_queued");
    expect(seen).toContain("attempt_completed");
    expect(seen).toContain("workflow_completed (with createdAt)");
    expect(ran).toEqual(["flow"]);
    // The API's thread wrote one transaction (the create); the thread's claim and commits are relayed.
    expect(transactions.length).toBeGreaterThanOrEqual(3);
    expect(new Set(transactions)).toEqual(new Set(["sqlite true"]));
  });
});
