// biome-ignore-all lint/suspicious/noTemplateCurlyInString: expected step names hold ${…} placeholders.
import { describe, expect, it } from "vitest";
import { analyzeWorkflows } from "./analyzer/index.ts";
import {
  analyzeFixture,
  block,
  branch,
  call,
  config,
  exit,
  ifNode,
  loop,
  parallel,
  shape,
  shapesOf,
  sleep,
  sleepUntil,
  step,
  waitFor,
} from "./test-support/shapes.ts";

/** The shaped `run` nodes of the only workflow in a fixture. */
function runOf(name: string) {
  const graphs = shapesOf(name);
  expect(graphs).toHaveLength(1);
  return graphs[0]!.nodes;
}

describe("analyzeWorkflows: sequences and loops", () => {
  it("sequential steps of every kind", () => {
    expect(runOf("sequential.ts")).toEqual([
      step("load order"),
      sleep("cool off", "10 minutes"),
      sleepUntil("wake at", "2030-01-01T00:00:00Z"),
      waitFor("approval", "approved", "1 day"),
    ]);
  });

  it("for loop with a template name", () => {
    expect(runOf("loop-for.ts")).toEqual([loop("for", step("fetch page ${i}")), step("done")]);
  });

  it("for…of loop", () => {
    expect(runOf("loop-for-of.ts")).toEqual([
      step("list items"),
      loop("for_of", step("process ${item.id}"), sleep("pace", 1000)),
    ]);
  });

  it("for…in loop", () => {
    expect(runOf("loop-for-in.ts")).toEqual([loop("for_in", step("apply setting"))]);
  });

  it("while loop with a break", () => {
    expect(runOf("loop-while.ts")).toEqual([
      loop(
        "while",
        step("check status"),
        ifNode(branch('status === "ready"', exit("break"))),
        sleep("wait before polling", "30 seconds"),
      ),
    ]);
  });

  it("do…while loop", () => {
    expect(runOf("loop-do-while.ts")).toEqual([loop("do_while", step("fetch batch"))]);
  });

  it("forEach with an async callback; forEach without steps is dropped", () => {
    expect(runOf("loop-foreach.ts")).toEqual([loop("for_each", step("email ${user.email}"))]);
  });

  it("nested branches inside loops", () => {
    expect(runOf("nested-branches-in-loops.ts")).toEqual([
      loop(
        "for_of",
        ifNode(
          branch(
            "order.total > 100",
            loop(
              "for_of",
              ifNode(branch("line.fragile", step("pack carefully")), branch(null, step("pack"))),
            ),
          ),
        ),
        step("ship"),
      ),
    ]);
  });
});

describe("analyzeWorkflows: parallelism", () => {
  it(".map inside Promise.all is a loop inside a parallel", () => {
    expect(runOf("parallel-map.ts")).toEqual([
      step("list ids"),
      parallel("all", loop("map", step("resize ${id}"))),
      step("summarize"),
    ]);
  });

  it("Promise.all with an async IIFE branch", () => {
    expect(runOf("parallel-all.ts")).toEqual([
      parallel(
        "all",
        step("load user"),
        step("load account"),
        block(sleep("settle", "5 seconds"), step("warm cache")),
      ),
    ]);
  });

  it("Promise.race, any and allSettled", () => {
    expect(runOf("parallel-kinds.ts")).toEqual([
      parallel("race", waitFor("manual approval", "approve"), sleep("deadline", "1 hour")),
      parallel("any", step("mirror a"), step("mirror b")),
      parallel("all_settled", step("notify slack")),
    ]);
  });

  it("un-awaited steps awaited later carry starts/resolves", () => {
    expect(runOf("unawaited.ts")).toEqual([
      step("start a", { starts: 1, resolves: 2 }),
      step("start b", { starts: 1, resolves: 3 }),
      step("in between"),
      step("start c", { starts: 2, resolves: 3 }),
      step("fire and forget", { starts: 3 }),
    ]);
  });

  it("un-awaited helper calls, sleeps and mapped promises", () => {
    const [graph] = shapesOf("promise-chain-unawaited.ts");
    expect(graph!.nodes).toEqual([
      call("audit", { starts: 1, resolves: 3 }),
      sleep("grace period", "1 minute", { starts: 1, resolves: 2 }),
      step("main work"),
      loop("map", step("index ${id}", { starts: 3, resolves: 4 })),
    ]);
    expect(graph!.functions).toEqual({ audit: [step("audit")] });
  });
});

