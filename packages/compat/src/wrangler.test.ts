import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadWranglerConfig, parseWranglerConfig, WranglerConfigError } from "./wrangler.ts";

const project = (files: Record<string, string>) => {
  const dir = mkdtempSync(join(tmpdir(), "cairn-wrangler-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
};

const workflow = { binding: "MY_WORKFLOW", name: "my-workflow", class_name: "MyWorkflow" };
const json = (value: unknown) => JSON.stringify(value, null, 2);
const errorOf = (text: string, file = "wrangler.json") => {
  try {
    parseWranglerConfig(text, `/p/${file}`);
  } catch (e) {
    expect(e).toBeInstanceOf(WranglerConfigError);
    return (e as Error).message;
  }
  throw new Error("expected an error");
};

describe("loadWranglerConfig", () => {
  it("reads wrangler.jsonc with comments and trailing commas", () => {
    const dir = project({
      "wrangler.jsonc": `// a comment
      {
        /* block */ "name": "starter",
        "main": "src/index.ts", // entry
        "compatibility_date": "2025-09-01",
        "workflows": [{ "binding": "MY_WORKFLOW", "name": "my-workflow", "class_name": "MyWorkflow", },],
        "vars": { "GREETING": "hi", "LIMIT": 3, "ON": true, "OBJ": { "a": 1 }, },
      }`,
    });
    expect(loadWranglerConfig(dir)).toEqual({
      name: "starter",
      main: "src/index.ts",
      workflows: [workflow],
      durableObjects: [],
      migrations: [],
      vars: { GREETING: "hi", LIMIT: 3, ON: true, OBJ: { a: 1 } },
      path: join(dir, "wrangler.jsonc"),
      warnings: [],
    });
  });

  it("reads wrangler.json, with vars defaulting to {}", () => {
    const dir = project({ "wrangler.json": json({ main: "index.js", workflows: [workflow] }) });
    const config = loadWranglerConfig(dir);
    expect(config).toMatchObject({ main: "index.js", workflows: [workflow], vars: {} });
    expect(config.name).toBeUndefined();
  });

  it("reads wrangler.toml", () => {
    const dir = project({
      "wrangler.toml": `name = "toml-worker"
main = "src/index.ts"
compatibility_date = "2025-09-01"

[vars]
GREETING = "hello"

[[workflows]]
binding = "MY_WORKFLOW"
name = "my-workflow"
class_name = "MyWorkflow"

[[workflows]]
binding = "OTHER"
name = "other"
class_name = "Other"
`,
    });
    expect(loadWranglerConfig(dir)).toMatchObject({
      name: "toml-worker",
      main: "src/index.ts",
      workflows: [workflow, { binding: "OTHER", name: "other", class_name: "Other" }],
      vars: { GREETING: "hello" },
    });
  });

  it("uses the first file found: jsonc, then json, then toml; or the file named", () => {
    const jsonc = json({ main: "a.ts", workflows: [workflow] });
    const other = json({ main: "b.ts", workflows: [workflow] });
    const dir = project({ "wrangler.jsonc": jsonc, "wrangler.json": other, "wrangler.toml": "main = 1" });
    expect(loadWranglerConfig(dir).main).toBe("a.ts");
    expect(loadWranglerConfig(join(dir, "wrangler.json")).main).toBe("b.ts");
    const dir2 = project({ "wrangler.json": other, "wrangler.toml": "main = 1" });
    expect(loadWranglerConfig(dir2).main).toBe("b.ts");
  });

  it("says which files it looked for when there is none", () => {
    const dir = project({});
    expect(() => loadWranglerConfig(dir)).toThrow(
      /no wrangler configuration found \(looked for wrangler\.jsonc, wrangler\.json, wrangler\.toml\)/,
    );
  });

  it("names the file and the position of a syntax error", () => {
    const dir = project({ "wrangler.jsonc": '{\n  "main": "x.ts"\n  "workflows": []\n}' });
    expect(() => loadWranglerConfig(dir)).toThrow(
      new RegExp(`^${join(dir, "wrangler.jsonc")}: invalid JSON at line 3, column 3: CommaExpected`),
    );
    const toml = project({ "wrangler.toml": 'main = "x.ts"\nworkflows = [' });
    expect(() => loadWranglerConfig(toml)).toThrow(
      new RegExp(`^${join(toml, "wrangler.toml")}: invalid TOML`),
    );
  });
});

describe("parseWranglerConfig errors name the file and the field", () => {
  it("missing main", () => {
    expect(errorOf(json({ workflows: [workflow] }))).toBe(
      '/p/wrangler.json: main: needs "main", the entry module (e.g. "src/index.ts")',
    );
  });

  it("missing or empty workflows", () => {
    expect(errorOf(json({ main: "x.ts" }))).toBe(
      '/p/wrangler.json: workflows: needs "workflows", a list of { binding, name, class_name }',
    );
    expect(errorOf(json({ main: "x.ts", workflows: [] }))).toBe(
      '/p/wrangler.json: workflows: needs at least one entry in "workflows"',
    );
  });

  it("a workflow without binding, name or class_name", () => {
    const { binding: _b, ...noBinding } = workflow;
    const { name: _n, ...noName } = workflow;
    const { class_name: _c, ...noClass } = workflow;
    expect(errorOf(json({ main: "x.ts", workflows: [noBinding] }))).toBe(
      "/p/wrangler.json: workflows[0].binding: needs a binding (a string)",
    );
    expect(errorOf(json({ main: "x.ts", workflows: [workflow, { ...noName, binding: "B" }] }))).toBe(
      "/p/wrangler.json: workflows[1].name: needs a name (a string)",
    );
    expect(errorOf(json({ main: "x.ts", workflows: [noClass] }))).toBe(
      "/p/wrangler.json: workflows[0].class_name: needs a class_name (a string)",
    );
  });

  it("duplicate bindings and names", () => {
    const twice = json({ main: "x.ts", workflows: [workflow, { ...workflow, name: "second" }] });
    expect(errorOf(twice)).toBe(
      '/p/wrangler.json: workflows[1].binding: binding "MY_WORKFLOW" is already used by workflows[0]',
    );
    const sameName = json({ main: "x.ts", workflows: [workflow, { ...workflow, binding: "B" }] });
    expect(errorOf(sameName)).toBe(
      '/p/wrangler.json: workflows[1].name: workflow name "my-workflow" is already used by workflows[0]',
    );
  });

  it("bad names", () => {
    expect(errorOf(json({ main: "x.ts", workflows: [{ ...workflow, name: "my workflow" }] }))).toBe(
      "/p/wrangler.json: workflows[0].name: name must match ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$",
    );
    expect(errorOf(json({ main: "x.ts", workflows: [{ ...workflow, name: "x".repeat(65) }] }))).toBe(
      "/p/wrangler.json: workflows[0].name: name must be at most 64 characters",
    );
    expect(errorOf(json({ main: "x.ts", workflows: [{ ...workflow, binding: "MY-WORKFLOW" }] }))).toBe(
      "/p/wrangler.json: workflows[0].binding: binding must be a JavaScript identifier, like MY_WORKFLOW",
    );
    expect(errorOf(json({ main: "x.ts", workflows: [{ ...workflow, class_name: "1Class" }] }))).toBe(
      "/p/wrangler.json: workflows[0].class_name: class_name must be the name of an exported class",
    );
  });

  it("other workers' workflows, bad vars, not an object", () => {
    expect(errorOf(json({ main: "x.ts", workflows: [{ ...workflow, script_name: "other" }] }))).toMatch(
      /workflows\[0\]\.script_name: script_name \(a workflow of another Worker\) is not supported/,
    );
    expect(errorOf(json({ main: "x.ts", workflows: [workflow], vars: { A: null } }))).toBe(
      "/p/wrangler.json: vars.A: vars values must be strings, numbers, booleans or objects",
    );
    expect(errorOf("[]")).toBe("/p/wrangler.json: the configuration must be an object");
  });

  it("reports every problem at once", () => {
    expect(errorOf(json({ workflows: [{ binding: "A" }] }))).toBe(
      '/p/wrangler.json: main: needs "main", the entry module (e.g. "src/index.ts"); ' +
        "workflows[0].name: needs a name (a string); workflows[0].class_name: needs a class_name (a string)",
    );
  });
});

describe("schedules, triggers.crons and limits.steps (SPEC §9.3, §9.4)", () => {
  it("reads workflows[].schedules (a string or a list), triggers.crons and limits.steps", () => {
    const config = parseWranglerConfig(
      json({
        main: "x.ts",
        workflows: [
          { ...workflow, schedules: "0  * * * *", limits: { steps: 25_000 } },
          {
            binding: "DAILY",
            name: "daily",
            class_name: "Daily",
            schedules: ["0 6 * * mon-fri", "30 1 L * *"],
          },
        ],
        triggers: { crons: ["*/15 * * * *"] },
      }),
      "/p/wrangler.json",
    );
    expect(config.workflows).toEqual([
      { ...workflow, schedules: ["0 * * * *"], limits: { steps: 25_000 } },
      { binding: "DAILY", name: "daily", class_name: "Daily", schedules: ["0 6 * * mon-fri", "30 1 L * *"] },
    ]);
    expect(config.crons).toEqual(["*/15 * * * *"]);
    expect(config.warnings).toEqual([]);
  });

  it("refuses an invalid expression at load, naming the binding, the expression and why", () => {
    const load = (over: object) => () =>
      parseWranglerConfig(json({ main: "x.ts", ...over }), "/p/wrangler.json");
    expect(load({ workflows: [{ ...workflow, schedules: ["0 * * * *", "0 25 * * *"] }] })).toThrow(
      "(workflow.invalid_schedule) MY_WORKFLOW: 0 25 * * *: Invalid value for hour: 25",
    );
    expect(load({ workflows: [workflow], triggers: { crons: ["every day"] } })).toThrow(
      "(workflow.invalid_schedule) triggers.crons: every day: ",
    );
    expect(errorOf(json({ main: "x.ts", workflows: [{ ...workflow, schedules: 5 }] }))).toBe(
      "/p/wrangler.json: workflows[0].schedules: schedules must be a cron expression or a list of them",
    );
    expect(errorOf(json({ main: "x.ts", workflows: [{ ...workflow, limits: { steps: 30_000 } }] }))).toBe(
      "/p/wrangler.json: workflows[0].limits.steps: limits.steps must be at most 25,000",
    );
  });
});

describe("limits.cpu_ms (SPEC §12.2)", () => {
  it("is read as the CPU limit attempts are measured against", () => {
    const c = parseWranglerConfig(
      json({ main: "src/index.ts", workflows: [workflow], limits: { cpu_ms: 300_000 } }),
      "/p/wrangler.json",
    );
    expect(c.cpuLimitMs).toBe(300_000);
    expect(
      parseWranglerConfig(json({ main: "src/index.ts", workflows: [workflow] }), "/p/wrangler.json")
        .cpuLimitMs,
    ).toBeUndefined();
  });

  it("refuses a value that is not a positive whole number of ms", () => {
    expect(errorOf(json({ main: "a.ts", limits: { cpu_ms: "5 minutes" } }))).toContain(
      "limits.cpu_ms must be a number of milliseconds",
    );
    expect(errorOf(json({ main: "a.ts", limits: { cpu_ms: 0 } }))).toContain(
      "limits.cpu_ms must be more than 0",
    );
    expect(errorOf(json({ main: "a.ts", limits: { cpu_ms: 1.5 } }))).toContain(
      "limits.cpu_ms must be a whole number of milliseconds",
    );
  });
});
