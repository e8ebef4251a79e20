/**
 * The workflow graph schema.
 *
 * The shapes follow Cloudflare's published workflow graph (`GET …/versions/{v}/graph`), so a graph
 * Cairn produces can be read by anything written for Cloudflare's: every node has a `type`
 * discriminator and Cloudflare's field names. Cairn adds a few fields of its own, all optional for
 * readers that do not know them:
 *
 * - `id` on every node, branch and block: a deterministic path ("n0.2.1" in `run`, "f:helper.0" in a
 *   helper) used to collapse and expand parts of the diagram and to anchor a live overlay;
 * - `kind` on step nodes: the engine's step kind (`"do" | "sleep" | "waitForEvent"`, `sleepUntil`
 *   counts as `"sleep"`), so a live instance's steps can be matched by `(kind, name, count)`;
 * - `dynamic_name` on steps whose name is not a constant (it then holds `${…}` placeholders);
 * - `loop_kind` on loops, `collapsed`/`hidden_steps` on nodes folded by {@link collapseGraph}.
 */

/** The value Cairn writes wherever a name, duration or config field cannot be known without running code. */
export const UNKNOWN = "unknown";
export type Unknown = typeof UNKNOWN;

/** A duration as written in source: milliseconds, `"10 minutes"`, or {@link UNKNOWN}. */
export type DurationValue = number | string;

/** One analysed workflow class. `version` is the schema version (always 1). */
export interface WorkflowGraph {
  version: 1;
  workflow: WorkflowDescriptor;
}

/** The root of a workflow graph: the `run` method's nodes plus every helper that reaches a step. */
export interface WorkflowDescriptor {
  /** The class name as written (for a minified bundle, the minified name). */
  class_name: string;
  /**
   * Helper functions and methods that (directly or transitively) call steps, keyed by name.
   * Module functions use their own name; class methods use `"Class.method"`.
   * Helpers without steps are pruned, as Cloudflare does.
   */
  functions: Record<string, FunctionDefNode>;
  /** The body of `run(event, step)`. */
  nodes: GraphNode[];
}

/** Fields every node carries. */
export interface NodeBase {
  /** Deterministic path id (see the module doc). Stable for the same source. */
  id: string;
  /** For collapsed containers: true; the children were removed by {@link collapseGraph}. */
  collapsed?: boolean;
  /** For collapsed containers: how many step nodes were hidden. */
  hidden_steps?: number;
}

/**
 * Parallelism without `Promise.*`: a promise created without `await` gets `starts: k` (the current
 * await counter of its function); the `await` that later settles it bumps the counter and stores
 * `resolves: k + 1`. Nodes with equal `starts` run side by side. Awaited steps have neither field.
 */
export interface Concurrency {
  starts?: number;
  resolves?: number;
}

/** The engine's step kinds (`sleepUntil` is a `"sleep"`), as used in step keys `(kind, name, count)`. */
export type StepKind = "do" | "sleep" | "waitForEvent";

/** Fields every step node carries. */
export interface StepBase extends NodeBase, Concurrency {
  kind: StepKind;
  /** The step name; template literals and other dynamic parts render as `${source}` placeholders. */
  name: string;
  /** True when `name` holds `${…}` placeholders (it is a pattern, not one literal name). */
  dynamic_name?: boolean;
}

/** Retry policy of a `step.do`, with engine defaults filled in for fields the source leaves out. */
export interface RetriesDescriptor {
  limit: number | Unknown;
  delay: DurationValue;
  backoff: "constant" | "linear" | "exponential" | Unknown | (string & {});
}

/** A `step.do` config; unresolvable fields hold {@link UNKNOWN}. */
export interface StepConfigDescriptor {
  retries: RetriesDescriptor;
  timeout: DurationValue;
}

/** `step.do(name, [config], callback)`. `nodes` holds steps found inside the callback, if any. */
export interface StepDoNode extends StepBase {
  type: "step_do";
  kind: "do";
  config: StepConfigDescriptor;
  nodes: GraphNode[];
}

/** `step.sleep(name, duration)`. */
export interface StepSleepNode extends StepBase {
  type: "step_sleep";
  kind: "sleep";
  duration: DurationValue;
}

/** `step.sleepUntil(name, timestamp)`: `timestamp` is the constant value (string or epoch ms) or unknown. */
export interface StepSleepUntilNode extends StepBase {
  type: "step_sleep_until";
  kind: "sleep";
  timestamp: string | number;
}

/** `step.waitForEvent(name, { type, timeout })`; `options` is null when no options are passed. */
export interface StepWaitForEventNode extends StepBase {
  type: "step_wait_for_event";
  kind: "waitForEvent";
  options: { event_type: string; timeout: DurationValue } | null;
}

/** How a loop was written. */
export type LoopKind = "for" | "for_of" | "for_in" | "while" | "do_while" | "for_each" | "map";

/** Any loop: statement loops, `forEach`, and `.map` (inside `Promise.all` it sits in a `parallel`). */
export interface LoopNode extends NodeBase {
  type: "loop";
  loop_kind?: LoopKind;
  nodes: GraphNode[];
}

/** `Promise.all | any | allSettled | race`; each child is one concurrent branch (a `block` if several steps). */
export interface ParallelNode extends NodeBase {
  type: "parallel";
  kind: "all" | "any" | "all_settled" | "race";
  nodes: GraphNode[];
}

/** A sequence of nodes: try/catch/finally parts and multi-step parallel branches. */
export interface BlockNode extends NodeBase {
  type: "block";
  nodes: GraphNode[];
}

/** One branch of an `if` or `switch`: `condition` is source text, null for `else`/`default`. */
export interface Branch {
  id: string;
  condition: string | null;
  nodes: GraphNode[];
}

/** if/else-if/else chains, ternaries, and `&&`/`||`/`??` guards around steps. */
export interface IfNode extends NodeBase {
  type: "if";
  branches: Branch[];
}

/** `switch (discriminant)`; one branch per `case` (condition = the case test's source text). */
export interface SwitchNode extends NodeBase {
  type: "switch";
  discriminant: string;
  branches: Branch[];
}

/** `try { } catch { } finally { }`; absent parts are null. */
export interface TryNode extends NodeBase {
  type: "try";
  try_block: BlockNode;
  catch_block: BlockNode | null;
  finally_block: BlockNode | null;
}

/**
 * A call of a helper that reaches steps. `name` is a key of `workflow.functions`, except when the
 * helper could not be found in the analysed source (an import from another module that receives
 * the step object): then `unresolved` is true and there is no definition.
 */
export interface FunctionCallNode extends NodeBase, Concurrency {
  type: "function_call";
  name: string;
  unresolved?: boolean;
}

/** A helper's sub-graph. */
export interface FunctionDefNode extends NodeBase {
  type: "function_def";
  name: string;
  nodes: GraphNode[];
}

/** An early exit: `break` out of a loop, or `return` before the end of the function. */
export interface BreakNode extends NodeBase {
  type: "break";
  kind: "break" | "return";
}

/** Step nodes. */
export type StepNode = StepDoNode | StepSleepNode | StepSleepUntilNode | StepWaitForEventNode;

/** Every node that can appear in a `nodes` list. */
export type GraphNode =
  | StepNode
  | LoopNode
  | ParallelNode
  | BlockNode
  | IfNode
  | SwitchNode
  | TryNode
  | FunctionCallNode
  | BreakNode;

/** Options of {@link analyzeWorkflows}. */
export interface AnalyzeOptions {
  /** Used to pick the dialect (`.ts`, `.tsx`, `.js`, `.mjs`, …). Default `"workflow.ts"`. */
  filename?: string;
}
