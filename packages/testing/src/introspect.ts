import {
  deserializeError,
  type HistoryEventType,
  INSTANCE_STATUSES,
  type InstanceStatus,
  isFinalStatus,
  REDACTED_STEP_OUTPUT,
  validateInstanceId,
  WorkflowError,
} from "@cairn/core";
import { bindingOwner, decodeStepResult, decodeValue, type Runtime } from "@cairn/runtime";
import { Harness, type Session } from "./harness.ts";
import { InstanceModifications, Modifier, type WorkflowInstanceModifier } from "./modifier.ts";
import { type StepSelector, selectorKey } from "./selectors.ts";

/** Cloudflare's `WorkflowInstanceIntrospector` (`cloudflare:test`), for one instance id. */
export interface WorkflowInstanceIntrospector {
  /** The instance id it watches. */
  readonly id: string;
  /** Records modifications (mocks, disabled waits); call it before `create` for them to apply from the start. */
  modify(fn: (m: WorkflowInstanceModifier) => Promise<void>): Promise<WorkflowInstanceIntrospector>;
  /** Resolves with the step's stored result once it succeeded; rejects with its error if it failed. */
  waitForStepResult(step: StepSelector): Promise<unknown>;
  /** Resolves once the instance is (or has been) in `status`; rejects when a final status rules it out. */
  waitForStatus(status: InstanceStatus): Promise<void>;
  /** The output of a `complete` instance. */
  getOutput(): Promise<unknown>;
  /** The `{ name, message }` of an `errored` instance. */
  getError(): Promise<{ name: string; message: string }>;
  /** Stops the instance, deletes it and forgets its modifications (test isolation). */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Cloudflare's `WorkflowIntrospector`: modifications for every instance created while it lives. */
export interface WorkflowIntrospector {
  /** Records modifications that every instance created afterwards gets (including via `createBatch`). */
  modify(fn: (m: WorkflowInstanceModifier) => Promise<void>): Promise<WorkflowIntrospector>;
  /** Cloudflare's name for `modify`. */
  modifyAll(fn: (m: WorkflowInstanceModifier) => Promise<void>): Promise<void>;
  /** Introspectors of the instances created since the session started, in creation order. */
  get(): Promise<WorkflowInstanceIntrospector[]>;
  /** Ends the session and disposes every instance introspector it handed out. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Owner {
  harness: Harness;
  workflow: string;
  binding: string;
}

/** Which test Cairn each binding object (`cairn.env.X`) belongs to. */
const owners = new WeakMap<object, Owner>();

/**
 * The harness added to a Cairn not made by `createTestCairn`, at its first introspection (shared by
 * every copy of this module in a process, so a runtime gets one).
 */
const adopted: WeakMap<Runtime, Harness> = ((globalThis as Record<symbol, unknown>)[
  Symbol.for("cairn.testing.adopted")
] ??= new WeakMap<Runtime, Harness>()) as WeakMap<Runtime, Harness>;

/** Records the bindings of a test Cairn so the introspection functions can find it. */
export function registerBindings(harness: Harness, workflows: { binding: string; name: string }[]): void {
  for (const w of workflows) {
    const binding = harness.cairn.env[w.binding];
    if (typeof binding === "object" && binding !== null)
      owners.set(binding, { harness, workflow: w.name, binding: w.binding });
  }
}

function ownerOf(binding: unknown, what: string): Owner {
  const owner =
    (typeof binding === "object" && binding !== null ? owners.get(binding) : undefined) ?? adopt(binding);
  if (!owner)
    throw new TypeError(
      `[WorkflowIntrospector] ${what} needs a workflow binding of a Cairn, such as cairn.env.MY_WORKFLOW; this value is not one`,
    );
  if (owner.harness.closed)
    throw new Error(`[WorkflowIntrospector] The Cairn that owns binding "${owner.binding}" is closed`);
  return owner;
}

/**
 * The owner of a binding of a Cairn not made by `createTestCairn` (`createCairn`, `cairn dev`, the
 * vitest integration): its runtime gets the introspection hooks at the first call. Time is the Cairn's
 * own clock: there is no `autoAdvance`.
 */
function adopt(binding: unknown): Owner | undefined {
  const found = bindingOwner(binding);
  if (!found) return undefined;
  const { runtime, workflow } = found;
  let harness = adopted.get(runtime);
  if (!harness) {
    harness = new Harness(runtime.clock, false);
    harness.attach({ env: runtime.env, runtime, store: runtime.store, close: () => runtime.close() });
    runtime.addHooks(harness.hooks);
    adopted.set(runtime, harness);
  }
  return { harness, workflow, binding: found.binding ?? workflow };
}

/**
 * Introspects one instance of a workflow, by id, whether or not it exists yet.
 *
 * ```ts
 * await using instance = await introspectWorkflowInstance(cairn.env.MODERATOR, "42");
 * await instance.modify(async (m) => {
 *   await m.disableSleeps();
 *   await m.mockStepResult({ name: "AI content scan" }, { violationScore: 0 });
 * });
 * await cairn.env.MODERATOR.create({ id: "42" });
 * await instance.waitForStatus("complete");
 * ```
 */
export async function introspectWorkflowInstance(
  binding: unknown,
  instanceId: string,
): Promise<WorkflowInstanceIntrospector> {
  const owner = ownerOf(binding, "introspectWorkflowInstance");
  validateInstanceId(instanceId);
  return new InstanceIntrospector(owner.harness, owner.workflow, instanceId);
}

/**
 * Introspects every instance of a workflow created from now on (for ids not known in advance). Only
 * one session per workflow at a time.
 */
export async function introspectWorkflow(binding: unknown): Promise<WorkflowIntrospector> {
  const owner = ownerOf(binding, "introspectWorkflow");
  const existing = owner.harness.sessions.get(owner.workflow);
  if (existing)
    throw new Error(
      `Workflow "${owner.workflow}" already has an active introspection session for binding "${existing.binding}".`,
    );
  const session = new WorkflowSession(owner.harness, owner.workflow, owner.binding);
  owner.harness.sessions.set(owner.workflow, session);
  return session;
}

/** History entries that show an instance was in a status. */
const ENTERED: Record<InstanceStatus, readonly HistoryEventType[]> = {
  queued: ["workflow_queued"],
  running: ["workflow_started", "workflow_running"],
  waiting: ["workflow_waiting"],
  paused: ["workflow_paused"],
  waitingForPause: ["workflow_waiting_for_pause"],
  complete: ["workflow_completed"],
  errored: ["workflow_errored"],
  terminated: ["workflow_terminated"],
  unknown: [],
};

class InstanceIntrospector implements WorkflowInstanceIntrospector {
  readonly id: string;
  readonly #harness: Harness;
  readonly #workflow: string;
  readonly #cancels = new Set<() => void>();
  #disposed = false;

