// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step names hold ${…} placeholders.
import { describe, expect, it } from "vitest";
import { analyzeWorkflows } from "./analyzer/index.ts";
import { collapsibleBoxIds, layoutGraph } from "./layout.ts";
import { matchesStep, namePattern, overlayOf, type StepRun } from "./overlay.ts";

const SOURCE = `class W extends WorkflowEntrypoint {
  async run(event, step) {
    await step.do("load", async () => 1);
    for (const x of xs) await step.do(\`item \${x.id}\`, async () => x);
    await step.do("load", async () => 2);
    if (event.payload.a) await helper(step); else await step.sleep("nap", 10);
  }
}
async function helper(step) { await step.waitForEvent("ok", { type: "ok" }); }`;
const graph = analyzeWorkflows(SOURCE)[0]!;

const run = (kind: StepRun["kind"], name: string, count: number, state: StepRun["state"], attempts = 1) => ({
  kind,
  name,
  count,
  state,
  attempts,
});

describe("layoutGraph", () => {
  it("inlines helper calls, marks steps repeated in loops and helpers, and numbers the others", async () => {
    const layout = await layoutGraph(graph, { inlineCalls: true });
    const steps = Object.fromEntries(layout.boxes.filter((b) => b.step).map((b) => [b.id, b.step]));
    expect(steps.n0).toMatchObject({ name: "load", repeated: false, ordinal: 1 });
    expect(steps["n1.0"]).toMatchObject({ name: "item ${x.id}", dynamic: true, repeated: true });
    expect(steps.n2).toMatchObject({ name: "load", repeated: false, ordinal: 2 });
    expect(steps["n3.0.0/f:helper.0"]).toMatchObject({ kind: "waitForEvent", repeated: true });
    expect(layout.boxes.find((b) => b.id === "n3.0.0")).toMatchObject({ container: true, collapsible: true });
    expect(collapsibleBoxIds(graph, { inlineCalls: true })).toEqual(
      expect.arrayContaining(["n1", "n3", "n3.0", "n3.1", "n3.0.0"]),
    );
  });

  it("draws a collapsed container as one box listing the steps it hides", async () => {
    const layout = await layoutGraph(graph, { inlineCalls: true, collapsed: new Set(["n3"]) });
    const ids = layout.boxes.map((b) => b.id);
    expect(ids).not.toContain("n3.1.0");
    const folded = layout.boxes.find((b) => b.id === "n3")!;
    expect(folded).toMatchObject({ container: false, collapsed: true, title: "if (1 step hidden)" });
    expect(folded.hidden!.map((s) => s.name)).toEqual(["ok", "nap"]);
  });
});

describe("overlay", () => {
  it("matches names, ${…} patterns and counts", () => {
    expect(namePattern("item ${x.id} of ${{ a: 1 }.a}").test("item 7 of 1")).toBe(true);
    expect(namePattern("a.b (c)").test("aXb (c)")).toBe(false);
    const first = { kind: "do" as const, name: "load", dynamic: false, repeated: false, ordinal: 1 };
    expect(matchesStep(first, { kind: "do", name: "load", count: 1 })).toBe(true);
    expect(matchesStep(first, { kind: "do", name: "load", count: 2 })).toBe(false);
    expect(matchesStep(first, { kind: "sleep", name: "load", count: 1 })).toBe(false);
    const looped = { kind: "do" as const, name: "item ${x.id}", dynamic: true, repeated: true, ordinal: 0 };
    expect(matchesStep(looped, { kind: "do", name: "item 3", count: 1 })).toBe(true);
    expect(matchesStep(looped, { kind: "do", name: "other", count: 1 })).toBe(false);
  });

  it("gives pending/skipped to unreached nodes and the most telling state of several runs", () => {
    const looped = [{ kind: "do" as const, name: "item ${x}", dynamic: true, repeated: true, ordinal: 0 }];
    expect(overlayOf(looped, [], false).state).toBe("pending");
    expect(overlayOf(looped, [], true).state).toBe("skipped");
    const runs = [run("do", "item 1", 1, "succeeded"), run("do", "item 2", 1, "retrying", 2)];
    expect(overlayOf(looped, runs, false)).toMatchObject({ state: "retrying", attempts: 2 });
    expect(overlayOf(looped, [runs[0]!, run("do", "item 2", 1, "failed", 3)], true).state).toBe("failed");
    expect(overlayOf(looped, [runs[0]!, run("do", "item 2", 1, "succeeded")], true)).toMatchObject({
      state: "succeeded",
      runs: [expect.anything(), expect.anything()],
    });
  });
});
