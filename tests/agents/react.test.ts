/**
 * `useAgent` in real Chromium: a React component (react-app/app.tsx, bundled with esbuild) connects
 * to Cairn agents over a real WebSocket. Every case runs twice, once with Cairn's hook
 * (`@cairn/agents/react`, what `cairnjs/agents/react` re-exports) and once with Cloudflare's own
 * (`agents/react` 0.21.0, unmodified), so the two behave the same against the same agent.
 */

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { routeAgentRequest } from "@cairn/agents";
import * as react from "@cairn/agents/react";
import * as cairnReact from "cairnjs/agents/react";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserMissing, launch, newContext } from "../dashboard/support.ts";
import { ConnectionsAgent, TestCallableAgent, TestStateAgent } from "./agents.ts";
import { Client, type Served, serve, until } from "./helpers.ts";

const missing = browserMissing();
const inCi = process.env.CI === "true";
if (missing && !inCi) console.warn(`Skipping the useAgent browser tests: ${missing}`);

const HTML = `<!doctype html><html><head><meta charset="utf-8"><title>useAgent</title></head>
<body><div id="root"></div><script type="module" src="/app.js"></script></body></html>`;

describe("the package", () => {
  it("cairnjs/agents/react re-exports @cairn/agents/react, built and declared in both packages' exports", () => {
    expect(cairnReact.useAgent).toBe(react.useAgent);
    expect(Object.keys(cairnReact).sort()).toEqual(Object.keys(react).sort());
    for (const [dir, key] of [
      ["packages/agents", "./react"],
      ["packages/cairn", "./agents/react"],
    ] as const) {
      const root = new URL(`../../${dir}/`, import.meta.url);
      const entry = JSON.parse(readFileSync(new URL("package.json", root), "utf8")).exports[key];
      for (const file of [entry.source, entry.types, entry.default])
        expect(existsSync(new URL(file, root)), `${dir} ${file}`).toBe(true);
    }
  });
});

