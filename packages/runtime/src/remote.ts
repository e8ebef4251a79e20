import {
  NonRetryableError,
  type StepKind,
  stepKeyString,
  WorkflowEntrypoint,
  WorkflowError,
  type WorkflowEvent,
  WorkflowFatalError,
  type WorkflowStep,
  type WorkflowStepConfig,
  WorkflowTimeoutError,
  waitMode,
} from "@cairn/core";
import type { StepRow } from "@cairn/store";
import { decodeValue } from "./codec.ts";
import type { RunInfo, Runtime, WorkflowDefinition } from "./runtime.ts";
import { reportCpuTime } from "./telemetry.ts";

/**
 * Workflows whose code runs in a remote worker (the Python SDK's `cairn_worker`), driven over
 * the worker protocol (SPEC §11.3; versions 1 and 2, see `WORKER_PROTOCOLS`).
 *
 * The remote worker only replays `run()` and runs step callbacks. Every durable decision stays in
 * this process, made by the same engine as for TypeScript workflows: each remote workflow is
 * registered with the runtime as a class whose `run(event, step)` turns the worker's commands into
 * calls of the real `step` object (`step.do` with a callback that resolves when the worker reports
 * the attempt, `step.sleep`, `step.waitForEvent`). Retries, backoff, timeouts, hot waits, suspension,
 * pause, limits and fencing are therefore exactly those of `InstanceRun`, committed through the same
 * store methods. A run that is suspended or aborted ends its task; the next run (a replay after the
 * wake-up) is a new task carrying the stored outcomes, which the worker answers locally.
 *
 * Invariants: one current task per run; a command is accepted only from the worker holding the task
 * at the task's epoch (else `lease.lost`, 409, nothing written); a repeated `seq` gets the reply of
 * the first; calls of the `step` object happen in count order per `(kind, name)` (a command for
 * count n waits until count n-1 was called, stored ones being replayed at once), so the engine's
 * counts equal the worker's.
 */

export interface RemoteWorkflow {
  /** The workflow's name (wrangler's `workflows[].name`). */
  name: string;
  /** Its class in the worker's module (`workflows[].class_name`). */
  className: string;
  binding?: string;
}

/** A captured `print()` or `logging` line of a worker (SPEC §11.3 `log`). */
export interface RemoteLogLine {
  workerId: string;
  workflow?: string;
  instanceId?: string;
  level: string;
  message: string;
}

export interface RemoteWorkersOptions {
  workflows: RemoteWorkflow[];
  /** A worker silent this long loses its tasks; running attempts of them fail. Default 30,000 ms. */
  leaseMs?: number;
  /** Longest poll before an empty answer. Default 25,000 ms (at most half of `leaseMs`). */
  pollTimeoutMs?: number;
  /** Where worker log lines go. Default: `console.log` with the instance id. */
  log?: (line: RemoteLogLine) => void;
  /** How long an HTTP request waits for a worker serving `fetch`. Default 30,000 ms. */
  fetchTimeoutMs?: number;
}

type Reply = Record<string, unknown>;
type WireError = { name: string; message: string };
/** How a slot's step is called on the engine's `step`; `cb` is the callback a worker runs. */
type StepCall = (
  step: WorkflowStep,
  cb: (ctx: { attempt: number; config: unknown }) => Promise<unknown>,
) => Promise<unknown>;
/** A worker's report of one attempt (the `attempt` op, or one of a command's `commits`). */
type AttemptReport = {
  name: string;
  count: number;
  attempt: number;
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string; non_retryable?: boolean; fatal?: boolean };
  /** The attempt's CPU time in the worker (ms), stored instead of the server's while it waited. */
  cpu_ms?: unknown;
};

/** Worker protocol versions this server speaks (SPEC §11.3; 2 adds `commits` and `wait_ms`). */
export const WORKER_PROTOCOLS = [1, 2] as const;

interface Worker {
  id: string;
  /** The protocol version agreed at registration. */
  protocol: number;
  workflows: Set<string>;
  fetch: boolean;
  lastSeen: number;
  tasks: Set<Task>;
  poll?: { free: number; resolve(tasks: Task[]): void };
}

