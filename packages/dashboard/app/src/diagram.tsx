/**
 * A workflow diagram drawn by the dashboard itself: the graph from `GET …/graph` laid out with ELK
 * (`@cairn/diagram/layout`, loaded on demand so the main bundle stays small) and rendered as SVG.
 * Containers (loops, branches, try blocks, parallel groups, helper calls) collapse and expand from
 * their header; the view pans (drag, arrow keys) and zooms (wheel, +/−). With `overlay`, every
 * step node is coloured by the state of the instance's matching steps.
 */
import type { StepDetail } from "@cairn/api";
import { CairnApiError } from "@cairn/client";
import { stepLabel } from "@cairn/core";
import type {
  DiagramLayout,
  LayoutBox,
  NodeOverlay,
  NodeState,
  StepRun,
  WorkflowGraph,
} from "@cairn/diagram/layout";
import {
  type KeyboardEvent,
  type PointerEvent,
  useCallback,
  useEffect,
  useMemo,
  useRef,
  useState,
} from "react";
import { useLoad } from "./api.ts";
import type { StepRef } from "./timeline.tsx";

type LayoutModule = typeof import("@cairn/diagram/layout");
let layoutModule: Promise<LayoutModule> | undefined;
const loadLayout = () => (layoutModule ??= import("@cairn/diagram/layout"));

/** An instance's steps as the overlay sees them. */
export function stepRuns(steps: readonly StepDetail[]): StepRun[] {
  // Rollback steps are not nodes of the diagram: the overlay shows the forward steps.
  return steps.flatMap((s) => {
    if (s.type === "rollback") return [];
    const kind = s.type === "step" ? "do" : s.type;
    let state: StepRun["state"];
    if (s.type === "step") {
      const last = s.attempts[s.attempts.length - 1];
      if (s.end !== null) state = s.success ? "succeeded" : "failed";
      else state = last && last.end !== null && !last.success ? "retrying" : "running";
    } else if (s.type === "sleep") state = s.finished ? "succeeded" : "waiting";
    else state = !s.finished ? "waiting" : s.error ? "failed" : "succeeded";
    return {
      kind,
      name: s.name,
      count: s.count,
      state,
      attempts: s.type === "step" ? s.attempts.length : 0,
    };
  });
}

const STATE_LABEL: Record<NodeState, string> = {
  pending: "pending",
  running: "running",
  retrying: "retrying",
  waiting: "waiting",
  succeeded: "succeeded",
  failed: "failed",
  skipped: "skipped",
};

interface View {
  x: number;
  y: number;
  k: number;
}

const MIN_ZOOM = 0.2;
const MAX_ZOOM = 3;
const clampZoom = (k: number) => Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, k));

export interface DiagramProps {
  graph: WorkflowGraph;
  /** Colour step nodes from an instance: its steps, and whether it has finished. */
  overlay?: { runs: StepRun[]; finished: boolean; running?: boolean };
  /** The step open in the inspector. */
  selected?: StepRef;
  /** Called when a step node with a run is clicked (instance mode). */
  onSelectStep?: (ref: StepRef) => void;
  /** Height of the viewport in px. Default 520. */
  height?: number;
}

