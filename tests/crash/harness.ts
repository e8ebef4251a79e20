/**
 * Test-side helpers for the crash tests: start `worker.ts` as a child process, synchronise on the
 * JSON lines it prints, SIGKILL it, and read what is durable in its SQLite file and side log.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import type { SqlRow } from "@cairn/store";
import { sqliteRows } from "@cairn/store-sqlite";
import type { WorkerConfig } from "./worker.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
/** Node 24 from the repository's devDependencies (the system node may be older). */
const NODE = join(root, "node_modules/.bin/node");
const WORKER = join(here, "worker.ts");

/** One JSON line printed by the worker (loosely shaped). */
export type WorkerEvent = Record<string, any> & { event: string };

const live = new Set<Worker>();
const dirs = new Set<string>();

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "cairn-crash-"));
  dirs.add(dir);
  return dir;
}

/** For afterEach: SIGKILL every worker still alive and remove the temp dirs. */
export async function cleanUp(): Promise<void> {
  await Promise.all([...live].map((w) => w.kill()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/** One worker process. */
export class Worker {
  readonly events: WorkerEvent[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  #stderr = "";
  #buffer = "";
  #notify = new Set<() => void>();
  #tags = 0;
  #dead = false;

  private constructor(readonly config: WorkerConfig) {
    // `source` resolves the workspace packages to their TypeScript sources (as vitest does), so the
    // child never runs a stale build.
    this.child = spawn(
      NODE,
      ["--conditions=source", "--disable-warning=ExperimentalWarning", WORKER, JSON.stringify(config)],
      {
        cwd: root,
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    live.add(this);
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (chunk: string) => {
      this.#buffer += chunk;
      let nl = this.#buffer.indexOf("\n");
      while (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        if (line.trim()) {
          try {
            this.events.push(JSON.parse(line) as WorkerEvent);
          } catch {
            this.events.push({ event: "unparsed", line });
          }
        }
        nl = this.#buffer.indexOf("\n");
      }
      this.#wake();
    });
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (chunk: string) => (this.#stderr += chunk));
    this.child.stdin!.on("error", () => {}); // writes after death
    this.exited = new Promise((r) =>
      this.child.once("exit", () => {
        this.#dead = true;
        live.delete(this);
        this.#wake();
        r();
      }),
    );
  }

  /** Starts a worker and waits until it has opened the store. */
  static async start(config: WorkerConfig): Promise<Worker> {
    const w = new Worker(config);
    await w.waitFor((e) => e.event === "ready", { what: "ready" });
    return w;
  }

  #wake(): void {
    for (const n of this.#notify) n();
  }

  /**
   * The first event (from index `from` on) that matches; waits for it. Fails if the worker dies first,
   * prints `fatal`/`engine-log`, or nothing matches within `timeoutMs`.
   */
  async waitFor(
    match: (e: WorkerEvent) => boolean,
    options: { from?: number; timeoutMs?: number; what?: string } = {},
  ): Promise<WorkerEvent> {
    const { from = 0, timeoutMs = 15_000, what = String(match) } = options;
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.events.length; i++) {
        const e = this.events[i]!;
        if (match(e)) return e;
        if (e.event === "fatal" || e.event === "engine-log")
          throw new Error(`worker reported ${JSON.stringify(e)}`);
      }
      if (this.#dead)
        throw new Error(`worker ${this.config.gen} exited while waiting for ${what}\n${this.#stderr}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${what}; last events: ${JSON.stringify(this.events.slice(-5))}\n${this.#stderr}`,
        );
      await new Promise<void>((r) => {
        const done = () => {
          this.#notify.delete(done);
          clearTimeout(t);
          r();
        };
        const t = setTimeout(done, left);
        this.#notify.add(done);
      });
    }
  }

  send(command: Record<string, unknown>): void {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  /** Sends a command and waits for its answer; throws the worker's error. */
  async request(command: Record<string, unknown>, timeoutMs?: number): Promise<WorkerEvent> {
    const tag = `t${++this.#tags}`;
    const from = this.events.length;
    this.send({ ...command, tag });
    const answer = await this.waitFor((e) => e.tag === tag && (e.event === "ok" || e.event === "error"), {
      from,
      timeoutMs,
      what: `answer to ${JSON.stringify(command).slice(0, 200)}`,
    });
    if (answer.event === "error") throw new Error(`worker: ${answer.message}`);
    return answer;
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    if (!this.#dead) this.child.kill("SIGKILL");
    await this.exited;
  }

  get stderr(): string {
    return this.#stderr;
  }
}

// ---- what is durable -------------------------------------------------------------------------

export interface StepSnapshot {
  workflow: string;
  instance: string;
  kind: string;
  name: string;
  count: number;
  status: string;
  result: Buffer | null;
  wakeAt: number | null;
  startedAt: number;
  attempts: number;
}

export interface Snapshot {
  instances: Map<string, { status: string; readyAt: number | null; output: Buffer | null }>;
  /** Keyed `instance/kind/name/count`. */
  steps: Map<string, StepSnapshot>;
  history: {
    instance: string;
    type: string;
    timestamp: number;
    step: string | null;
    data: Record<string, unknown> | null;
  }[];
  events: { instance: string; type: string; consumedBy: string | null }[];
}

export const stepId = (instance: string, kind: string, name: string, count = 1) =>
  `${instance}/${kind}/${name}/${count}`;

/** Reads the store file with a connection of its own (run it while no worker is alive). */
export function snapshot(dir: string): Snapshot {
  const db = new DatabaseSync(join(dir, "cairn.db"), { readOnly: true });
  try {
    const instances = new Map<string, { status: string; readyAt: number | null; output: Buffer | null }>();
    for (const r of db.prepare("SELECT id, status, ready_at, output FROM instances").all() as Record<
      string,
      unknown
    >[])
      instances.set(r.id as string, {
        status: r.status as string,
        readyAt: r.ready_at === null ? null : Number(r.ready_at),
        output: r.output ? Buffer.from(r.output as Uint8Array) : null,
      });
    const steps = new Map<string, StepSnapshot>();
    for (const r of db.prepare("SELECT * FROM steps").all() as Record<string, unknown>[]) {
      const s: StepSnapshot = {
        workflow: r.workflow as string,
        instance: r.instance_id as string,
        kind: r.kind as string,
        name: r.name as string,
        count: Number(r.count),
        status: r.status as string,
        result: r.result ? Buffer.from(r.result as Uint8Array) : null,
        wakeAt: r.wake_at === null ? null : Number(r.wake_at),
        startedAt: Number(r.started_at),
        attempts: Number(r.attempts),
      };
      steps.set(stepId(s.instance, s.kind, s.name, s.count), s);
    }
    // Read as the store reads it: a packed row holds several entries of one step.
    const history = (db.prepare("SELECT * FROM history ORDER BY event_id").all() as SqlRow[])
      .flatMap(sqliteRows.history)
      .map((e) => ({
        instance: e.instanceId,
        type: e.type,
        timestamp: e.timestamp,
        step: e.step ? stepId(e.instanceId, e.step.kind, e.step.name, e.step.count) : null,
        data: (e.data as Record<string, unknown> | undefined) ?? null,
      }));
    const events = (
      db.prepare("SELECT instance_id, type, consumed_by FROM events ORDER BY seq").all() as Record<
        string,
        unknown
      >[]
    ).map((r) => ({
      instance: r.instance_id as string,
      type: r.type as string,
      consumedBy: (r.consumed_by as string | null) ?? null,
    }));
    return { instances, steps, history, events };
  } finally {
    db.close();
  }
}

export interface CallRecord {
  gen: number;
  pid: number;
  instance: string;
  step: string;
  count: number;
  attempt: number;
  phase: "start" | "end";
  nonce?: string;
}

/** Every step callback execution, as the workflows recorded it in calls.log. */
export function calls(dir: string): CallRecord[] {
  const path = join(dir, "calls.log");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as CallRecord);
}

/** Callback starts of one step, as `[gen, gen, …]`. */
export function starts(records: CallRecord[], instance: string, step: string): number[] {
  return records
    .filter((r) => r.instance === instance && r.step === step && r.phase === "start")
    .map((r) => r.gen);
}
