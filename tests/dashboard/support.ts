/**
 * A real Cairn with @cairn/server and the built dashboard, in this process, for the browser tests
 * and the screenshot script; and Debian's chromium driven by playwright-core.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { DASHBOARD_PATH, dashboardBuilt, dashboardDir } from "@cairn/dashboard";
import { graphOf } from "@cairn/diagram";
import { type ApiOptions, createApi, type RunningServer, startServer } from "@cairn/server";
import {
  type Cairn,
  createCairn,
  NonRetryableError,
  WorkflowEntrypoint,
  type WorkflowEvent,
  type WorkflowStep,
} from "cairnjs";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
];

/**
 * Why the browser tests cannot run here, or undefined when they can. Under `CI=true` a missing
 * browser is a failure, not a skip (`scripts/ensure-chromium.sh` installs it).
 */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `${CHROMIUM} is missing: run scripts/ensure-chromium.sh (apt-get install chromium) to run the dashboard's browser tests`;
}

/**
 * Whether a file's browser tests are skipped here: Chromium is missing and this is not CI (a warning
 * says so, naming `what`). Under `CI=true` they run, and `openPage` fails on the missing browser.
 */
export function skipBrowserTests(what: string): boolean {
  const missing = browserMissing();
  if (missing === undefined || process.env.CI === "true") return false;
  console.warn(`Skipping ${what}: ${missing}`);
  return true;
}

/** Counts of step callback runs, by workflow and step, to check what a restart re-ran. */
export const runs = new Map<string, number>();
function ran<T>(key: string, result: T): T {
  runs.set(key, (runs.get(key) ?? 0) + 1);
  return result;
}

/** One step, then returns its params. Used for the 1,000-instance list. */
export class Echo extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    return await step.do("echo", async () => event.payload ?? null);
  }
}

/** Runs a step, sleeps `params.sleepMs` (default 1.5 s), runs another, completes. */
export class Nap extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<{ sleepMs?: number }>, step: WorkflowStep) {
    const started = await step.do("prepare", async () => ({ at: new Date().toISOString() }));
    await step.sleep("nap", event.payload?.sleepMs ?? 1500);
    const done = await step.do("finish", async () => "rested");
    return { started, done };
  }
}

/** Loads an order, waits for an "approved" event, then ships it. */
export class Approval extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<{ order?: string }>, step: WorkflowStep) {
    const order = await step.do("load order", async () => ({
      id: event.payload?.order ?? "42",
      total: 99.5,
    }));
    const approval = await step.waitForEvent("approval", { type: "approved", timeout: "1 hour" });
    const shipped = await step.do("ship", async () => ({ shipped: true, by: approval.payload }));
    return { order, shipped };
  }
}

const flaky = new Map<string, number>();
/** A step that fails twice before it succeeds (short retry waits), a sleep, then a last step. */
export class Flaky extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const charged = await step.do(
      "charge card",
      { retries: { limit: 3, delay: 400, backoff: "linear" }, timeout: "10 seconds" },
      async (ctx) => {
        const n = (flaky.get(event.instanceId) ?? 0) + 1;
        flaky.set(event.instanceId, n);
        if (ctx.attempt < 3) throw new Error(`card declined (attempt ${ctx.attempt})`);
        return { receipt: `r-${event.instanceId}`, attempts: ctx.attempt };
      },
    );
    await step.sleep("settle", 600);
    await step.do("notify", async () => ({ sent: true, receipt: charged.receipt }));
    return charged;
  }
}

/** Three steps that count their runs: restarting from "b-1" must not run "a" again. */
export class Pipeline extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    const id = event.instanceId;
    const a = await step.do("a", async () => ran(`${id}/a`, "A"));
    const b = await step.do("b", async () => ran(`${id}/b`, "B"));
    const c = await step.do("c", async () => ran(`${id}/c`, "C"));
    return a + b + c;
  }
}

/** One step that keeps the thread busy for `params.ms` (CPU time for the Metrics tab). */
export class Busy extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<{ ms?: number }>, step: WorkflowStep) {
    return await step.do("spin", async () => {
      const end = performance.now() + (event.payload?.ms ?? 1);
      let n = 0;
      while (performance.now() < end) n++;
      return n > 0;
    });
  }
}

/** Fails for good. */
export class Broken extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("validate", async () => {
      throw new NonRetryableError("order total must be positive");
    });
  }
}