export function Diagram({ graph, overlay, selected, onSelectStep, height = 520 }: DiagramProps) {
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(() => new Set());
  const [layout, setLayout] = useState<DiagramLayout>();
  const [allIds, setAllIds] = useState<string[]>([]);
  const [error, setError] = useState<string>();
  const [mod, setMod] = useState<LayoutModule>();
  const [view, setView] = useState<View>({ x: 0, y: 0, k: 1 });
  const fitted = useRef(false);
  const viewport = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let live = true;
    loadLayout().then(
      (m) => {
        if (!live) return;
        setMod(m);
        setAllIds(m.collapsibleBoxIds(graph, { inlineCalls: true }));
      },
      (e) => live && setError(String(e)),
    );
    return () => {
      live = false;
    };
  }, [graph]);

  useEffect(() => {
    let live = true;
    loadLayout()
      .then((m) => m.layoutGraph(graph, { collapsed, inlineCalls: true }))
      .then(
        (l) => {
          if (!live) return;
          setLayout(l);
          setError(undefined);
        },
        (e) => live && setError(e instanceof Error ? e.message : String(e)),
      );
    return () => {
      live = false;
    };
  }, [graph, collapsed]);

  const fit = useCallback(() => {
    const el = viewport.current;
    if (!el || !layout) return;
    const w = el.clientWidth || 800;
    const h = el.clientHeight || height;
    const k = clampZoom(Math.min(1, (w - 24) / layout.width, (h - 24) / layout.height));
    setView({ k, x: Math.max(12, (w - layout.width * k) / 2), y: 12 });
  }, [layout, height]);

  useEffect(() => {
    if (layout && !fitted.current) {
      fitted.current = true;
      fit();
    }
  }, [layout, fit]);

  const zoomAt = useCallback((factor: number, cx?: number, cy?: number) => {
    setView((v) => {
      const el = viewport.current;
      const px = cx ?? (el ? el.clientWidth / 2 : 0);
      const py = cy ?? (el ? el.clientHeight / 2 : 0);
      const k = clampZoom(v.k * factor);
      const r = k / v.k;
      return { k, x: px - (px - v.x) * r, y: py - (py - v.y) * r };
    });
  }, []);

  // Wheel zoom needs a non-passive listener to keep the page from scrolling.
  useEffect(() => {
    const el = viewport.current;
    if (!el) return;
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const rect = el.getBoundingClientRect();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - rect.left, e.clientY - rect.top);
    };
    el.addEventListener("wheel", onWheel, { passive: false });
    return () => el.removeEventListener("wheel", onWheel);
  }, [zoomAt]);

  const drag = useRef<{ x: number; y: number; vx: number; vy: number; moved: boolean; id: number }>(
    undefined,
  );
  const onPointerDown = (e: PointerEvent<HTMLDivElement>) => {
    if (e.button !== 0) return;
    drag.current = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false, id: e.pointerId };
  };
  const onPointerMove = (e: PointerEvent<HTMLDivElement>) => {
    const d = drag.current;
    if (!d || d.id !== e.pointerId) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (!d.moved && Math.hypot(dx, dy) < 4) return;
    if (!d.moved) {
      d.moved = true;
      e.currentTarget.setPointerCapture(e.pointerId);
    }
    setView((v) => ({ ...v, x: d.vx + dx, y: d.vy + dy }));
  };
  const endDrag = (e: PointerEvent<HTMLDivElement>) => {
    const d = drag.current;
    if (!d || d.id !== e.pointerId) return;
    if (d.moved) {
      // Swallow the click that ends a drag.
      const stop = (c: Event) => {
        c.stopPropagation();
        c.preventDefault();
      };
      window.addEventListener("click", stop, { capture: true, once: true });
      setTimeout(() => window.removeEventListener("click", stop, { capture: true }), 0);
    }
    drag.current = undefined;
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.target !== e.currentTarget && !["+", "=", "-", "0"].includes(e.key)) return;
    const step = 48;
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [step, 0],
      ArrowRight: [-step, 0],
      ArrowUp: [0, step],
      ArrowDown: [0, -step],
    };
    const move = moves[e.key];
    if (move) {
      e.preventDefault();
      setView((v) => ({ ...v, x: v.x + move[0], y: v.y + move[1] }));
    } else if (e.key === "+" || e.key === "=") {
      e.preventDefault();
      zoomAt(1.25);
    } else if (e.key === "-") {
      e.preventDefault();
      zoomAt(0.8);
    } else if (e.key === "0") {
      e.preventDefault();
      fit();
    }
  };

  // Keep the keyboard focus on a container that was toggled (its element is replaced).
  const refocus = useRef<string>(undefined);
  useEffect(() => {
    const id = refocus.current;
    if (!layout || !id) return;
    refocus.current = undefined;
    viewport.current?.querySelector<SVGGElement>(`[data-toggle="${CSS.escape(id)}"]`)?.focus();
  }, [layout]);

  const toggle = (id: string) => {
    const focused = document.activeElement;
    if (focused instanceof Element && focused.getAttribute("data-toggle") === id) refocus.current = id;
    setCollapsed((c) => {
      const n = new Set(c);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  };

  const overlays = useMemo(() => {
    const out = new Map<string, NodeOverlay>();
    if (!overlay || !layout || !mod) return out;
    for (const box of layout.boxes) {
      const steps = [...(box.step ? [box.step] : []), ...(box.hidden ?? [])];
      if (steps.length > 0) out.set(box.id, mod.overlayOf(steps, overlay.runs, overlay.finished));
    }
    if (overlay.running) inferRunning(layout.boxes, out, overlay.runs);
    return out;
  }, [overlay, layout, mod]);

  const containers = layout?.boxes.filter((b) => b.container) ?? [];
  const leaves = layout?.boxes.filter((b) => !b.container) ?? [];

  return (
    <div className="diagram" data-testid="diagram" data-ready={layout ? "true" : "false"}>
      <div className="diagram-toolbar" role="toolbar" aria-label="Diagram controls">
        <button
          type="button"
          className="btn small"
          onClick={() => setCollapsed(new Set())}
          disabled={collapsed.size === 0}
        >
          Expand all
        </button>
        <button
          type="button"
          className="btn small"
          onClick={() => setCollapsed(new Set(allIds))}
          disabled={allIds.length === 0}
        >
          Collapse all
        </button>
        <span className="sep" aria-hidden="true" />
        <button type="button" className="btn small" onClick={() => zoomAt(1.25)} aria-label="Zoom in">
          +
        </button>
        <button type="button" className="btn small" onClick={() => zoomAt(0.8)} aria-label="Zoom out">
          −
        </button>
        <button type="button" className="btn small" onClick={fit}>
          Fit
        </button>
        <span className="muted small" data-testid="zoom">
          {Math.round(view.k * 100)}%
        </span>
        {overlay ? <Legend /> : null}
      </div>
      {error ? (
        <div className="state error" role="alert">
          Cannot draw the diagram: {error}
        </div>
      ) : null}
      <div
        ref={viewport}
        className="diagram-viewport"
        style={{ height }}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: the viewport pans and zooms from the keyboard
        tabIndex={0}
        role="application"
        aria-roledescription="diagram"
        aria-label="Workflow diagram: drag or use the arrow keys to pan, the wheel or + and − to zoom, 0 to fit"
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={endDrag}
        onPointerCancel={endDrag}
        onKeyDown={onKeyDown}
      >
        {layout ? (
          <svg className="diagram-svg" width="100%" height="100%">
            <title>Workflow diagram</title>
            <defs>
              <marker
                id="d-arrow"
                viewBox="0 0 10 10"
                refX="9"
                refY="5"
                markerWidth="7"
                markerHeight="7"
                orient="auto-start-reverse"
              >
                <path d="M0,0 L10,5 L0,10 z" className="d-arrowhead" />
              </marker>
            </defs>
            <g data-testid="diagram-canvas" transform={`translate(${view.x},${view.y}) scale(${view.k})`}>
              {containers.map((b) => (
                <ContainerBox key={b.id} box={b} overlay={overlays.get(b.id)} onToggle={toggle} />
              ))}
              {layout.edges.map((e) =>
                e.sections.map((points, i) => (
                  <path
                    // biome-ignore lint/suspicious/noArrayIndexKey: sections of one edge are positional
                    key={`${e.id}.${i}`}
                    className="d-edge"
                    d={points.map((p, j) => `${j === 0 ? "M" : "L"}${p.x},${p.y}`).join(" ")}
                    markerEnd="url(#d-arrow)"
                  />
                )),
              )}
              {leaves.map((b) => (
                <LeafBox
                  key={b.id}
                  box={b}
                  overlay={overlays.get(b.id)}
                  selected={selected}
                  onToggle={toggle}
                  onSelectStep={onSelectStep}
                />
              ))}
            </g>
          </svg>
        ) : !error ? (
          <div className="state loading" role="status">
            <span className="spinner" aria-hidden="true" /> Laying out the diagram…
          </div>
        ) : null}
      </div>
    </div>
  );
}

function activate(fn: () => void) {
  return {
    onClick: fn,
    onKeyDown: (e: KeyboardEvent) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        e.stopPropagation();
        fn();
      }
    },
  };
}