describe("analyzeWorkflows: conditionals", () => {
  it("if / else-if / else, keeping an empty middle branch and dropping a stepless if", () => {
    expect(runOf("if-else-chain.ts")).toEqual([
      ifNode(
        branch('tier === "gold"', step("gold perks")),
        branch('tier === "silver"', step("silver perks")),
        branch('tier === "bronze"'),
        branch(null, step("basic perks")),
      ),
    ]);
  });

  it("ternary", () => {
    expect(runOf("ternary.ts")).toEqual([
      ifNode(branch("event.payload.fast", step("fast path")), branch(null, step("slow path"))),
    ]);
  });

  it("&&, ?? and || guards", () => {
    expect(runOf("guards.ts")).toEqual([
      ifNode(branch("event.payload.notify", step("notify"))),
      ifNode(branch("cached == null", step("compute"))),
      ifNode(branch("!(value.valid)", step("repair"))),
    ]);
  });

  it("switch with fall-out breaks and default", () => {
    expect(runOf("switch.ts")).toEqual([
      {
        type: "switch",
        discriminant: "event.payload.kind",
        branches: [
          branch('"refund"', step("refund")),
          branch('"exchange"', step("exchange"), sleep("wait for return", "3 days")),
          branch('"noop"'),
          branch(null, step("escalate")),
        ],
      },
    ]);
  });

  it("try / catch / finally", () => {
    expect(runOf("try-catch-finally.ts")).toEqual([
      {
        type: "try",
        try_block: block(step("reserve"), step("charge")),
        catch_block: block(step("release")),
        finally_block: block(step("audit")),
      },
      { type: "try", try_block: block(step("optional")), catch_block: block() },
    ]);
  });

  it("early returns are breaks, the trailing return is not", () => {
    expect(runOf("early-return.ts")).toEqual([
      ifNode(branch("!event.payload.enabled", exit("return"))),
      step("work"),
      ifNode(branch("result.done"), branch(null, step("finish"))),
    ]);
  });
});

describe("analyzeWorkflows: helpers", () => {
  it("helpers calling helpers, recursion, and pruning of stepless helpers", () => {
    const [graph] = shapesOf("helpers-chain.ts");
    expect(graph!.nodes).toEqual([call("chargeCard"), call("countdown")]);
    expect(graph!.functions).toEqual({
      chargeCard: [step("charge ${order.id}"), call("sendReceipt")],
      sendReceipt: [step("send receipt")],
      countdown: [ifNode(branch("n === 0", exit("return"))), sleep("tick", "1 second"), call("countdown")],
    });
  });

  it("class methods and arrow-function fields", () => {
    const [graph] = shapesOf("methods.ts");
    expect(graph!.nodes).toEqual([call("Onboarding.createAccount"), call("Onboarding.welcome")]);
    expect(graph!.functions).toEqual({
      "Onboarding.createAccount": [step("create account"), call("Onboarding.verify")],
      "Onboarding.verify": [waitFor("email verified", "verified", "7 days")],
      "Onboarding.welcome": [step("send welcome")],
    });
  });

  it("closures over the step object inside run", () => {
    const [graph] = shapesOf("closure-helper.ts");
    expect(graph!.nodes).toEqual([call("notify"), call("notify"), call("cleanup")]);
    expect(graph!.functions).toEqual({ notify: [step("notify ${channel}")], cleanup: [step("cleanup")] });
  });

  it("the step object under another name, aliased, and passed in another position", () => {
    const [graph] = shapesOf("step-alias.ts");
    expect(graph!.nodes).toEqual([step("through alias"), call("record")]);
    expect(graph!.functions).toEqual({ record: [step("${label}")] });
  });

  it("imported helpers that receive the step object are unresolved calls", () => {
    expect(runOf("unresolved-helper.ts")).toEqual([
      call("chargeCard", { unresolved: true }),
      call("shipping.ship", { unresolved: true }),
    ]);
  });

  it("steps inside callbacks: then, catch, wrappers, and nested in a step callback", () => {
    expect(runOf("callbacks.ts")).toEqual([
      step("load"),
      step("use"),
      { type: "try", try_block: block(step("risky")), catch_block: block(step("recover")) },
      step("wrapped"),
      step("outer", { nodes: [step("inner")] }),
    ]);
  });
});

