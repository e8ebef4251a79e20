/**
 * A React page for tests/agents/react.test.ts: one component using `useAgent`, from Cairn's
 * `@cairn/agents/react` or from Cloudflare's `agents/react` (`?impl=upstream`), so both hooks run
 * the same component against the same Cairn agent. The URL says what to connect to:
 * `?impl=cairn|upstream&agent=TestStateAgent&name=n[&query=async&user=ada][&readonly=1][&timeout=ms][&enabled=0]`.
 * The page renders the hook's reactive fields and keeps the hook's object and a log of its
 * callbacks on `window.harness`.
 */
import { useAgent as cairnUseAgent } from "@cairn/agents/react";
import { useAgent as upstreamUseAgent } from "agents/react";
import { Suspense, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

const params = new URLSearchParams(location.search);
const impl = params.get("impl") === "upstream" ? "upstream" : "cairn";
const useAgentImpl = (impl === "upstream" ? upstreamUseAgent : cairnUseAgent) as typeof cairnUseAgent;

interface Harness {
  impl: string;
  agent?: any;
  log: unknown[][];
  /** Render count of the component, to see re-renders. */
  renders: number;
  setName?: (name: string) => void;
  setEnabled?: (enabled: boolean) => void;
}
const harness: Harness = { impl, log: [], renders: 0 };
(window as any).harness = harness;

const queryParams: Record<string, string> = {};
for (const key of ["user", "readonly"]) {
  const v = params.get(key);
  if (v !== null) queryParams[key] = v;
}
// One function for the page's lifetime: the hook caches its result by agent, name and deps.
const asyncQuery = async () => {
  harness.log.push(["query"]);
  await new Promise((r) => setTimeout(r, 50));
  return queryParams;
};

function AgentView() {
  const [name, setName] = useState(params.get("name") ?? "default");
  harness.setName = setName;
  const [enabled, setEnabled] = useState(params.get("enabled") !== "0");
  harness.setEnabled = setEnabled;
  harness.renders++;
  const agent = useAgentImpl<any>({
    agent: params.get("agent") ?? "TestStateAgent",
    name,
    enabled,
    ...(params.get("query") === "async"
      ? { query: asyncQuery }
      : Object.keys(queryParams).length
        ? { query: queryParams }
        : {}),
    onStateUpdate: (state, source) => harness.log.push(["state", source, state]),
    onStateUpdateError: (error) => harness.log.push(["stateError", error]),
    onIdentity: (n, a) => harness.log.push(["identity", n, a]),
    onIdentityChange: (...args) => harness.log.push(["identityChange", ...args]),
    onMessage: (event: MessageEvent) => harness.log.push(["message", event.data]),
    onOpen: () => harness.log.push(["open"]),
    onClose: (event: CloseEvent) => harness.log.push(["close", event.code]),
    onConnectionError: (error: Error) => harness.log.push(["connectionError", error.message]),
    ...(params.has("timeout") ? { defaultCallTimeout: Number(params.get("timeout")) } : {}),
  });
  harness.agent = agent;
  const [mounted, setMounted] = useState<string>("");
  // biome-ignore lint/correctness/useExhaustiveDependencies: once, at mount
  useEffect(() => {
    // A call made while the socket is still connecting: it waits and goes out on open.
    if (params.get("agent") === "TestCallableAgent")
      agent.call("add", [1, 2]).then(
        (r) => setMounted(String(r)),
        (e: Error) => setMounted(`error: ${e.message}`),
      );
  }, []);
  const count = agent.state?.count;
  return (
    <main>
      <p data-testid="status">{agent.identified ? "connected" : "connecting"}</p>
      <p data-testid="identity">{`${agent.agent}/${agent.name}`}</p>
      <pre data-testid="state">{agent.state === undefined ? "undefined" : JSON.stringify(agent.state)}</pre>
      <p data-testid="mounted">{mounted}</p>
      <p data-testid="error">{agent.connectionError?.message ?? ""}</p>
      <button type="button" onClick={() => agent.setState({ ...agent.state, count: (count ?? 0) + 10 })}>
        add ten
      </button>
      <button type="button" onClick={() => agent.setState({ ...agent.state, count: -1 })}>
        go negative
      </button>
    </main>
  );
}

createRoot(document.getElementById("root")!).render(
  <Suspense fallback={<p data-testid="status">loading</p>}>
    <AgentView />
  </Suspense>,
);
