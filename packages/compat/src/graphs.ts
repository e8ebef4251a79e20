/**
 * Diagram graphs of a project's workflows: the entry module is bundled in memory with esbuild (the
 * project's own files only; packages and `cloudflare:*`/`node:*` stay imports), then analysed by
 * `@cairn/diagram`, which reads the code and never runs it. Bundling first lets the analyser see
 * helpers and constants the workflow classes import from other files of the project.
 */
import { dirname } from "node:path";
import type { WorkflowClass } from "@cairn/core";
import { analyzeWorkflows, graphOf, type WorkflowGraph } from "@cairn/diagram";

/**
 * A workflow to find a graph for: its class (whose own source is the fallback), or only the
 * class's name where the class lives in another thread.
 */
export interface GraphWorkflow {
  name: string;
  /** The export naming the class (wrangler's `class_name`). */
  className?: string;
  class?: WorkflowClass;
  /** The class's own name, when `class` is not at hand. */
  classOwnName?: string;
}

/**
 * Bundles `entry` (TypeScript or JavaScript) into one ESM module, in memory. Bare imports
 * (packages), `cloudflare:*` and `node:*` are left as imports.
 */
export async function bundleEntry(entry: string, tsconfig?: string): Promise<string> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: dirname(entry),
    bundle: true,
    format: "esm",
    platform: "node",
    target: "es2022",
    external: ["cloudflare:*", "node:*"],
    packages: "external",
    write: false,
    logLevel: "silent",
    ...(tsconfig ? { tsconfig } : {}),
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error(`esbuild produced no output for ${entry}`);
  return file.text;
}

/**
 * The graph of each of the project's workflows, by workflow name. A workflow whose class the
 * bundle does not show (or a project that fails to bundle) falls back to the class's own source
 * text (`graphOf`), which misses helpers defined outside the class; failing that it has no graph.
 */
export async function projectGraphs(
  project: { entry: string; workflows: GraphWorkflow[] },
  log?: (message: string, error?: unknown) => void,
): Promise<Map<string, WorkflowGraph>> {
  let graphs: WorkflowGraph[] = [];
  try {
    graphs = analyzeWorkflows(await bundleEntry(project.entry), { filename: "bundle.js" });
  } catch (e) {
    log?.(`Diagrams: cannot bundle ${project.entry}; analysing the workflow classes alone`, e);
  }
  const byName = new Map<string, WorkflowGraph>();
  for (const workflow of project.workflows) {
    const graph = pick(graphs, workflow) ?? (workflow.class ? graphOf(workflow.class) : undefined);
    if (graph) byName.set(workflow.name, graph);
  }
  return byName;
}

/** The bundle's graph for a workflow: by its `class_name`, by the class's own name, or renamed (`X2`). */
function pick(graphs: WorkflowGraph[], workflow: GraphWorkflow): WorkflowGraph | undefined {
  const names = [workflow.className, workflow.class?.name ?? workflow.classOwnName].filter(
    (n): n is string => !!n,
  );
  for (const name of names) {
    const exact = graphs.find((g) => g.workflow.class_name === name);
    if (exact) return exact;
  }
  // esbuild renames a class whose name collides with another top-level name (`MyWorkflow2`).
  for (const name of names) {
    const renamed = graphs.filter((g) => new RegExp(`^${name}\\d+$`).test(g.workflow.class_name));
    if (renamed.length === 1) return renamed[0];
  }
  return undefined;
}