function ContainerBox({
  box,
  overlay,
  onToggle,
}: {
  box: LayoutBox;
  overlay: NodeOverlay | undefined;
  onToggle: (id: string) => void;
}) {
  const { x, y, width, height } = box;
  return (
    <g
      className={`d-box container ${box.className}${overlay ? ` ds-${overlay.state}` : ""}`}
      data-id={box.id}
      data-state={overlay?.state}
      {...(box.step ? { "data-kind": box.step.kind, "data-name": box.step.name } : {})}
    >
      <title>{box.tooltip}</title>
      <rect x={x} y={y} width={width} height={height} rx={8} />
      {box.collapsible ? (
        // biome-ignore lint/a11y/useSemanticElements: an SVG group acting as a button
        <g
          className="d-header"
          role="button"
          tabIndex={0}
          aria-expanded={true}
          aria-label={`Collapse ${box.tooltip}`}
          data-toggle={box.id}
          {...activate(() => onToggle(box.id))}
        >
          <rect x={x} y={y} width={width} height={24} rx={8} className="d-header-hit" />
          <text x={x + 10} y={y + 17}>
            ▾ {box.title}
          </text>
        </g>
      ) : (
        <text x={x + 10} y={y + 17} className="d-title">
          {box.title}
        </text>
      )}
    </g>
  );
}