  constructor(harness: Harness, workflow: string, id: string) {
    this.#harness = harness;
    this.#workflow = workflow;
    this.id = id;
    harness.modsOf(workflow, id, true);
  }

  #live(): void {
    if (this.#disposed)
      throw new Error(`[WorkflowIntrospector] The introspector of instance ${this.id} has been disposed`);
    if (this.#harness.closed)
      throw new Error(`[WorkflowIntrospector] The test Cairn of instance ${this.id} is closed`);
  }

  get #store() {
    return this.#harness.cairn.store;
  }

  /** A modifier that writes to this instance's modifications. */
  modifier(): WorkflowInstanceModifier {
    return new Modifier(this.#harness.modsOf(this.#workflow, this.id, true), () =>
      this.#harness.flushEvents(this.#workflow, this.id),
    );
  }

  async modify(fn: (m: WorkflowInstanceModifier) => Promise<void>): Promise<WorkflowInstanceIntrospector> {
    this.#live();
    await fn(this.modifier());
    return this;
  }

  async waitForStepResult(step: StepSelector): Promise<unknown> {
    this.#live();
    selectorKey("do", step);
    const index = step.index ?? 1;
    return this.#wait<unknown>(async (resolve, reject) => {
      const row = await this.#store.steps.get(this.#workflow, this.id, "do", step.name, index);
      // A sensitive step's value stays inside the workflow (SPEC §9.2).
      if (row?.status === "succeeded")
        return resolve(
          row.config?.sensitive === "output"
            ? REDACTED_STEP_OUTPUT
            : decodeStepResult(this.#store.steps, row),
        );
      if (row?.status === "failed")
        return reject(deserializeError(row.error ?? { name: "Error", message: "Step failed" }));
      const instance = await this.#store.instances.get(this.#workflow, this.id);
      if (instance && isFinalStatus(instance.status))
        reject(
          new Error(
            `[WorkflowIntrospector] The Workflow instance ${this.id} has reached status '${instance.status}' without a result for step '${step.name}' (index ${index}).`,
          ),
        );
    });
  }