describe("analyzeWorkflows: returns inside callbacks", () => {
  it("a return inside a step callback, a map callback or a then callback ends that callback, not the workflow", () => {
    expect(runOf("callback-returns.ts")).toEqual([
      step("load user"),
      step("outer", { nodes: [step("inner")] }),
      parallel("all", loop("map", step("resize ${id}"))),
      step("load"),
      step("use"),
      ifNode(branch("!user.active", exit("return"))),
      step("notify"),
    ]);
  });
});

describe("analyzeWorkflows: names and configs", () => {
  it("template, concatenated and variable names; constants folded", () => {
    const [graph] = analyzeFixture("dynamic-names.ts");
    const names = graph!.workflow.nodes.map((n) => ("name" in n ? [n.name, n.dynamic_name ?? false] : []));
    expect(names).toEqual([
      ["billing: open", false],
      ["sync ${region} at ${Date.now()}", true],
      ["invoice ${event.payload.id}", true],
      ["${region}", true],
      ["billing-pause", false],
    ]);
  });

  it("constant configs: literals, named consts, spreads, members, arithmetic, defaults", () => {
    expect(runOf("configs-constant.ts")).toEqual([
      step("inline", config(1, "1 second", "exponential", "30 seconds")),
      step("named", config(3, "5 seconds", "linear", "2 minutes")),
      step("spread", config(3, "5 seconds", "linear", "1 minute")),
      step("member", config(10, 60000, "constant", 1800000)),
      step("timeout only", config(5, "10 seconds", "exponential", "1 minute")),
      sleep("constant sleep", "1 minute"),
      waitFor("no timeout", "ping"),
    ]);
  });

  it("non-constant configs become unknown, field by field", () => {
    const u = "unknown";
    expect(runOf("configs-dynamic.ts")).toEqual([
      step("from payload", config(u, u, u, u)),
      step("partly known", config(u, u, "linear", "10 minutes")),
      sleep("computed sleep", u),
      sleepUntil("computed time", u),
      waitFor("computed event", u, u),
      waitFor("opaque options", u, u),
    ]);
  });

  it("step nodes carry the engine's step kind for live overlays", () => {
    const [graph] = analyzeFixture("sequential.ts");
    expect(graph!.workflow.nodes.map((n) => ("kind" in n ? n.kind : null))).toEqual([
      "do",
      "sleep",
      "sleep",
      "waitForEvent",
    ]);
  });
});