/** Held "process" steps of Batch, by instance: the test releases them to watch the diagram change. */
export const gates = new Map<string, { promise: Promise<void>; open: () => void }>();
export function gate(instanceId: string) {
  let g = gates.get(instanceId);
  if (!g) {
    let open!: () => void;
    const promise = new Promise<void>((r) => (open = r));
    g = { promise, open };
    gates.set(instanceId, g);
  }
  return g;
}

/**
 * Loads items, processes each in a loop (held by `gate(id)` when the test made one), sleeps,
 * waits for an "approved" event, then ships (or rushes, per the event).
 */
export class Batch extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<{ items?: string[]; sleepMs?: number }>, step: WorkflowStep) {
    const items = await step.do("load items", async () => event.payload?.items ?? ["a", "b", "c"]);
    const done: string[] = [];
    for (const item of items) {
      done.push(
        await step.do(`process ${item}`, async () => {
          await gates.get(event.instanceId)?.promise;
          return item.toUpperCase();
        }),
      );
    }
    await step.sleep("cool down", event.payload?.sleepMs ?? 1000);
    const approval = await step.waitForEvent<{ rush?: boolean }>("approval", {
      type: "approved",
      timeout: "1 hour",
    });
    if (approval.payload?.rush) {
      await step.do("rush", async () => "rushed");
    } else {
      await step.do("ship", async () => "shipped");
    }
    return done;
  }
}

export interface Served {
  cairn: Cairn;
  server: RunningServer;
  /** e.g. "http://127.0.0.1:41234" */
  url: string;
  /** The dashboard's address, e.g. "http://127.0.0.1:41234/_cairn/". */
  dashboard: string;
  close(): Promise<void>;
}

/** Builds the dashboard if it is not built yet (the repository's `npm install` builds it). */
export function ensureDashboardBuilt(): void {
  if (dashboardBuilt()) return;
  execFileSync("npm", ["run", "build", "-w", "@cairn/dashboard"], { stdio: "inherit" });
}

export async function serve(options: { token?: string; store?: string } = {}): Promise<Served> {
  ensureDashboardBuilt();
  const cairn = await createCairn({
    store: options.store ?? ":memory:",
    defaultRetryDelay: 200,
    workflows: [
      { binding: "ECHO", name: "echo", class: Echo },
      { binding: "NAP", name: "nap", class: Nap },
      { binding: "APPROVAL", name: "approval", class: Approval },
      { binding: "FLAKY", name: "flaky", class: Flaky },
      { binding: "PIPELINE", name: "pipeline", class: Pipeline },
      { binding: "BROKEN", name: "broken", class: Broken },
      { binding: "BATCH", name: "batch", class: Batch },
      { binding: "BUSY", name: "busy", class: Busy },
    ],
  });
  // Diagrams from each class's own source (what an app calling createCairn directly can do).
  const graphs = new Map(cairn.runtime.workflows.map((w) => [w.name, graphOf(w.class)]));
  const app = createApi({
    runtime: cairn.runtime,
    dashboard: { dir: dashboardDir },
    pollMs: 250,
    graph: (name) => graphs.get(name),
    ...(options.token ? { token: options.token } : {}),
  });
  const server = await startServer({ app, port: 0 });
  return {
    cairn,
    server,
    url: server.url,
    dashboard: `${server.url}${DASHBOARD_PATH}`,
    async close() {
      await server.close();
      await cairn.close();
    },
  };
}

/**
 * The API with the built dashboard on a free port, for pages that need a Cairn of their own (objects,
 * agents, sandboxes): `options` as `createApi` takes them, the dashboard added.
 */
export async function serveApi(options: Omit<ApiOptions, "dashboard">): Promise<RunningServer> {
  ensureDashboardBuilt();
  return startServer({ app: createApi({ ...options, dashboard: { dir: dashboardDir } }), port: 0 });
}

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
}

export async function newContext(
  browser: Browser,
  options: { dark?: boolean; width?: number; height?: number } = {},
): Promise<BrowserContext> {
  return browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 860 },
    colorScheme: options.dark ? "dark" : "light",
    reducedMotion: "reduce",
  });
}

export interface OpenPage {
  browser: Browser;
  context: BrowserContext;
  page: Page;
}

/**
 * Chromium with one page whose actions time out after `timeoutMs`: what each browser test file opens
 * first. Fails, saying how to install it, when Chromium is missing.
 */
export async function openPage(timeoutMs = 10_000): Promise<OpenPage> {
  const missing = browserMissing();
  if (missing) throw new Error(missing);
  const browser = await launch();
  const context = await newContext(browser);
  const page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  return { browser, context, page };
}

/** Polls `check` until it is truthy (for API state that changes after a click). */
export async function until<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