  async waitForStatus(status: InstanceStatus): Promise<void> {
    this.#live();
    if (!INSTANCE_STATUSES.includes(status))
      throw new TypeError(
        `[WorkflowIntrospector] Unknown status '${status}'; expected one of ${INSTANCE_STATUSES.join(", ")}`,
      );
    if (status === "queued") return;
    let seen: number | undefined;
    return this.#wait<void>(async (resolve, reject) => {
      const row = await this.#store.instances.get(this.#workflow, this.id);
      if (!row) return;
      if (row.status === status) return resolve();
      // A status the instance passed through between two checks still counts as reached.
      const entries = await this.#store.history.list(
        this.#workflow,
        this.id,
        seen === undefined ? {} : { afterEventId: seen },
      );
      if (entries.length > 0) seen = entries[entries.length - 1]!.eventId;
      if (entries.some((e) => ENTERED[status].includes(e.type))) return resolve();
      if (isFinalStatus(row.status))
        reject(
          new Error(
            `[WorkflowIntrospector] The Workflow instance ${this.id} has reached status '${row.status}'. This is a finite status that prevents it from ever reaching the expected status of '${status}'.`,
          ),
        );
    });
  }

  async getOutput(): Promise<unknown> {
    this.#live();
    const row = await this.#store.instances.get(this.#workflow, this.id);
    const status = row?.status ?? "unknown";
    if (status !== "complete")
      throw new Error(
        `Cannot retrieve output: Workflow instance is in status "${status}" but must be "complete" to have an output available`,
      );
    return decodeValue(row!.output);
  }

  async getError(): Promise<{ name: string; message: string }> {
    this.#live();
    const row = await this.#store.instances.get(this.#workflow, this.id);
    const status = row?.status ?? "unknown";
    if (status !== "errored")
      throw new Error(
        `Cannot retrieve error: Workflow instance is in status "${status}" but must be "errored" to have error information available`,
      );
    if (!row?.error) throw new Error("Cannot retrieve error: No workflow instance failure log found");
    return { name: row.error.name, message: row.error.message };
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const cancel of [...this.#cancels]) cancel();
    if (this.#harness.closed) return;
    try {
      await this.#harness.cairn.runtime.delete(this.#workflow, this.id);
    } catch (e) {
      if (!WorkflowError.is(e, "instance.not_found")) throw e;
    }
    this.#harness.forget(this.#workflow, this.id);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /**
   * Runs `check` now and after every change of the instance (never two at once) until it settles the
   * promise. While it waits, the harness may move the fake clock (`autoAdvance`).
   */
  #wait<T>(
    check: (resolve: (value: T) => void, reject: (error: unknown) => void) => Promise<void>,
  ): Promise<T> {
    const harness = this.#harness;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let running = false;
      let again = false;
      const finish = () => {
        if (settled) return false;
        settled = true;
        unwatch();
        this.#cancels.delete(cancel);
        harness.waitEnded();
        return true;
      };
      const ok = (value: T) => finish() && resolve(value);
      const fail = (error: unknown) => finish() && reject(error);
      const run = (): void => {
        if (settled) return;
        if (running) {
          again = true;
          return;
        }
        running = true;
        void harness.track(
          check(ok, fail)
            .catch(fail)
            .finally(() => {
              running = false;
              if (again) {
                again = false;
                run();
              }
            }),
        );
      };
      // Disposal leaves the promise pending: nothing will settle it any more.
      const cancel = () => finish();
      const unwatch = harness.watch(this.#workflow, this.id, run);
      this.#cancels.add(cancel);
      harness.waitStarted();
      run();
    });
  }
}

