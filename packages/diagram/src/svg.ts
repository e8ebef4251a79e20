/**
 * Graph → self-contained SVG, laid out by ELK's layered algorithm (top to bottom). Containers
 * (loops, parallel groups, if/switch branches, try blocks, helpers) are compound nodes laid out
 * recursively; sequences are chained by arrows inside their container. Every node carries
 * `data-id` (and steps `data-kind`/`data-name`) so a UI can collapse containers or overlay a live
 * instance on top of the drawing.
 */
import { type DiagramLayout, type LayoutBox, type LayoutEdge, layoutGraph } from "./layout.ts";
import type { WorkflowGraph } from "./types.ts";

/** Options of {@link toSvg}. */
export interface SvgOptions {
  /** Ids to draw collapsed (see `collapseGraph`). */
  collapsed?: ReadonlySet<string>;
  /** Draw helper definitions beside the main flow. Default true. */
  functions?: boolean;
}

/**
 * Lays `graph` out with ELK and returns SVG text (with its own `<style>`; no external resources).
 *
 * @example
 * writeFileSync("checkout.svg", await toSvg(graph, { collapsed: new Set(["n4"]) }));
 */
export async function toSvg(graph: WorkflowGraph, options: SvgOptions = {}): Promise<string> {
  const layout = await layoutGraph(graph, {
    ...(options.collapsed ? { collapsed: options.collapsed } : {}),
    functions: options.functions ?? true,
  });
  return draw(layout);
}

// ------------------------------------------------------------------------ drawing

const STYLE = `
.cairn-diagram { font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 12px; }
.cairn-diagram text { fill: #1f2328; }
.cairn-diagram .detail { fill: #57606a; font-size: 10px; }
.cairn-diagram .container > rect { fill: #f6f8fa; stroke: #d0d7de; }
.cairn-diagram .container > text { font-weight: 600; fill: #57606a; }
.cairn-diagram .workflow > rect, .cairn-diagram .function > rect { fill: #ffffff; stroke: #8c959f; }
.cairn-diagram .loop > rect { fill: #fff8c5; stroke: #d4a72c; }
.cairn-diagram .parallel > rect { fill: #ddf4ff; stroke: #54aeff; }
.cairn-diagram .if > rect, .cairn-diagram .switch > rect { fill: #fbefff; stroke: #c297ff; }
.cairn-diagram .branch > rect { fill: #ffffff; stroke: #d8b9ff; stroke-dasharray: 4 2; }
.cairn-diagram .try > rect { fill: #fff1e5; stroke: #fb8f44; }
.cairn-diagram .node > rect { fill: #ffffff; stroke: #57606a; }
.cairn-diagram .step_do > rect { stroke: #0969da; }
.cairn-diagram .step_sleep > rect, .cairn-diagram .step_sleep_until > rect { stroke: #8250df; }
.cairn-diagram .step_wait_for_event > rect { stroke: #bf8700; }
.cairn-diagram .function_call > rect { stroke: #1a7f37; stroke-dasharray: 6 2; }
.cairn-diagram .break > rect { fill: #ffebe9; stroke: #cf222e; }
.cairn-diagram .terminal > rect { fill: #1f2328; stroke: #1f2328; }
.cairn-diagram .terminal > text { fill: #ffffff; }
.cairn-diagram .collapsed > rect { stroke-width: 2; stroke-dasharray: 2 2; }
.cairn-diagram .empty > rect { fill: none; stroke: none; }
.cairn-diagram .empty > text { fill: #8c959f; }
.cairn-diagram .edge { fill: none; stroke: #8c959f; stroke-width: 1.3; }
`;

/** Renders a laid-out graph: containers, then edges, then leaves on top. */
function draw(layout: DiagramLayout): string {
  const containers = layout.boxes.filter((b) => b.container).map(drawShape);
  const nodes = layout.boxes.filter((b) => !b.container).map(drawShape);
  const edges = layout.edges.map(drawEdge);
  const { width, height } = layout;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="cairn-diagram" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<style>${STYLE}</style>`,
    `<defs><marker id="cairn-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8c959f"/></marker></defs>`,
    `<g class="containers">${containers.join("")}</g>`,
    `<g class="edges">${edges.join("")}</g>`,
    `<g class="nodes">${nodes.join("")}</g>`,
    "</svg>",
    "",
  ].join("\n");
}

function drawShape(box: LayoutBox): string {
  const { x, y, width, height } = box;
  const data = box.step
    ? ` data-kind="${escapeXml(box.step.kind)}" data-name="${escapeXml(box.step.name)}"`
    : "";
  const kind = box.container ? "container" : "node";
  const radius = box.className.includes("sleep") || box.className === "terminal" ? height / 2 : 6;
  const open = `<g class="${kind} ${box.className}" data-id="${escapeXml(box.id)}"${data}><title>${escapeXml(box.tooltip)}</title>`;
  const rect = `<rect x="${x}" y="${y}" width="${width}" height="${height}" rx="${box.container ? 8 : radius}"/>`;
  if (box.container) {
    return `${open}${rect}<text x="${x + 10}" y="${y + 18}">${escapeXml(box.title)}</text></g>`;
  }
  const cx = x + width / 2;
  const lines = box.detail
    ? `<text x="${cx}" y="${y + 18}" text-anchor="middle">${escapeXml(box.title)}</text><text class="detail" x="${cx}" y="${y + 34}" text-anchor="middle">${escapeXml(box.detail)}</text>`
    : `<text x="${cx}" y="${y + height / 2 + 4}" text-anchor="middle">${escapeXml(box.title)}</text>`;
  return `${open}${rect}${lines}</g>`;
}

function drawEdge(edge: LayoutEdge): string {
  return edge.sections
    .map(
      (points) =>
        `<path class="edge" d="${points.map((p, i) => `${i === 0 ? "M" : "L"}${p.x},${p.y}`).join(" ")}" marker-end="url(#cairn-arrow)"/>`,
    )
    .join("");
}

/** Escapes text for SVG/XML content and attribute values. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}