function LeafBox({
  box,
  overlay,
  selected,
  onToggle,
  onSelectStep,
}: {
  box: LayoutBox;
  overlay: NodeOverlay | undefined;
  selected: StepRef | undefined;
  onToggle: (id: string) => void;
  onSelectStep: ((ref: StepRef) => void) | undefined;
}) {
  const { x, y, width, height } = box;
  const current = overlay ? currentRun(overlay) : undefined;
  const ref: StepRef | undefined =
    current && box.step && !box.collapsed
      ? { type: current.kind === "do" ? "step" : current.kind, label: stepLabel(current) }
      : undefined;
  const isSelected =
    !!selected &&
    !!box.step &&
    !!overlay?.runs.some((r) => stepLabel(r) === selected.label && kindOf(selected) === r.kind);
  const rounded = box.className.includes("sleep") || box.className === "terminal";
  const cx = x + width / 2;
  const badge = overlay ? badgeOf(overlay) : undefined;
  const stateText = overlay ? `\nState: ${STATE_LABEL[overlay.state]}${badge ? ` (${badge})` : ""}` : "";
  const action = box.collapsed
    ? () => onToggle(box.id)
    : ref && onSelectStep
      ? () => onSelectStep(ref)
      : undefined;
  const label = box.collapsed
    ? `Expand ${box.tooltip}`
    : `${box.tooltip.replace(/\n/g, ", ")}${overlay ? `: ${STATE_LABEL[overlay.state]}${badge ? `, ${badge}` : ""}` : ""}`;
  return (
    <g
      className={`d-box node ${box.className}${overlay ? ` ds-${overlay.state}` : ""}${isSelected ? " selected" : ""}${action ? " clickable" : ""}`}
      data-id={box.id}
      data-state={overlay?.state}
      data-attempts={overlay?.attempts || undefined}
      {...(box.step ? { "data-kind": box.step.kind, "data-name": box.step.name } : {})}
      {...(box.collapsed ? { "data-toggle": box.id } : {})}
      {...(action
        ? {
            role: "button",
            tabIndex: 0,
            "aria-label": label,
            ...(box.collapsed ? { "aria-expanded": false } : {}),
            ...activate(action),
          }
        : {})}
    >
      <title>{`${box.tooltip}${stateText}`}</title>
      <rect x={x} y={y} width={width} height={height} rx={rounded ? height / 2 : 6} />
      {box.detail ? (
        <>
          <text x={cx} y={y + 18} textAnchor="middle">
            {box.collapsed ? "▸ " : ""}
            {box.title}
          </text>
          <text className="d-detail" x={cx} y={y + 34} textAnchor="middle">
            {box.detail}
          </text>
        </>
      ) : (
        <text x={cx} y={y + height / 2 + 4} textAnchor="middle">
          {box.collapsed ? "▸ " : ""}
          {box.title}
        </text>
      )}
      {badge ? (
        <g className="d-badge">
          <rect
            x={x + width - 8 - badge.length * 6.2}
            y={y - 8}
            width={badge.length * 6.2 + 12}
            height={16}
            rx={8}
          />
          <text x={x + width - 2 - (badge.length * 6.2) / 2} y={y + 4} textAnchor="middle">
            {badge}
          </text>
        </g>
      ) : null}
    </g>
  );
}

