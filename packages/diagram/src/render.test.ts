// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step names hold ${…} placeholders.
import { describe, expect, it } from "vitest";
import { analyzeWorkflows } from "./analyzer/index.ts";
import { collapseGraph, collapsibleIds } from "./collapse.ts";
import { toMermaid } from "./mermaid.ts";
import { toSvg } from "./svg.ts";
import { analyzeFixture } from "./test-support/shapes.ts";
import type { WorkflowGraph } from "./types.ts";

/** Checks that every tag opened in `xml` is closed in order (a small well-formedness check). */
function expectBalancedTags(xml: string): void {
  const stack: string[] = [];
  for (const match of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = match;
    if (selfClosing) continue;
    if (closing) expect(stack.pop()).toBe(name);
    else stack.push(name!);
  }
  expect(stack).toEqual([]);
}

/** A workflow of 50 steps mixing loops, branches, parallel groups and helpers. */
function bigWorkflow(): WorkflowGraph {
  const lines: string[] = [];
  for (let i = 0; i < 50; i++) {
    const stepCall = `await step.do("step number ${i} with a fairly long descriptive name", async () => ${i});`;
    if (i % 10 === 3) lines.push(`for (const x of xs) { ${stepCall} }`);
    else if (i % 10 === 6)
      lines.push(`if (flag${i}) { ${stepCall} } else { await step.sleep("nap ${i}", "1 minute"); }`);
    else if (i % 10 === 8)
      lines.push(`await Promise.all([step.do("p${i}a", async () => 1), step.do("p${i}b", async () => 2)]);`);
    else lines.push(stepCall);
  }
  const source = `import { WorkflowEntrypoint } from "cloudflare:workers";
export class Big extends WorkflowEntrypoint { async run(event, step) { ${lines.join("\n")} } }`;
  return analyzeWorkflows(source)[0]!;
}

describe("toMermaid", () => {
  it("renders a flowchart with subgraphs and every step label", () => {
    const [graph] = analyzeFixture("nested-branches-in-loops.ts");
    const text = toMermaid(graph!);
    expect(text.startsWith("flowchart TD\n")).toBe(true);
    for (const label of [
      "pack carefully",
      "ship",
      "for…of loop",
      "order.total #gt; 100",
      "line.fragile",
      "else",
    ]) {
      expect(text).toContain(label);
    }
    const opened = text.match(/^\s*subgraph /gm)?.length ?? 0;
    const closed = text.match(/^\s*end$/gm)?.length ?? 0;
    expect(opened).toBe(closed);
    expect(text).toContain("start --> n0");
    expect(text).toContain("n0 --> done");
  });

  it("draws helpers as subgraphs and un-awaited steps with dotted arrows", () => {
    const [graph] = analyzeFixture("promise-chain-unawaited.ts");
    const text = toMermaid(graph!);
    expect(text).toContain('subgraph f_audit["audit()"]');
    expect(text).toContain("start -.-> n0");
    expect(text).toContain('n0[["audit()<br/>call"]]');
  });

  it("escapes quotes, angle brackets and # in labels", () => {
    const [graph] = analyzeWorkflows(`class W extends WorkflowEntrypoint {
      async run(e, step) { await step.do('say "hi" <b>#1</b>', async () => 1); } }`);
    const text = toMermaid(graph!);
    expect(text).toContain("say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt;");
    expect(text).not.toContain('"hi"');
  });

  it("renders try/catch/finally, switch and parallel groups", () => {
    const text = [
      toMermaid(analyzeFixture("try-catch-finally.ts")[0]!),
      toMermaid(analyzeFixture("switch.ts")[0]!),
      toMermaid(analyzeFixture("parallel-all.ts")[0]!),
    ].join("");
    for (const label of [
      '"catch"',
      '"finally"',
      "-. error .->",
      "case #quot;refund#quot;",
      '"default"',
      "Promise.all",
    ]) {
      expect(text).toContain(label);
    }
  });
});

describe("toSvg", () => {
  it("produces a self-contained, well-formed SVG with escaped labels", async () => {
    const [graph] = analyzeWorkflows(`class W extends WorkflowEntrypoint {
      async run(e, step) { await step.do("a < b & \\"c\\"", async () => 1); await step.sleep("nap", "1 minute"); } }`);
    const svg = await toSvg(graph!);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain("<style>");
    expect(svg).toContain("a &lt; b &amp; &quot;c&quot;");
    expect(svg).toContain('data-kind="sleep" data-name="nap"');
    expect(svg).not.toMatch(/NaN|undefined/);
    expectBalancedTags(svg);
  });

  it("lays out compound nodes for loops, branches, parallel groups, try blocks and helpers", async () => {
    for (const name of [
      "nested-branches-in-loops.ts",
      "parallel-map.ts",
      "try-catch-finally.ts",
      "helpers-chain.ts",
    ]) {
      const svg = await toSvg(analyzeFixture(name)[0]!);
      expectBalancedTags(svg);
      expect(svg).not.toMatch(/NaN/);
      expect(svg).toMatch(/class="container (loop|parallel|try|function)/);
      expect(svg).toContain('class="edge"');
    }
  });

  it("renders a 50-step workflow", async () => {
    const graph = bigWorkflow();
    const svg = await toSvg(graph);
    expectBalancedTags(svg);
    expect(svg.match(/data-kind="/g)?.length).toBe(60);
    expect(svg).toContain("step number 49 with a fairly long descr…");
    const [, width, height] = svg.match(/width="(\d+)" height="(\d+)"/)!;
    expect(Number(width)).toBeGreaterThan(200);
    expect(Number(height)).toBeGreaterThan(1000);
  });
});

describe("collapseGraph", () => {
  it("folds containers by id without touching the input", () => {
    const [graph] = analyzeFixture("nested-branches-in-loops.ts");
    const before = JSON.stringify(graph);
    const folded = collapseGraph(graph!, new Set(["n0.0"]));
    expect(JSON.stringify(graph)).toBe(before);
    const loopNode = folded.workflow.nodes[0]!;
    expect(loopNode.type === "loop" && loopNode.nodes[0]).toMatchObject({
      type: "if",
      id: "n0.0",
      collapsed: true,
      hidden_steps: 2,
      branches: [{ condition: "order.total > 100", nodes: [] }],
    });
  });

  it("folds helpers by their f:<name> id and lists collapsible ids", () => {
    const [graph] = analyzeFixture("helpers-chain.ts");
    expect(collapsibleIds(graph!)).toEqual(["f:countdown.0", "f:chargeCard", "f:sendReceipt", "f:countdown"]);
    const folded = collapseGraph(graph!, new Set(["f:chargeCard"]));
    expect(folded.workflow.functions.chargeCard).toMatchObject({
      collapsed: true,
      hidden_steps: 1,
      nodes: [],
    });
  });

  it("renders collapsed containers as single boxes", async () => {
    const graph = bigWorkflow();
    const ids = new Set(collapsibleIds(graph));
    const svg = await toSvg(graph, { collapsed: ids });
    expect(svg).toContain("steps hidden");
    expect(svg.match(/data-kind="/g)?.length).toBeLessThan(60);
    expect(toMermaid(collapseGraph(graph, ids))).toContain("⊕");
  });
});
