/**
 * `@cairn/diagram/layout`: the browser-safe part of the package (no parser, no Node APIs): layout
 * with ELK, and the live-instance overlay. The dashboard draws diagrams with it.
 */
export {
  type BoxStep,
  collapsibleBoxIds,
  type DiagramLayout,
  type LayoutBox,
  type LayoutEdge,
  type LayoutOptions,
  layoutGraph,
} from "./layout.ts";
export {
  matchesStep,
  type NodeOverlay,
  type NodeState,
  namePattern,
  overlayOf,
  type StepRun,
  type StepRunState,
} from "./overlay.ts";
export type * from "./types.ts";