interface Task {
  id: string;
  kind: "run" | "fetch";
  epoch: number;
  state: "queued" | "assigned" | "done" | "lost";
  worker?: Worker;
  rr?: RemoteRun;
  wire: Record<string, unknown>;
  replies: Map<number, Promise<Reply>>;
  /** The steps this task asked for (`op:count:name`): each once per replay. */
  keys: Set<string>;
  respond?: (r: Response) => void;
  lost: Signal;
}

interface Slot {
  kind: StepKind;
  name: string;
  count: number;
  settled?: { value?: unknown; error?: WireError };
  /** A callback invocation of the engine waiting for (or being run by) a worker. */
  pending?: {
    attempt: number;
    config: unknown;
    /** The engine's step context of the attempt (where the worker's reported CPU time goes). */
    ctx: object;
    resolve(v: unknown): void;
    reject(e: Error): void;
  };
  runner?: Task;
  changed: Signal;
}

interface RemoteRun {
  info: RunInfo;
  workflow: string;
  className: string;
  step?: WorkflowStep;
  event?: WorkflowEvent;
  stored: Map<string, StepRow>;
  slots: Map<string, Slot>;
  /** Per `kind:name`, how many occurrences were called on the engine's `step`. */
  made: Map<string, number>;
  madeSignal: Signal;
  task?: Task;
  ended?: string;
  endSignal: Signal;
  resolve(output: unknown): void;
  reject(error: Error): void;
}

/** A one-shot broadcast: `wait()` resolves at the next `fire()`. */
class Signal {
  #p!: Promise<void>;
  #r!: () => void;
  constructor() {
    this.#reset();
  }
  #reset() {
    this.#p = new Promise((r) => (this.#r = r));
  }
  wait(): Promise<void> {
    return this.#p;
  }
  fire(): void {
    const r = this.#r;
    this.#reset();
    r();
  }
}

const keyOf = (workflow: string, id: string) => `${workflow}\u0000${id}`;
const WIRE_KIND: Record<StepKind, string> = {
  do: "do",
  sleep: "sleep",
  waitForEvent: "wait",
  rollback: "rollback",
};

/** JSON form of a stored value (what a worker gets back): dates become epoch ms. */
function toWire(v: unknown): unknown {
  if (v === undefined) return null;
  return JSON.parse(
    JSON.stringify(v, function (this: Record<string, unknown>, k, value) {
      const raw = this[k];
      return raw instanceof Date ? raw.getTime() : value;
    }),
  );
}

function wireError(e: unknown): WireError {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: "Error", message: String(e) };
}

/** A worker's error as the engine's: `non_retryable` ones are `NonRetryableError`s. */
function fromWire(e: { name: string; message: string; non_retryable?: boolean | undefined }): Error {
  if (e.non_retryable || e.name === "NonRetryableError") return new NonRetryableError(e.message, e.name);
  const error = new Error(e.message);
  error.name = e.name;
  return error;
}

const lost = (text: string) => new WorkflowError("lease.lost", text);

