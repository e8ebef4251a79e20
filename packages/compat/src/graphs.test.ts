// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step names hold ${…} placeholders.
import { fileURLToPath } from "node:url";
import { analyzeWorkflows, graphOf } from "@cairn/diagram";
import { createApi, startServer } from "@cairn/server";
import { afterEach, describe, expect, it } from "vitest";
import { ProcessOrder } from "../../../examples/orders/workflow.ts";
import { copyStarter, makeProject, removeProject, STARTER } from "../fixtures/helpers.ts";
import { bundleEntry, projectGraphs } from "./graphs.ts";
import { hostProject } from "./host.ts";
import { loadProject } from "./project.ts";

const ORDERS = fileURLToPath(new URL("../../../examples/orders/workflow.ts", import.meta.url));

/** `type name` of each node, with children indented: a compact structural picture of a graph. */
function outline(nodes: any[], depth = 0): string[] {
  return nodes.flatMap((n) => {
    const head = `${"  ".repeat(depth)}${n.type}${n.name !== undefined ? ` ${n.name}` : ""}`;
    const kids = [
      ...(n.nodes ?? []),
      ...(n.branches ?? []).flatMap((b: any) => b.nodes),
      ...[n.try_block, n.catch_block, n.finally_block].flatMap((b: any) => b?.nodes ?? []),
    ];
    return [head, ...outline(kids, depth + 1)];
  });
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe("the example projects' workflows, analysed", () => {
  it("cloudflare-starter: the bundled entry gives MyWorkflow's graph", async () => {
    const project = await loadProject(STARTER);
    const graphs = await projectGraphs(project);
    const graph = graphs.get("my-workflow")!;
    expect(graph.workflow.class_name).toBe("MyWorkflow");
    expect(outline(graph.workflow.nodes)).toEqual([
      "step_do validate order",
      "step_do charge card",
      "step_sleep cool off",
      "if",
      "  step_wait_for_event wait for approval",
      "step_do send receipt",
    ]);
    const [, charge, sleep, branch] = graph.workflow.nodes as any[];
    expect(charge).toMatchObject({
      id: "n1",
      kind: "do",
      config: { retries: { limit: 3, delay: "1 second", backoff: "exponential" }, timeout: "30 seconds" },
    });
    expect(sleep).toMatchObject({ kind: "sleep", duration: "2 seconds" });
    expect(branch.branches[0].condition).toBe("order.amount > Number(this.env.APPROVAL_THRESHOLD)");
    expect(branch.branches[0].nodes[0]).toMatchObject({
      id: "n3.0.0",
      kind: "waitForEvent",
      options: { event_type: "approval", timeout: "1 hour" },
    });
  });

  it("orders: ProcessOrder from its file, from a bundle and from the class alone agree", async () => {
    const expected = [
      "step_do reserve stock",
      "step_do charge card",
      "step_sleep cool off",
      "step_wait_for_event wait for approval",
      "step_do ship",
    ];
    const { readFileSync } = await import("node:fs");
    const [fromFile] = analyzeWorkflows(readFileSync(ORDERS, "utf8"), { filename: "workflow.ts" });
    const [fromBundle] = analyzeWorkflows(await bundleEntry(ORDERS), { filename: "bundle.js" });
    const fromClass = graphOf(ProcessOrder);
    for (const graph of [fromFile, fromBundle, fromClass]) {
      expect(graph?.workflow.class_name).toBe("ProcessOrder");
      expect(outline(graph!.workflow.nodes)).toEqual(expected);
    }
    expect(fromBundle!.workflow.nodes[1]).toMatchObject({
      config: { retries: { limit: 3, delay: 200, backoff: "exponential" }, timeout: "30 seconds" },
    });
    expect(fromBundle!.workflow.nodes[3]).toMatchObject({ options: { event_type: "approved" } });
  });

  it("follows helpers imported from other files of the project, and an export under another name", async () => {
    const dir = makeProject({
      "wrangler.jsonc": JSON.stringify({
        name: "helpers",
        main: "src/index.ts",
        workflows: [{ binding: "W", name: "w", class_name: "Exported" }],
      }),
      "src/steps.ts": `import type { WorkflowStep } from "cloudflare:workers";
        export const RETRY = { retries: { limit: 7, delay: 10, backoff: "constant" as const }, timeout: 1000 };
        export async function chargeAll(step: WorkflowStep, ids: string[]) {
          for (const id of ids) await step.do(\`charge \${id}\`, RETRY, async () => id);
        }`,
      "src/index.ts": `import { WorkflowEntrypoint } from "cloudflare:workers";
        import { chargeAll } from "./steps";
        class Inner extends WorkflowEntrypoint {
          async run(event: any, step: any) {
            await step.do("load", async () => [1, 2]);
            await chargeAll(step, ["a", "b"]);
          }
        }
        export { Inner as Exported };`,
    });
    cleanup.push(() => removeProject(dir));
    const graphs = await projectGraphs(await loadProject(dir));
    const graph = graphs.get("w")!;
    expect(outline(graph.workflow.nodes)).toEqual(["step_do load", "function_call chargeAll"]);
    expect(outline(graph.workflow.functions.chargeAll!.nodes)).toEqual(["loop", "  step_do charge ${id}"]);
    expect((graph.workflow.functions.chargeAll!.nodes[0] as any).nodes[0]).toMatchObject({
      dynamic_name: true,
      config: { retries: { limit: 7, delay: 10, backoff: "constant" }, timeout: 1000 },
    });
  });
});

describe("GET /api/v1/workflows/:name/graph through hostProject", () => {
  it("serves the starter's graph, and 404 for an unknown workflow", async () => {
    const dir = copyStarter();
    cleanup.push(() => removeProject(dir));
    const hosted = await hostProject(dir, { port: 0, store: ":memory:", createApi, startServer });
    cleanup.push(() => hosted.close());
    const res = await fetch(`${hosted.url}/api/v1/workflows/my-workflow/graph`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.success).toBe(true);
    expect(body.result.version).toBe(1);
    expect(body.result.workflow.class_name).toBe("MyWorkflow");
    expect(body.result.workflow.nodes.map((n: any) => n.name ?? n.type)).toEqual([
      "validate order",
      "charge card",
      "cool off",
      "if",
      "send receipt",
    ]);
    const missing = await fetch(`${hosted.url}/api/v1/workflows/nope/graph`);
    expect(missing.status).toBe(404);
  });
});