class WorkflowSession implements WorkflowIntrospector, Session {
  readonly binding: string;
  readonly #harness: Harness;
  readonly #workflow: string;
  readonly #ops: ((m: WorkflowInstanceModifier) => Promise<void>)[] = [];
  /** The recorded modifications applied to a scratch state, so mistakes fail in `modify` itself. */
  readonly #scratch = new Modifier(new InstanceModifications(), async () => {});
  readonly #pending = new Set<Promise<unknown>>();
  readonly #instances: InstanceIntrospector[] = [];
  #disposed = false;

  constructor(harness: Harness, workflow: string, binding: string) {
    this.#harness = harness;
    this.#workflow = workflow;
    this.binding = binding;
  }

  async modify(fn: (m: WorkflowInstanceModifier) => Promise<void>): Promise<WorkflowIntrospector> {
    if (this.#disposed)
      throw new Error(
        `[WorkflowIntrospector] The introspection session of workflow "${this.#workflow}" has been disposed`,
      );
    const p = fn(this.#recorder());
    this.#pending.add(p);
    try {
      await p;
    } finally {
      this.#pending.delete(p);
    }
    return this;
  }

  async modifyAll(fn: (m: WorkflowInstanceModifier) => Promise<void>): Promise<void> {
    await this.modify(fn);
  }

  #recorder(): WorkflowInstanceModifier {
    const record = <A extends unknown[]>(
      apply: (m: WorkflowInstanceModifier, ...args: A) => Promise<void>,
    ) => {
      return async (...args: A) => {
        await apply(this.#scratch, ...args);
        this.#ops.push((m) => apply(m, ...args));
      };
    };
    return {
      disableSleeps: record((m, steps?: StepSelector[]) => m.disableSleeps(steps)),
      disableRetryDelays: record((m, steps?: StepSelector[]) => m.disableRetryDelays(steps)),
      mockStepResult: record((m, step: StepSelector, value: unknown) => m.mockStepResult(step, value)),
      mockStepError: record((m, step: StepSelector, error: Error, times?: number) =>
        m.mockStepError(step, error, times),
      ),
      forceStepTimeout: record((m, step: StepSelector, times?: number) => m.forceStepTimeout(step, times)),
      mockEvent: record((m, event: { type: string; payload: unknown }) => m.mockEvent(event)),
      forceEventTimeout: record((m, step: StepSelector) => m.forceEventTimeout(step)),
    };
  }

  async beforeCreate(id: string): Promise<void> {
    if (this.#disposed) return;
    // `modifyAll` is often not awaited before `create`: let it finish first.
    await Promise.allSettled([...this.#pending]);
    if (await this.#harness.cairn.store.instances.get(this.#workflow, id)) return;
    const instance = new InstanceIntrospector(this.#harness, this.#workflow, id);
    const m = instance.modifier();
    for (const op of this.#ops) await op(m);
    this.#instances.push(instance);
  }

  async get(): Promise<WorkflowInstanceIntrospector[]> {
    const store = this.#harness.cairn.store;
    const exists = await Promise.all(this.#instances.map((i) => store.instances.get(this.#workflow, i.id)));
    return this.#instances.filter((_, n) => exists[n] !== undefined);
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#harness.sessions.get(this.#workflow) === this) this.#harness.sessions.delete(this.#workflow);
    for (const instance of this.#instances.splice(0)) await instance.dispose();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