export class RemoteWorkers {
  readonly leaseMs: number;
  readonly pollTimeoutMs: number;
  readonly #workflows = new Map<string, RemoteWorkflow>();
  readonly #workers = new Map<string, Worker>();
  readonly #tasks = new Map<string, Task>();
  readonly #runs = new Map<string, RemoteRun>();
  #queue: Task[] = [];
  #runtime?: Runtime;
  readonly #log: (line: RemoteLogLine) => void;
  readonly #fetchTimeoutMs: number;
  readonly #sweep: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(options: RemoteWorkersOptions) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.pollTimeoutMs = Math.min(options.pollTimeoutMs ?? 25_000, Math.floor(this.leaseMs / 2));
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 30_000;
    for (const w of options.workflows) this.#workflows.set(w.name, w);
    this.#log =
      options.log ??
      ((l) => console.log(`[${l.instanceId ? `${l.workflow} ${l.instanceId}` : l.workerId}] ${l.message}`));
    this.#sweep = setInterval(() => this.#sweepWorkers(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.#sweep.unref();
  }

  /** The runtime's definitions of the remote workflows (pass them to `Runtime`/`createCairn`). */
  definitions(): (WorkflowDefinition & Required<Pick<WorkflowDefinition, "onRun">>)[] {
    return [...this.#workflows.values()].map((w) => ({
      name: w.name,
      ...(w.binding ? { binding: w.binding } : {}),
      class: this.#classFor(w),
      onRun: (info: RunInfo) => this.#onRun(w, info),
    }));
  }

  /** The runtime whose store holds the instances (for the stored outcomes a task carries). */
  attach(runtime: Runtime): void {
    this.#runtime = runtime;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const w of this.#workers.values()) w.poll?.resolve([]);
  }

  // ---- the protocol -------------------------------------------------------------------------

  register(body: {
    language: string;
    sdk: string;
    protocol: number;
    workflows: { name: string; class_name: string }[];
    fetch?: boolean | undefined;
    concurrency: number;
  }): { worker_id: string; lease_ms: number; poll_timeout_ms: number; protocol: number } {
    if (!(WORKER_PROTOCOLS as readonly number[]).includes(body.protocol))
      throw new WorkflowError(
        "protocol.unsupported",
        `Worker protocol ${body.protocol} is not spoken by this server (it speaks ${WORKER_PROTOCOLS.join(", ")}): ` +
          `use a ${body.sdk} that matches this Cairn`,
      );
    for (const w of body.workflows) {
      const known = this.#workflows.get(w.name);
      if (!known) throw new WorkflowError("workflow.not_found", `Workflow "${w.name}" not found`);
      if (known.className !== w.class_name)
        throw new WorkflowError(
          "workflow.not_found",
          `Workflow "${w.name}" runs class ${known.className}, the worker offers ${w.class_name}`,
        );
    }
    const id = `w-${crypto.randomUUID()}`;
    this.#workers.set(id, {
      id,
      protocol: body.protocol,
      workflows: new Set(body.workflows.map((w) => w.name)),
      fetch: body.fetch === true,
      lastSeen: Date.now(),
      tasks: new Set(),
    });
    return {
      worker_id: id,
      lease_ms: this.leaseMs,
      poll_timeout_ms: this.pollTimeoutMs,
      protocol: body.protocol,
    };
  }

  deregister(workerId: string): void {
    const w = this.#workers.get(workerId);
    if (w) this.#lose(w);
  }

  /** Long poll: up to `free` tasks, or none after `pollTimeoutMs`. */
  async poll(workerId: string, free: number): Promise<{ tasks: Record<string, unknown>[] }> {
    const worker = this.#worker(workerId);
    worker.poll?.resolve([]);
    let tasks = this.#take(worker, free);
    if (tasks.length === 0 && free > 0 && !this.#closed) {
      tasks = await new Promise<Task[]>((resolve) => {
        const timer = setTimeout(() => done([]), this.pollTimeoutMs);
        const done = (t: Task[]) => {
          clearTimeout(timer);
          if (worker.poll?.resolve === done) worker.poll = undefined;
          resolve(t);
        };
        worker.poll = { free, resolve: done };
      });
    }
    worker.lastSeen = Date.now();
    if (!this.#workers.has(workerId)) {
      for (const t of tasks) this.#requeue(t);
      throw new WorkflowError("worker.not_found", `Worker ${workerId} is not registered`);
    }
    return { tasks: tasks.map((t) => t.wire) };
  }

  /** One command of a task; a repeated `seq` gets the first reply. */
  command(
    workerId: string,
    taskId: string,
    cmd: { seq: number; epoch: number; op: string } & Record<string, unknown>,
  ): Promise<{ seq: number; reply: Reply }> {
    const worker = this.#worker(workerId);
    const task = this.#tasks.get(taskId);
    if (!task || task.worker !== worker) throw lost(`Task ${taskId} is not held by worker ${workerId}`);
    if (cmd.epoch !== task.epoch)
      throw lost(`Task ${taskId} is at epoch ${task.epoch}, the command was sent at epoch ${cmd.epoch}`);
    const seen = task.replies.get(cmd.seq);
    if (seen) return seen.then((reply) => ({ seq: cmd.seq, reply }));
    // Log lines may trail the task's end (they are sent in the background).
    if (task.state !== "assigned" && !(cmd.op === "log" && task.state === "done"))
      throw lost(`Task ${taskId} has ended`);
    const reply = this.#handle(task, cmd);
    task.replies.set(cmd.seq, reply);
    // A failed command may be retried with the same seq: it runs again.
    reply.catch(() => task.replies.delete(cmd.seq));
    return reply.then((r) => ({ seq: cmd.seq, reply: r }));
  }

  /** Serves an HTTP request with the worker's `Default.fetch` (a `fetch` task). */
  async fetch(request: Request): Promise<Response> {
    const body = new Uint8Array(await request.arrayBuffer());
    const task = this.#newTask("fetch", 0, {
      request: {
        method: request.method,
        url: request.url,
        headers: [...request.headers],
        body_b64: Buffer.from(body).toString("base64"),
      },
    });
    return await new Promise<Response>((resolve) => {
      const timer = setTimeout(() => {
        this.#queue = this.#queue.filter((t) => t !== task);
        task.state = "done";
        this.#tasks.delete(task.id);
        resolve(new Response("No Python worker answered the request in time\n", { status: 503 }));
      }, this.#fetchTimeoutMs);
      task.respond = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#enqueue(task);
    });
  }

  // ---- workers and tasks --------------------------------------------------------------------

  #worker(id: string): Worker {
    const w = this.#workers.get(id);
    if (!w) throw new WorkflowError("worker.not_found", `Worker ${id} is not registered`);
    w.lastSeen = Date.now();
    return w;
  }

  #sweepWorkers(): void {
    const now = Date.now();
    for (const w of this.#workers.values()) if (!w.poll && now - w.lastSeen > this.leaseMs) this.#lose(w);
  }

  /** The worker is gone: its running attempts fail (no heartbeat), its tasks go to other workers. */
  #lose(w: Worker): void {
    this.#workers.delete(w.id);
    w.poll?.resolve([]);
    for (const task of w.tasks) {
      task.state = "lost";
      task.lost.fire();
      this.#tasks.delete(task.id);
      if (task.kind === "fetch") {
        task.respond?.(new Response("The Python worker stopped while answering\n", { status: 502 }));
        continue;
      }
      const rr = task.rr!;
      for (const slot of rr.slots.values())
        if (slot.runner === task && slot.pending) {
          const p = slot.pending;
          slot.pending = undefined;
          slot.runner = undefined;
          p.reject(
            new WorkflowTimeoutError(
              `The worker running attempt ${p.attempt} of step "${slot.name}-${slot.count}" stopped sending heartbeats`,
            ),
          );
        }
      if (!rr.ended && rr.task === task) void this.#startTask(rr);
    }
    w.tasks.clear();
  }

  #newTask(kind: "run" | "fetch", epoch: number, wire: Record<string, unknown>): Task {
    const id = `t-${crypto.randomUUID()}`;
    const task: Task = {
      id,
      kind,
      epoch,
      state: "queued",
      wire: { task_id: id, kind, epoch, ...wire },
      replies: new Map(),
      keys: new Set(),
      lost: new Signal(),
    };
    this.#tasks.set(id, task);
    return task;
  }

  #enqueue(task: Task): void {
    this.#queue.push(task);
    for (const w of this.#workers.values()) {
      if (!w.poll) continue;
      const tasks = this.#take(w, w.poll.free);
      if (tasks.length > 0) w.poll.resolve(tasks);
    }
  }

  #requeue(task: Task): void {
    if (task.state !== "assigned") return;
    task.worker?.tasks.delete(task);
    task.worker = undefined;
    task.state = "queued";
    this.#enqueue(task);
  }

  #take(w: Worker, free: number): Task[] {
    const taken: Task[] = [];
    this.#queue = this.#queue.filter((t) => {
      if (taken.length >= free || t.state !== "queued") return t.state === "queued";
      const fits = t.kind === "fetch" ? w.fetch : w.workflows.has(t.rr!.workflow);
      if (!fits) return true;
      t.state = "assigned";
      t.worker = w;
      w.tasks.add(t);
      taken.push(t);
      return false;
    });
    return taken;
  }

  // ---- runs -----------------------------------------------------------------------------------

  #classFor(w: RemoteWorkflow) {
    const remote = this;
    const cls = class extends WorkflowEntrypoint {
      override async run(event: WorkflowEvent<unknown>, step: WorkflowStep): Promise<unknown> {
        return remote.#drive(w, event, step);
      }
    };
    Object.defineProperty(cls, "name", { value: w.className });
    return cls;
  }

  #onRun(w: RemoteWorkflow, info: RunInfo): void {
    const key = keyOf(info.workflow, info.id);
    let resolve!: (v: unknown) => void;
    let reject!: (e: Error) => void;
    const finished = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    finished.catch(() => {});
    const rr: RemoteRun = {
      info,
      workflow: info.workflow,
      className: w.className,
      stored: new Map(),
      slots: new Map(),
      made: new Map(),
      madeSignal: new Signal(),
      endSignal: new Signal(),
      resolve,
      reject,
    };
    (rr as RemoteRun & { finished: Promise<unknown> }).finished = finished;
    this.#runs.set(key, rr);
    void info.done.then((outcome) => {
      rr.ended = outcome;
      rr.endSignal.fire();
      const t = rr.task;
      if (t) {
        if (t.state === "queued") this.#queue = this.#queue.filter((q) => q !== t);
        if (t.state === "queued" || t.state === "assigned") t.state = "done";
        t.worker?.tasks.delete(t);
        // Kept a moment so that repeated commands still get their replies.
        setTimeout(() => this.#tasks.delete(t.id), this.leaseMs).unref();
      }
      if (this.#runs.get(key) === rr) this.#runs.delete(key);
    });
  }

  async #drive(w: RemoteWorkflow, event: WorkflowEvent<unknown>, step: WorkflowStep): Promise<unknown> {
    const rr = this.#runs.get(keyOf(w.name, event.instanceId));
    if (!rr) throw new Error(`Cairn lost track of the run of instance ${event.instanceId}`);
    rr.step = step;
    rr.event = event;
    await this.#startTask(rr);
    return (rr as RemoteRun & { finished: Promise<unknown> }).finished;
  }

  /** A task for the run: the stored outcomes, queued for a worker. */
  async #startTask(rr: RemoteRun): Promise<void> {
    const rows = this.#runtime ? await this.#runtime.store.steps.list(rr.workflow, rr.info.id) : [];
    if (rr.ended) return;
    rr.stored = new Map(rows.map((r) => [stepKeyString(r), r]));
    const steps: Record<string, unknown>[] = [];
    for (const r of rows) {
      if (r.status !== "succeeded" && r.status !== "failed") continue;
      const s: Record<string, unknown> = { kind: WIRE_KIND[r.kind], name: r.name, count: r.count };
      if (r.status === "succeeded") {
        s.outcome = r.kind === "sleep" ? "done" : "ok";
        if (r.kind !== "sleep") s.value = toWire(decodeValue(r.result));
      } else {
        s.outcome = r.kind === "waitForEvent" ? "timeout" : "error";
        s.error = { name: r.error?.name ?? "Error", message: r.error?.message ?? "" };
      }
      steps.push(s);
    }
    const event = rr.event!;
    const payload = toWire(event.payload);
    const task = this.#newTask("run", rr.info.epoch, {
      workflow: rr.workflow,
      class_name: rr.className,
      instance: { id: rr.info.id, params: payload, created_at: rr.info.createdAt },
      event: {
        payload,
        timestamp: event.timestamp.getTime(),
        instanceId: event.instanceId,
        workflowName: event.workflowName,
        // An instance a schedule created (SPEC §9.4): `{ cron, scheduledTime }`, the slot in ms.
        ...(event.schedule ? { schedule: { ...event.schedule } } : {}),
      },
      steps,
    });
    task.rr = rr;
    rr.task = task;
    this.#enqueue(task);
  }

  // ---- commands ---------------------------------------------------------------------------------

  async #handle(task: Task, cmd: { op: string } & Record<string, unknown>): Promise<Reply> {
    if (task.kind === "fetch") {
      if (cmd.op === "log") return this.#logLine(task, cmd);
      if (cmd.op !== "respond")
        throw new WorkflowError("body", `op ${cmd.op} is not allowed in a fetch task`);
      task.state = "done";
      task.worker?.tasks.delete(task);
      const body = Buffer.from(String(cmd.body_b64 ?? ""), "base64");
      task.respond?.(
        new Response(body.byteLength > 0 ? body : null, {
          status: cmd.status as number,
          headers: (cmd.headers as [string, string][] | undefined) ?? [],
        }),
      );
      setTimeout(() => this.#tasks.delete(task.id), this.leaseMs).unref();
      return { ok: true };
    }
    const rr = task.rr!;
    // Protocol 2: successful attempts the worker went on from, committed before the command itself.
    if (Array.isArray(cmd.commits)) await this.#commitAll(task, cmd.commits as AttemptReport[]);
    const name = cmd.name as string;
    const count = cmd.count as number;
    if (cmd.op === "step" || cmd.op === "sleep" || cmd.op === "wait") {
      const key = `${cmd.op}:${count}:${name}`;
      if (task.keys.has(key)) {
        // A replay asks for each step once: the worker's counts went wrong, so its outcomes can't be trusted.
        const e = new WorkflowError(
          "step.nondeterministic",
          `Step "${name}-${count}" (${cmd.op}) was requested twice in one replay`,
        );
        rr.reject(e);
        throw e;
      }
      task.keys.add(key);
    }
    switch (cmd.op) {
      case "step": {
        const slot = await this.#slotFor(task, "do", name, count, (step, cb) =>
          step.do(name, (cmd.config ?? {}) as WorkflowStepConfig, cb),
        );
        return this.#decide(task, slot, "do");
      }
      case "attempt":
        return this.#report(task, cmd as unknown as AttemptReport);
      case "commit":
        return { ok: true };
      case "sleep": {
        const slot = await this.#slotFor(task, "sleep", name, count, (step) => {
          if (cmd.until !== undefined) {
            const t = typeof cmd.until === "string" ? Date.parse(cmd.until) : (cmd.until as number);
            return step.sleepUntil(name, Number.isFinite(t) ? new Date(t) : (cmd.until as never));
          }
          return step.sleep(name, cmd.duration as never);
        });
        return (task.worker?.protocol ?? 1) >= 2
          ? this.#shortSleep(task, slot)
          : this.#decide(task, slot, "sleep");
      }
      case "wait": {
        const slot = await this.#slotFor(task, "waitForEvent", name, count, (step) =>
          step.waitForEvent(name, {
            type: cmd.type as string,
            ...(cmd.timeout !== undefined ? { timeout: cmd.timeout as never } : {}),
          }),
        );
        return this.#decide(task, slot, "event");
      }
      case "wake": {
        const kind: StepKind = cmd.kind === "sleep" ? "sleep" : cmd.kind === "wait" ? "waitForEvent" : "do";
        const slot = this.#slotOf(rr, kind, name, count);
        return this.#decide(task, slot, kind === "do" ? "do" : kind === "sleep" ? "sleep" : "event");
      }
      case "heartbeat":
        return rr.ended ? { cancel: await this.#cancelReason(rr) } : { ok: true };
      case "finish": {
        task.state = "done";
        if (cmd.ok) rr.resolve(cmd.output ?? null);
        else {
          const e = cmd.error as { name: string; message: string } | undefined;
          rr.reject(fromWire(e ?? { name: "Error", message: "The workflow failed" }));
        }
        return { ok: true };
      }
      case "log":
        return this.#logLine(task, cmd);
      default:
        throw new WorkflowError("body", `op ${cmd.op} is not allowed in a run task`);
    }
  }

  #slotOf(rr: RemoteRun, kind: StepKind, name: string, count: number): Slot {
    const slot = rr.slots.get(stepKeyString({ kind, name, count }));
    if (!slot) throw new WorkflowError("step.nondeterministic", `Step "${name}-${count}" was never started`);
    return slot;
  }

  /** An attempt's outcome, as the worker reports it, handed to the engine's waiting callback. */
  async #report(task: Task, r: AttemptReport): Promise<Reply> {
    const rr = task.rr!;
    const slot = this.#slotOf(rr, "do", r.name, r.count);
    const p = slot.pending;
    if (p && p.attempt === r.attempt && slot.runner === task) {
      slot.pending = undefined;
      if (typeof r.cpu_ms === "number") reportCpuTime(p.ctx, r.cpu_ms);
      if (r.ok) p.resolve(r.value ?? null);
      else if (r.error?.fatal) {
        // The attempt never settles: the run ends with the instance's failure.
        rr.reject(new WorkflowFatalError(r.error.message));
        return { suspend: "fatal" };
      } else p.reject(fromWire(r.error ?? { name: "Error", message: "The step failed" }));
      slot.changed.fire();
      if (!r.ok && (task.worker?.protocol ?? 1) >= 2) {
        const hot = await this.#hotWait(task, slot, "retrying", () => slot.pending !== undefined, r.attempt);
        if (hot) return { retry: { attempt: r.attempt + 1, at: hot.wakeAt, wait_ms: hot.waitMs } };
      }
    }
    return this.#decide(task, slot, "do", r.attempt);
  }

  /**
   * Protocol 2's piggybacked commits: successful attempts whose values the worker already went on
   * with (it runs no other callback and ends nothing before the command carrying them is answered).
   * Each is committed as an `attempt` report; one that the engine did not commit as that value (too
   * large, so retried; the run ended) makes the worker's replay wrong: the task is handed out again
   * and this one answered `lease.lost`, so the worker abandons it and a fresh replay sees the truth.
   */
  async #commitAll(task: Task, commits: AttemptReport[]): Promise<void> {
    for (const c of commits) {
      const reply = await this.#report(task, { ...c, ok: true });
      if (!("value" in reply)) {
        this.#replay(task);
        throw lost(
          `Step "${c.name}-${c.count}" attempt ${c.attempt} was not committed as reported ` +
            `(${JSON.stringify(reply)}): the run is replayed`,
        );
      }
    }
  }

  /** Ends a task whose worker is still alive but whose replay went wrong; the run gets a new task. */
  #replay(task: Task): void {
    const rr = task.rr!;
    task.state = "lost";
    task.lost.fire();
    task.worker?.tasks.delete(task);
    this.#tasks.delete(task.id);
    for (const slot of rr.slots.values()) if (slot.runner === task) slot.runner = undefined;
    if (!rr.ended && rr.task === task) void this.#startTask(rr);
  }

  /**
   * Protocol 2: a sleep the engine waits for in memory (below `hotWaitThreshold`, by the same core
   * function it uses, `waitMode`) is answered `{ wait_ms }` at once; the worker waits without
   * holding a request (or a thread) and then sends `wake`. Long sleeps suspend, as in protocol 1.
   */
  async #shortSleep(task: Task, slot: Slot): Promise<Reply> {
    const hot = await this.#hotWait(task, slot, "sleeping");
    return hot ? { wait_ms: hot.waitMs } : this.#decide(task, slot, "sleep");
  }

  /**
   * The engine's in-memory wait on a slot (a short sleep, or a retry's backoff), read from the
   * stored row (`status` with its `wakeAt`) once the engine stored it, judged by core `waitMode`;
   * undefined when the engine went on, parks the run, or `done()` says it has already moved on.
   */
  async #hotWait(
    task: Task,
    slot: Slot,
    status: "sleeping" | "retrying",
    done: () => boolean = () => false,
    attempts?: number,
  ): Promise<{ wakeAt: number; waitMs: number } | undefined> {
    const rr = task.rr!;
    const runtime = this.#runtime;
    const kind: StepKind = status === "sleeping" ? "sleep" : "do";
    for (let i = 0; runtime && i < 100; i++) {
      if (slot.settled || rr.ended || done()) return undefined;
      const row = await runtime.store.steps.get(rr.workflow, rr.info.id, kind, slot.name, slot.count);
      // (A retrying row of an earlier attempt is not this decision: wait for the engine's.)
      if (
        row?.status === status &&
        row.wakeAt !== null &&
        (attempts === undefined || row.attempts === attempts)
      ) {
        const now = runtime.clock.now();
        return waitMode(row.wakeAt, now, runtime.hotWaitMs) === "hot"
          ? { wakeAt: row.wakeAt, waitMs: row.wakeAt - now }
          : undefined;
      }
      if (row && row.status !== "running" && row.status !== status) return undefined;
      // The engine has not stored its decision yet: look again at its next change or soon.
      await Promise.race([
        slot.changed.wait(),
        rr.endSignal.wait(),
        task.lost.wait(),
        new Promise((r) => setTimeout(r, 2)),
      ]);
      if (task.state === "lost") throw lost(`Task ${task.id} was given to another worker`);
    }
    return undefined;
  }

  #logLine(task: Task, cmd: Record<string, unknown>): Reply {
    this.#log({
      workerId: task.worker?.id ?? "",
      ...(task.rr ? { workflow: task.rr.workflow, instanceId: task.rr.info.id } : {}),
      level: String(cmd.level),
      message: String(cmd.message),
    });
    return { ok: true };
  }

  async #cancelReason(rr: RemoteRun): Promise<string> {
    try {
      const row = await this.#runtime?.instance(rr.workflow, rr.info.id);
      if (row?.status === "paused" || row?.status === "waitingForPause") return "pause";
      if (row?.status === "terminated") return "terminate";
    } catch {}
    return "lease_lost";
  }

  /** Waits for a change of the slot, the run's end, or the task's loss. */
  async #changed(task: Task, slot: Slot | undefined, rr: RemoteRun): Promise<void> {
    await Promise.race([
      slot ? slot.changed.wait() : rr.madeSignal.wait(),
      rr.endSignal.wait(),
      task.lost.wait(),
    ]);
    if (task.state === "lost") throw lost(`Task ${task.id} was given to another worker`);
  }

  /**
   * The slot of `(kind, name, count)`: the one already called on the engine's `step`, or a new
   * call made once every lower count of the same `(kind, name)` was made (stored ones at once).
   */
  async #slotFor(task: Task, kind: StepKind, name: string, count: number, call: StepCall): Promise<Slot> {
    const rr = task.rr!;
    const k = `${kind}:${name}`;
    for (;;) {
      const existing = rr.slots.get(stepKeyString({ kind, name, count }));
      if (existing) return existing;
      if (rr.ended) throw lost(`The run of instance ${rr.info.id} has ended`);
      const made = rr.made.get(k) ?? 0;
      if (made === count - 1) return this.#makeSlot(rr, kind, name, count, call);
      const next = rr.stored.get(stepKeyString({ kind, name, count: made + 1 }));
      if (made < count - 1 && next && (next.status === "succeeded" || next.status === "failed")) {
        this.#makeSlot(rr, kind, name, made + 1, (step, cb) =>
          kind === "do"
            ? step.do(name, cb)
            : kind === "sleep"
              ? step.sleep(name, 0)
              : step.waitForEvent(name, { type: next.eventType ?? "event" }),
        );
        continue;
      }
      await this.#changed(task, undefined, rr);
    }
  }

  #makeSlot(rr: RemoteRun, kind: StepKind, name: string, count: number, call: StepCall): Slot {
    const slot: Slot = { kind, name, count, changed: new Signal() };
    rr.slots.set(stepKeyString({ kind, name, count }), slot);
    rr.made.set(`${kind}:${name}`, count);
    const cb = (ctx: { attempt: number; config: unknown }) =>
      new Promise<unknown>((resolve, reject) => {
        slot.pending = { attempt: ctx.attempt, config: ctx.config, ctx, resolve, reject };
        slot.runner = undefined;
        slot.changed.fire();
      });
    let result: Promise<unknown>;
    try {
      result = call(rr.step!, cb);
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      (value) => {
        slot.settled = { value: toWire(value) };
        slot.changed.fire();
      },
      (error) => {
        slot.settled = { error: wireError(error) };
        slot.changed.fire();
      },
    );
    rr.madeSignal.fire();
    return slot;
  }

  /**
   * What a command about a slot is answered, once the engine decided: a `do` step — `run` (this
   * worker runs the attempt the engine is waiting for), `retry` (after the attempt `after` failed),
   * the stored `value`/`error`, or `suspend`; a sleep — `done` or `suspend`; an event wait — the
   * `event`, the timeout `error`, or `suspend`.
   */
  async #decide(task: Task, slot: Slot, kind: "do" | "sleep" | "event", after?: number): Promise<Reply> {
    const rr = task.rr!;
    for (;;) {
      const settled = slot.settled;
      if (settled) {
        if (settled.error) return { error: settled.error };
        return kind === "do"
          ? { value: settled.value }
          : kind === "sleep"
            ? { done: true }
            : { event: settled.value };
      }
      const p = slot.pending;
      if (
        kind === "do" &&
        p &&
        (slot.runner === undefined || slot.runner === task || slot.runner.state !== "assigned") &&
        (after === undefined || p.attempt > after)
      ) {
        slot.runner = task;
        return after === undefined
          ? { run: { attempt: p.attempt, config: p.config } }
          : { retry: { attempt: p.attempt, at: Date.now() } };
      }
      if (rr.ended) return { suspend: rr.ended === "parked" ? (kind === "do" ? "backoff" : kind) : rr.ended };
      await this.#changed(task, slot, rr);
    }
  }
}
