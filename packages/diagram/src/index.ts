export { analyzeWorkflows } from "./analyzer/index.ts";
export { collapseGraph, collapsibleIds } from "./collapse.ts";
export { graphOf } from "./graph-of.ts";
export { assignIds } from "./ids.ts";
export { branchTitle, labelOf, type NodeLabel } from "./labels.ts";
export {
  type BoxStep,
  collapsibleBoxIds,
  type DiagramLayout,
  type LayoutBox,
  type LayoutEdge,
  type LayoutOptions,
  layoutGraph,
} from "./layout.ts";
export { escapeLabel, mermaidId, toMermaid } from "./mermaid.ts";
export {
  matchesStep,
  type NodeOverlay,
  type NodeState,
  namePattern,
  overlayOf,
  type StepRun,
  type StepRunState,
} from "./overlay.ts";
export { escapeXml, type SvgOptions, toSvg } from "./svg.ts";
export type {
  AnalyzeOptions,
  BlockNode,
  Branch,
  BreakNode,
  Concurrency,
  DurationValue,
  FunctionCallNode,
  FunctionDefNode,
  GraphNode,
  IfNode,
  LoopKind,
  LoopNode,
  NodeBase,
  ParallelNode,
  RetriesDescriptor,
  StepBase,
  StepConfigDescriptor,
  StepDoNode,
  StepKind,
  StepNode,
  StepSleepNode,
  StepSleepUntilNode,
  StepWaitForEventNode,
  SwitchNode,
  TryNode,
  Unknown,
  WorkflowDescriptor,
  WorkflowGraph,
} from "./types.ts";
export { UNKNOWN } from "./types.ts";
