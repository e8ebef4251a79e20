import { StrictMode, useEffect, useRef, useState } from "react";
import { createRoot } from "react-dom/client";
import { setToken, useAuth, useLoad } from "./api.ts";
import { InstancePage } from "./pages/instance.tsx";
import { InstancesPage } from "./pages/instances.tsx";
import { ObjectPage, ObjectsPage } from "./pages/objects.tsx";
import { AgentPage, AgentsPage, SandboxesPage } from "./pages/operations.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { Link, paths, type Route, useRoute } from "./router.tsx";
import "./styles.css";

function App() {
  const route = useRoute();
  const auth = useAuth();
  useEffect(() => {
    document.title = titleOf(route);
  }, [route]);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to={paths.overview()} className="brand" aria-label="Cairn dashboard home">
          <Logo /> Cairn
        </Link>
        <Breadcrumbs route={route} />
        <div className="spacer" />
        <Link to={paths.objects()} className="btn ghost small">
          Objects
        </Link>
        <Link to={paths.agents()} className="btn ghost small">
          Agents
        </Link>
        <Link to={paths.sandboxes()} className="btn ghost small">
          Sandboxes
        </Link>
        {auth.token ? (
          <button type="button" className="btn ghost small" onClick={() => setToken(undefined)}>
            Forget token
          </button>
        ) : null}
      </header>
      <LoadErrorBanner />
      <main id="main" tabIndex={-1}>
        {route.page === "overview" ? (
          <OverviewPage />
        ) : route.page === "instances" ? (
          <InstancesPage workflow={route.workflow} query={route.query} />
        ) : route.page === "objects" ? (
          <ObjectsPage />
        ) : route.page === "object" ? (
          <ObjectPage key={`${route.binding}/${route.id}`} binding={route.binding} id={route.id} />
        ) : route.page === "agents" ? (
          <AgentsPage />
        ) : route.page === "agent" ? (
          <AgentPage key={`${route.binding}/${route.id}`} binding={route.binding} id={route.id} />
        ) : route.page === "sandboxes" ? (
          <SandboxesPage />
        ) : route.page === "instance" ? (
          <InstancePage
            key={`${route.workflow}/${route.id}`}
            workflow={route.workflow}
            id={route.id}
            query={route.query}
          />
        ) : (
          <div className="state empty">
            <strong>No such page.</strong> <Link to={paths.overview()}>Back to the overview</Link>
          </div>
        )}
      </main>
      {auth.needsToken ? <TokenPrompt hadToken={auth.token !== undefined} /> : null}
    </>
  );
}

/** What `GET /api/v1/project` says when the project did not load (`cairn dev`). */
interface ProjectState {
  error?: { message: string; file?: string; line?: number; column?: number };
}

/** Under `cairn dev`, a project that failed to load: the error, until a save fixes it. */
function LoadErrorBanner() {
  const project = useLoad((c) => c.getProject<ProjectState>(), [], { refreshMs: 2000 });
  const error = project.data?.error;
  if (!error) return null;
  return (
    <div className="load-error" role="alert">
      <strong>The project did not load.</strong> Its routes answer 500 until the file is fixed; saving reloads
      it.
      <pre className="mono">{error.message}</pre>
    </div>
  );
}

function titleOf(route: Route): string {
  if (route.page === "instances") return `${route.workflow} · Cairn`;
  if (route.page === "instance") return `${route.id} · ${route.workflow} · Cairn`;
  if (route.page === "objects") return "Durable Objects · Cairn";
  if (route.page === "object") return `${route.id.slice(0, 12)} · ${route.binding} · Cairn`;
  if (route.page === "agents") return "Agents · Cairn";
  if (route.page === "agent") return `${route.id.slice(0, 24)} · ${route.binding} · Cairn`;
  if (route.page === "sandboxes") return "Sandboxes · Cairn";
  return "Cairn";
}

function Breadcrumbs({ route }: { route: Route }) {
  if (route.page === "object")
    return (
      <nav aria-label="Breadcrumb" className="crumbs">
        <Link to={paths.objects()}>Objects</Link>
        <span aria-hidden="true">/</span>
        <span>{route.binding}</span>
        <span aria-hidden="true">/</span>
        <span aria-current="page" className="mono">
          {route.id.slice(0, 16)}…
        </span>
      </nav>
    );
  if (route.page !== "instances" && route.page !== "instance") return null;
  return (
    <nav aria-label="Breadcrumb" className="crumbs">
      <Link to={paths.overview()}>Workflows</Link>
      <span aria-hidden="true">/</span>
      {route.page === "instance" ? (
        <>
          <Link to={paths.instances(route.workflow)}>{route.workflow}</Link>
          <span aria-hidden="true">/</span>
          <span aria-current="page" className="mono">
            {route.id}
          </span>
        </>
      ) : (
        <span aria-current="page">{route.workflow}</span>
      )}
    </nav>
  );
}

function TokenPrompt({ hadToken }: { hadToken: boolean }) {
  const [value, setValue] = useState("");
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <div className="modal-backdrop">
      <form
        className="modal"
        role="dialog"
        aria-modal="true"
        aria-labelledby="token-title"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) setToken(value.trim());
        }}
      >
        <h2 id="token-title">API token needed</h2>
        <p className="muted">
          {hadToken
            ? "The server refused the token. Enter the right one."
            : "This Cairn server requires a bearer token (CAIRN_TOKEN)."}{" "}
          It is kept in this tab's session storage only.
        </p>
        <label className="field">
          <span>Token</span>
          <input
            ref={input}
            type="password"
            name="token"
            autoComplete="current-password"
            value={value}
            onChange={(e) => setValue(e.target.value)}
          />
        </label>
        <div className="row end">
          <button type="submit" className="btn primary" disabled={!value.trim()}>
            Continue
          </button>
        </div>
      </form>
    </div>
  );
}

function Logo() {
  return (
    <svg width="22" height="22" viewBox="0 0 16 16" aria-hidden="true">
      <ellipse cx="8" cy="13" rx="6" ry="2.4" fill="currentColor" opacity="0.55" />
      <ellipse cx="8" cy="8.6" rx="4.4" ry="2.1" fill="currentColor" opacity="0.75" />
      <ellipse cx="8" cy="4.6" rx="2.8" ry="1.8" fill="currentColor" />
    </svg>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