describe.skipIf(missing !== undefined && !inCi)("useAgent in Chromium against a Cairn agent", () => {
  let served: Served;
  let browser: Browser;
  let bundle: string;

  beforeAll(async () => {
    if (missing) throw new Error(missing);
    const out = await build({
      entryPoints: [fileURLToPath(new URL("./react-app/app.tsx", import.meta.url))],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      jsx: "automatic",
      // Cairn's workspace packages from their TypeScript sources, as the other tests use them.
      conditions: ["source"],
      define: { "process.env.NODE_ENV": '"development"' },
      logLevel: "silent",
    });
    bundle = out.outputFiles[0]!.text;
    served = await serve(
      [
        { binding: "TestStateAgent", class: TestStateAgent },
        { binding: "TestCallableAgent", class: TestCallableAgent },
        { binding: "ConnectionsAgent", class: ConnectionsAgent },
      ],
      {
        fetch: async (request, env) => {
          const { pathname } = new URL(request.url);
          if (pathname === "/") return new Response(HTML, { headers: { "content-type": "text/html" } });
          if (pathname === "/app.js")
            return new Response(bundle, { headers: { "content-type": "text/javascript" } });
          return (await routeAgentRequest(request, env)) ?? new Response("Not found", { status: 404 });
        },
      },
    );
    browser = await launch();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await served?.close();
  });

  for (const impl of ["cairn", "upstream"] as const) {
    describe(`${impl === "cairn" ? "Cairn's" : "Cloudflare's"} useAgent`, () => {
      const pages: Page[] = [];
      afterAll(async () => {
        for (const p of pages) await p.context().close();
      });

      async function open(query: Record<string, string>, status = "connected"): Promise<Page> {
        const page = await (await newContext(browser)).newPage();
        pages.push(page);
        page.setDefaultTimeout(10_000);
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(e.message));
        await page.goto(`${served.url}/?${new URLSearchParams({ impl, ...query })}`);
        await page.getByTestId("status").getByText(status).waitFor();
        expect(errors).toEqual([]);
        return page;
      }
      const text = (page: Page, id: string) => page.getByTestId(id).textContent();
      const stateOf = async (page: Page) => JSON.parse((await text(page, "state"))!);
      const log = (page: Page) => page.evaluate(() => (window as any).harness.log as unknown[][]);

      it("connects, is identified (ready resolves) and renders the agent's initial state", async () => {
        const page = await open({ agent: "TestStateAgent", name: `initial-${impl}` });
        expect(await text(page, "identity")).toBe(`test-state-agent/initial-${impl}`);
        expect(await stateOf(page)).toEqual({ count: 0, items: [] });
        expect(await page.evaluate(() => (window as any).harness.agent.ready.then(() => "ready"))).toBe(
          "ready",
        );
        const entries = await log(page);
        expect(entries).toContainEqual(["identity", `initial-${impl}`, "test-state-agent"]);
        expect(entries).toContainEqual(["state", "server", { count: 0, items: [] }]);
      });

      it("syncs state both ways: server changes re-render, client setState reaches the agent and other clients", async () => {
        const name = `sync-${impl}`;
        const page = await open({ agent: "TestStateAgent", name });
        const other = await Client.open(`${served.wsUrl}/agents/test-state-agent/${name}`);
        await other.next((f) => f.type === "cf_agent_state");

        // Server → browser: an RPC to the agent from the server side changes its state.
        expect(await served.env.TestStateAgent.getByName(name).increment(5)).toBe(5);
        await page.getByTestId("state").getByText('"count":5').waitFor();

        // Browser → server: the button calls setState; the agent persists it and tells the others.
        const before = other.frames.length;
        await page.getByRole("button", { name: "add ten" }).click();
        expect(await stateOf(page)).toEqual({ count: 15, items: [] });
        const seen = await other.next((f) => f.type === "cf_agent_state" && f.state.count === 15, before);
        expect(seen.state).toEqual({ count: 15, items: [] });
        expect(await served.env.TestStateAgent.getByName(name).getState()).toEqual({ count: 15, items: [] });
        // The sender is not sent its own update back: its log has it once, from the client.
        const updates = (await log(page)).filter((e) => e[0] === "state" && (e[2] as any).count === 15);
        expect(updates).toEqual([["state", "client", { count: 15, items: [] }]]);

        // Another client's update re-renders the page.
        other.send({ type: "cf_agent_state", state: { count: 20, items: ["x"] } });
        await page.getByTestId("state").getByText('"count":20').waitFor();
        expect(await stateOf(page)).toEqual({ count: 20, items: ["x"] });
        other.close();
      });

      it("a rejected update reaches onStateUpdateError and leaves the agent's state as it was", async () => {
        const name = `reject-${impl}`;
        const page = await open({ agent: "TestStateAgent", name });
        await page.getByRole("button", { name: "go negative" }).click();
        await until(async () => (await log(page)).some((e) => e[0] === "stateError"), "the state error");
        expect((await log(page)).filter((e) => e[0] === "stateError")).toEqual([
          ["stateError", "State update rejected"],
        ]);
        expect(await served.env.TestStateAgent.getByName(name).getState()).toEqual({ count: 0, items: [] });
      });

      it("a readonly connection's setState is refused with Connection is readonly", async () => {
        const page = await open({ agent: "ConnectionsAgent", name: `ro-${impl}`, readonly: "1" });
        await page.getByRole("button", { name: "add ten" }).click();
        await until(async () => (await log(page)).some((e) => e[0] === "stateError"), "the state error");
        expect((await log(page)).find((e) => e[0] === "stateError")).toEqual([
          "stateError",
          "Connection is readonly",
        ]);
        expect(await served.env.ConnectionsAgent.getByName(`ro-${impl}`).myState()).toBe(null);
      });

      it("calls methods (call, stub, streaming, errors), also one made before the socket opened", async () => {
        const page = await open({ agent: "TestCallableAgent", name: `rpc-${impl}` });
        // The component's mount effect called add(1, 2) while the socket was connecting.
        await page.getByTestId("mounted").getByText("3").waitFor();
        const results = await page.evaluate(async () => {
          const agent = (window as any).harness.agent;
          const chunks: unknown[] = [];
          const streamed = await new Promise((resolve, reject) =>
            agent
              .call("stream", [3], { stream: { onChunk: (c: unknown) => chunks.push(c), onDone: resolve } })
              .catch(reject),
          );
          const errorOf = (p: Promise<unknown>) =>
            p.then(
              () => "resolved",
              (e: Error) => e.message,
            );
          return {
            add: await agent.call("add", [20, 22]),
            stub: await agent.stub.asyncAdd(1, 2),
            chunks,
            streamed,
            unknown: await errorOf(agent.call("nope")),
            notCallable: await errorOf(agent.call("notCallable")),
            timeout: await errorOf(agent.call("sleep", [2000], { timeout: 50 })),
          };
        });
        expect(results).toEqual({
          add: 42,
          stub: 3,
          chunks: [0, 1, 2],
          streamed: "done",
          unknown: "Method nope does not exist",
          notCallable: "Method notCallable is not callable",
          timeout: "RPC call to sleep timed out after 50ms",
        });
      });

      it("resolves an async query (Suspense) and passes it on the connection's URL", async () => {
        const page = await open({
          agent: "ConnectionsAgent",
          name: `query-${impl}`,
          query: "async",
          user: "ada",
        });
        expect(await page.evaluate(() => (window as any).harness.agent.call("myState"))).toEqual({
          joined: "ada",
        });
        expect((await log(page)).filter((e) => e[0] === "query")).toEqual([["query"]]);
      });

      it("a transient close rejects the calls sent on it, then the hook reconnects and is identified again", async () => {
        const page = await open({ agent: "TestCallableAgent", name: `transient-${impl}` });
        const outcome = await page.evaluate(async () => {
          const agent = (window as any).harness.agent;
          const inFlight = agent.call("sleep", [2000]).then(
            () => "resolved",
            (e: Error) => e.message,
          );
          await agent.call("kick", [3000]);
          return inFlight;
        });
        expect(outcome).toBe("Connection closed");
        await until(
          async () => (await log(page)).filter((e) => e[0] === "open").length === 2,
          "the reconnect",
        );
        await page.getByTestId("status").getByText("connected").waitFor();
        expect((await log(page)).filter((e) => e[0] === "close")).toEqual([["close", 3000]]);
        expect(await page.evaluate(() => (window as any).harness.agent.call("add", [2, 2]))).toBe(4);
        expect(await text(page, "error")).toBe("");
      });

      it("a terminal close (4001) sets connectionError, stops reconnecting, and later calls reject", async () => {
        const page = await open({ agent: "TestCallableAgent", name: `terminal-${impl}` });
        await page.evaluate(() => (window as any).harness.agent.call("kick", [4001]));
        await page.getByTestId("error").getByText("Agent connection closed: kicked").waitFor();
        expect(await text(page, "status")).toBe("connecting");
        expect((await log(page)).filter((e) => e[0] === "connectionError")).toEqual([
          ["connectionError", "Agent connection closed: kicked"],
        ]);
        const after = await page.evaluate(async () => {
          const agent = (window as any).harness.agent;
          return {
            readyState: agent.readyState,
            call: await agent.call("add", [1, 1]).then(
              () => "resolved",
              (e: Error) => e.message,
            ),
          };
        });
        expect(after).toEqual({ readyState: 3, call: "Connection closed" });
      });

      it("defaultCallTimeout bounds plain calls; timeout: 0 disables it; streaming calls get none", async () => {
        const page = await open({ agent: "TestCallableAgent", name: `timeouts-${impl}`, timeout: "150" });
        const r = await page.evaluate(async () => {
          const agent = (window as any).harness.agent;
          const outcome = (p: Promise<unknown>) =>
            p.then(
              (v) => v,
              (e: Error) => `rejected: ${e.message}`,
            );
          const chunks: unknown[] = [];
          return {
            plain: await outcome(agent.call("sleep", [1000])),
            unbounded: await outcome(agent.call("sleep", [400], { timeout: 0 })),
            streamed: await outcome(
              agent.call("slowStream", [400], { stream: { onChunk: (c: unknown) => chunks.push(c) } }),
            ),
            chunks,
          };
        });
        expect(r).toEqual({
          plain: "rejected: RPC call to sleep timed out after 150ms",
          unbounded: "slept",
          streamed: "last",
          chunks: ["first"],
        });
      });

      it("enabled: false opens no connection; enabling it connects and a call queued meanwhile goes out", async () => {
        const name = `enabled-${impl}`;
        const page = await open({ agent: "TestCallableAgent", name, enabled: "0" }, "connecting");
        // The mount-time call waits in the hook: nothing is connected, nothing is sent.
        expect((await log(page)).filter((e) => e[0] === "open")).toEqual([]);
        expect(await text(page, "mounted")).toBe("");
        expect(await served.env.TestCallableAgent.getByName(name).connectionCount()).toBe(0);
        await page.evaluate(() => (window as any).harness.setEnabled(true));
        await page.getByTestId("status").getByText("connected").waitFor();
        await page.getByTestId("mounted").getByText("3").waitFor();
        expect(await served.env.TestCallableAgent.getByName(name).connectionCount()).toBe(1);
      });

      it("changing the name connects to the other agent: new identity, its state, onIdentityChange", async () => {
        const page = await open({ agent: "TestStateAgent", name: `first-${impl}` });
        await served.env.TestStateAgent.getByName(`second-${impl}`).increment(7);
        await page.evaluate((n) => (window as any).harness.setName(n), `second-${impl}`);
        await page.getByTestId("identity").getByText(`test-state-agent/second-${impl}`).waitFor();
        await page.getByTestId("state").getByText('"count":7').waitFor();
        await page.getByTestId("status").getByText("connected").waitFor();
        expect(await log(page)).toContainEqual([
          "identityChange",
          `first-${impl}`,
          `second-${impl}`,
          "test-state-agent",
          "test-state-agent",
        ]);
        expect(await page.evaluate(() => (window as any).harness.agent.call("increment", [1]))).toBe(8);
      });
    });
  }
});