describe("analyzeWorkflows: classes, bundles and robustness", () => {
  it("a minified bundle with a renamed import, comma expressions and !0", () => {
    const graphs = shapesOf("bundle.min.js");
    expect(graphs.map((g) => g.class_name)).toEqual(["W", "X"]);
    expect(graphs[0]!.nodes).toEqual([
      step("load"),
      ifNode(branch("!n.ok", exit("return"))),
      loop(
        "for_of",
        ifNode(
          branch("o.big", step("big item", config(2, "1 second", "constant", "1 minute"))),
          branch(null, call("k")),
        ),
      ),
      parallel("all", sleep("a", "1 second"), step("b")),
      ifNode(branch("n.x", waitFor("confirm", "ok"))),
    ]);
    expect(graphs[0]!.functions).toEqual({ k: [step("notify ${e.id}")] });
    expect(graphs[1]!.nodes).toEqual([step("plain class step")]);
  });

  it("a minified class with switch, try, for(;;), ternary and ?? in one return", () => {
    expect(runOf("minified-sequence.min.js")).toEqual([
      {
        type: "switch",
        discriminant: "e.t",
        branches: [branch("1", step("one")), branch(null, step("other"))],
      },
      { type: "try", try_block: block(step("try")), catch_block: block(step("catch")) },
      loop("for", sleep("loop sleep", 1000)),
      ifNode(branch("e.q", step("q"))),
      ifNode(branch("e.z == null", step("z"))),
    ]);
  });

  it("constructs it does not know are skipped or searched, never fatal", () => {
    const graphs = shapesOf("unknown-constructs.ts");
    expect(graphs.map((g) => g.class_name)).toEqual(["Weird", "Local"]);
    expect(graphs[0]!.nodes).toEqual([
      step("string key"),
      loop("for_of", loop("for_of", ifNode(branch("item.stop", exit("break"))), step("labelled loop"))),
      step("in object"),
      step("in tagged template"),
      loop("for_of", step("for await")),
      step("unknown"),
    ]);
  });

  it("import aliases, namespaces, subclasses and default exports", () => {
    expect(shapesOf("aliases.ts").map((g) => [g.class_name, g.nodes])).toEqual([
      ["ViaAlias", [step("alias")]],
      ["ViaNamespace", [step("namespace")]],
      ["ViaSubclass", [step("subclass")]],
      ["default", [step("default export")]],
    ]);
  });

  it("two workflow classes in one file, a plain class with run ignored", () => {
    expect(shapesOf("two-classes.ts").map((g) => [g.class_name, g.nodes])).toEqual([
      ["First", [step("first step")]],
      ["Second", [sleep("second sleep", "1 second")]],
    ]);
  });

  it("a file without a workflow yields no graphs", () => {
    expect(analyzeFixture("no-workflow.ts")).toEqual([]);
  });

  it("source that does not parse yields no graphs", () => {
    expect(
      analyzeWorkflows("export class A extends WorkflowEntrypoint { async run(e, step) { await step.do("),
    ).toEqual([]);
    expect(analyzeWorkflows("")).toEqual([]);
  });

  it("writes the Cloudflare envelope with deterministic path ids", () => {
    const [graph] = analyzeFixture("nested-branches-in-loops.ts");
    expect(graph!.version).toBe(1);
    expect(graph!.workflow.class_name).toBe("Nested");
    const root = graph!.workflow.nodes[0]!;
    expect(root.id).toBe("n0");
    const inner =
      root.type === "loop" && root.nodes[0]!.type === "if" ? root.nodes[0]!.branches[0]! : undefined;
    expect(inner?.id).toBe("n0.0.0");
    expect(inner?.nodes[0]?.id).toBe("n0.0.0.0");
    expect(analyzeFixture("nested-branches-in-loops.ts")).toEqual([graph]);
    expect(shape(graph)).toEqual(shape(JSON.parse(JSON.stringify(graph))));
  });

  it("helper definitions get f:<name> ids", () => {
    const [graph] = analyzeFixture("helpers-chain.ts");
    expect(graph!.workflow.functions.chargeCard).toMatchObject({
      type: "function_def",
      id: "f:chargeCard",
      name: "chargeCard",
      nodes: [{ id: "f:chargeCard.0" }, { id: "f:chargeCard.1" }],
    });
  });
});
