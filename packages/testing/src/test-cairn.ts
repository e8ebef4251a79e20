import { type Clock, type Duration, FakeClock, type WorkflowClass } from "@cairn/core";
import { type Cairn, type CairnOptions, createCairn, type WorkflowConfig } from "@cairn/engine";
import type { RuntimeHooks } from "@cairn/runtime";
import { type CairnLike, Harness } from "./harness.ts";
import { composeHooks } from "./hooks.ts";
import { registerBindings } from "./introspect.ts";

/** The retry delay of steps that set none, in a test Cairn (10 ms instead of 10 seconds). */
export const TEST_DEFAULT_RETRY_DELAY = 10;

/** The options of `createCairn` the testing helpers rely on. */
export interface TestCairnBaseOptions {
  workflows: { binding: string; name: string; class: WorkflowClass }[];
  env?: Record<string, unknown>;
  store?: unknown;
  clock?: Clock;
  defaultRetryDelay?: Duration;
  hooks?: RuntimeHooks;
  log?: (message: string, error: unknown) => void;
}

/** `createCairn`'s options for a test Cairn: about workflows, so `workflows` is required. */
export type TestCairnCreateOptions = CairnOptions & { workflows: WorkflowConfig[] };

/** `createCairn`'s options, with a fake clock instead of any clock, plus `autoAdvance`. */
export type TestCairnOptions<O extends TestCairnBaseOptions = TestCairnCreateOptions> = Omit<O, "clock"> & {
  /** The clock to use; default a `FakeClock` at 2026-01-01T00:00:00Z. */
  clock?: FakeClock;
  /**
   * While an introspector's `waitForStatus`/`waitForStepResult` is pending and the runtime has nothing
   * to do, move the clock to the next timer (as if real time passed, instantly). Default true; set
   * false to move time only with `advanceTime`.
   */
  autoAdvance?: boolean;
};

/** What `createTestCairn` adds to a Cairn. */
export interface TestCairnExtras {
  /** The fake clock the runtime and store read. */
  readonly clock: FakeClock;
  /**
   * Moves time forward by `duration` (ms or `"30 days"`), firing due timers in order and letting the
   * runtime settle (`runtime.whenIdle()`) after each.
   */
  advanceTime(duration: Duration): Promise<void>;
  /** Resolves once nothing is happening: what is left waits for time to pass or for events. */
  runUntilIdle(): Promise<void>;
  /** Ends introspection and closes the Cairn; no timers or handles stay open. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export type TestCairn<C extends CairnLike = Cairn> = C & TestCairnExtras;

/**
 * A real Cairn for tests (`createCairn`'s: same runtime, same store, same semantics): an in-memory
 * SQLite store (":memory:") unless `store` says otherwise, a `FakeClock`, a 10 ms default retry
 * delay, and the runtime hooks the introspectors need (composed with any `hooks` given). Its bindings
 * (`cairn.env.X`) are what `introspectWorkflowInstance` and `introspectWorkflow` take.
 *
 * ```ts
 * await using cairn = await createTestCairn({ workflows: [{ binding: "WF", name: "wf", class: MyWorkflow }] });
 * await cairn.env.WF.create({ id: "1" });
 * await cairn.advanceTime("30 days");
 * ```
 */
export async function createTestCairn<Env = Record<string, unknown>>(
  options: TestCairnOptions,
): Promise<TestCairn<Cairn<Env>>> {
  if (typeof options !== "object" || options === null)
    throw new TypeError("createTestCairn needs an options object");
  const { clock = new FakeClock(), autoAdvance = true, ...rest } = options;
  if (!(clock instanceof FakeClock)) throw new TypeError("createTestCairn: clock must be a FakeClock");
  const harness = new Harness(clock, autoAdvance, rest.log);
  const cairn = await createCairn<Env>({
    store: ":memory:",
    defaultRetryDelay: TEST_DEFAULT_RETRY_DELAY,
    ...rest,
    clock,
    hooks: composeHooks(harness.hooks, rest.hooks),
  });
  harness.attach(cairn);
  registerBindings(harness, options.workflows);
  const close = async () => {
    await harness.close();
    await cairn.close();
  };
  return {
    ...cairn,
    clock,
    advanceTime: (duration: Duration) => harness.advanceTime(duration),
    runUntilIdle: () => harness.runUntilIdle(),
    close,
    [Symbol.asyncDispose]: close,
  };
}