/**
 * The engine stores a step when an attempt ends, so a first attempt in flight is not in the
 * instance's steps. While the instance is running and no stored step is active, the node after the
 * latest stored step (in drawing order), or that step's own node when it repeats in a loop, is
 * shown as running.
 */
function inferRunning(boxes: LayoutBox[], overlays: Map<string, NodeOverlay>, runs: StepRun[]) {
  const active = new Set<NodeState>(["running", "retrying", "waiting"]);
  for (const o of overlays.values()) if (active.has(o.state)) return;
  const latest = runs[runs.length - 1];
  const candidates = boxes.filter((b) => overlays.has(b.id));
  let next: LayoutBox | undefined;
  if (!latest) next = candidates[0];
  else {
    const at = candidates.findIndex((b) => overlays.get(b.id)!.runs.includes(latest));
    if (at < 0) return;
    const here = candidates[at]!;
    next =
      here.step?.repeated && !here.collapsed
        ? here
        : candidates.slice(at + 1).find((b) => overlays.get(b.id)!.state === "pending");
  }
  if (next) overlays.set(next.id, { ...overlays.get(next.id)!, state: "running" });
}

const kindOf = (ref: StepRef) => (ref.type === "step" ? "do" : ref.type);

/** The run a node's click opens: the one showing the node's state, the latest of them. */
function currentRun(overlay: NodeOverlay): StepRun | undefined {
  const same = overlay.runs.filter((r) => r.state === overlay.state);
  return same[same.length - 1] ?? overlay.runs[overlay.runs.length - 1];
}

/** "attempt 2" while retrying (or on a retried step), "×3" for a node that ran several times. */
function badgeOf(overlay: NodeOverlay): string | undefined {
  if (overlay.state === "retrying") return `attempt ${overlay.attempts + 1}`;
  if (overlay.runs.length > 1) return `×${overlay.runs.length}`;
  if (overlay.attempts > 1) return `${overlay.attempts} attempts`;
  return undefined;
}

function Legend() {
  const states: NodeState[] = ["pending", "running", "retrying", "waiting", "succeeded", "failed", "skipped"];
  return (
    <ul className="diagram-legend" aria-label="Step states">
      {states.map((s) => (
        <li key={s}>
          <span className={`chip ds-${s}`} aria-hidden="true" /> {STATE_LABEL[s]}
        </li>
      ))}
    </ul>
  );
}

/** `GET …/graph`: the graph, `null` when the server has none for the workflow (404), or the error. */
export function useGraph(workflow: string) {
  return useLoad<WorkflowGraph | null>(
    (c) =>
      c.getGraph<WorkflowGraph>(workflow).catch((e) => {
        if (CairnApiError.is(e) && e.status === 404 && e.code === "not_found") return null;
        throw e;
      }),
    [workflow],
  );
}
