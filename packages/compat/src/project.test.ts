import { afterEach, describe, expect, it } from "vitest";
import { copyStarter, makeProject, removeProject, STARTER } from "../fixtures/helpers.ts";
import { isWorkflowClass, loadProject, ProjectError } from "./project.ts";

const dirs: string[] = [];
const project = (files: Record<string, string>) => {
  const dir = makeProject(files);
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) removeProject(d);
});

const wrangler = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    name: "fixture",
    main: "src/index.ts",
    workflows: [{ binding: "FLOW", name: "flow", class_name: "Flow" }],
    ...extra,
  });

describe("loadProject", () => {
  it("loads the Cloudflare starter example unchanged", async () => {
    const p = await loadProject(STARTER);
    expect(p).toMatchObject({
      name: "cloudflare-starter",
      kind: "wrangler",
      dir: STARTER,
      vars: { GREETING: "Hello", APPROVAL_THRESHOLD: 100 },
      storePath: `${STARTER}/.cairn/cairn.db`,
    });
    expect(p.workflows).toHaveLength(1);
    expect(p.workflows[0]).toMatchObject({ binding: "MY_WORKFLOW", name: "my-workflow" });
    expect(p.workflows[0]!.class.name).toBe("MyWorkflow");
    expect(isWorkflowClass(p.workflows[0]!.class)).toBe(true);
    expect(typeof p.fetch).toBe("function");
  });

  it("runs full TypeScript: enums, parameter properties, extension-less imports, namespaces", async () => {
    const dir = project({
      "wrangler.json": wrangler(),
      "src/index.ts": `
        import { WorkflowEntrypoint, WorkflowStep, WorkflowEvent } from "cloudflare:workers";
        import { NonRetryableError } from "cloudflare:workflows";
        import { Color, Box } from "./lib";
        namespace Util { export const twice = (n: number) => n * 2; }
        export class Flow extends WorkflowEntrypoint<{}, { n: number }> {
          async run(event: WorkflowEvent<{ n: number }>, step: WorkflowStep) {
            if (event.payload.n < 0) throw new NonRetryableError("negative");
            return step.do("x", async () => new Box(Color.Green).describe() + Util.twice(event.payload.n));
          }
        }
        export default {
          async fetch(request: Request, env: Record<string, unknown>) {
            return new Response(\`\${Color.Red}:\${new Box(Color.Blue).describe()}:\${env.X}\`);
          },
        };
      `,
      "src/lib.ts": `
        export enum Color { Red = "red", Green = "green", Blue = "blue" }
        export class Box { constructor(private readonly color: Color) {} describe(): string { return this.color; } }
      `,
    });
    const p = await loadProject(dir);
    const response = await p.fetch!(new Request("http://x/"), { X: 1 }, {} as never);
    expect(await response.text()).toBe("red:blue:1");
    expect(p.workflows[0]!.class.name).toBe("Flow");
  });

  it("loads a wrangler.toml project with plain JavaScript and no fetch handler", async () => {
    const dir = project({
      "wrangler.toml":
        'main = "worker.mjs"\n[[workflows]]\nbinding = "FLOW"\nname = "flow"\nclass_name = "Flow"\n',
      "worker.mjs": `import { WorkflowEntrypoint } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint { async run() { return 1; } }`,
    });
    const p = await loadProject(dir);
    expect(p.fetch).toBeUndefined();
    expect(p.name).toBe(dir.split("/").pop());
  });

  it("accepts a default class with fetch (WorkerEntrypoint style), made per request with (ctx, env)", async () => {
    const dir = project({
      "wrangler.json": wrangler(),
      "src/index.ts": `
        import { WorkerEntrypoint, WorkflowEntrypoint, DurableObject, env } from "cloudflare:workers";
        export class Flow extends WorkflowEntrypoint { async run() { return 1; } }
        export class Counter extends DurableObject {}
        export default class extends WorkerEntrypoint<{ X: string }> {
          async fetch(request: Request) { return new Response(this.env.X + typeof this.ctx.waitUntil + typeof env); }
        }
      `,
    });
    const p = await loadProject(dir);
    const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} };
    expect(await (await p.fetch!(new Request("http://x/"), { X: "x" }, ctx)).text()).toBe("xfunctionobject");
  });

  it("fails clearly when a class_name is not exported", async () => {
    const dir = project({
      "wrangler.json": wrangler(),
      "src/index.ts": `import { WorkflowEntrypoint } from "cloudflare:workers";
        export class Other extends WorkflowEntrypoint { async run() {} }`,
    });
    await expect(loadProject(dir)).rejects.toThrow(
      'src/index.ts does not export "Flow" (workflow "flow" in wrangler.json); exports: Other',
    );
  });

  it("fails clearly when the export is not a WorkflowEntrypoint subclass", async () => {
    const notClass = project({ "wrangler.json": wrangler(), "src/index.ts": "export const Flow = 42;" });
    await expect(loadProject(notClass)).rejects.toThrow(
      'src/index.ts: export "Flow" (workflow "flow") is not a class (it is number)',
    );
    const plain = project({
      "wrangler.json": wrangler(),
      "src/index.ts": "export class Flow { async run() {} }",
    });
    await expect(loadProject(plain)).rejects.toThrow(
      'src/index.ts: export "Flow" (workflow "flow") does not extend WorkflowEntrypoint',
    );
    await expect(loadProject(plain)).rejects.toBeInstanceOf(ProjectError);
  });

  it("fails clearly when main is missing or the module throws", async () => {
    const missing = project({ "wrangler.json": wrangler({ main: "src/nope.ts" }) });
    await expect(loadProject(missing)).rejects.toThrow(/main "src\/nope.ts" does not exist/);
    const throwing = project({ "wrangler.json": wrangler(), "src/index.ts": 'throw new Error("boom");' });
    await expect(loadProject(throwing)).rejects.toThrow(/Cannot load .*src\/index.ts: boom/);
    const empty = project({});
    await expect(loadProject(empty)).rejects.toThrow(/No project in .*: expected wrangler.jsonc/);
    await expect(loadProject(`${empty}/nowhere`)).rejects.toThrow(/does not exist/);
  });

  it("loads a Cairn-native project from cairn.config.ts", async () => {
    const dir = project({
      "cairn.config.ts": `
        import { WorkflowEntrypoint, type WorkflowStep } from "cairnjs";
        class Flow extends WorkflowEntrypoint { async run(_e: unknown, step: WorkflowStep) { return step.do("a", async () => 1); } }
        export default {
          store: "data/state.db",
          maxConcurrent: 5,
          env: { API_KEY: "k" },
          workflows: [{ binding: "FLOW", name: "flow", class: Flow }],
          fetch: () => new Response("native"),
        };
      `,
    });
    const p = await loadProject(dir);
    expect(p).toMatchObject({
      kind: "cairn",
      vars: { API_KEY: "k" },
      storePath: `${dir}/data/state.db`,
      options: { maxConcurrent: 5 },
    });
    expect(p.workflows.map((w) => [w.binding, w.name, w.class.name])).toEqual([["FLOW", "flow", "Flow"]]);
    expect(await (await p.fetch!(new Request("http://x/"), {}, {} as never)).text()).toBe("native");
  });

  it("picks a named configuration file, and a file given as the directory", async () => {
    const dir = copyStarter();
    dirs.push(dir);
    const p = await loadProject(`${dir}/wrangler.jsonc`);
    expect(p.dir).toBe(dir);
    expect((await loadProject(dir, { config: "wrangler.jsonc" })).configPath).toBe(`${dir}/wrangler.jsonc`);
  });
});
