import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { epochNow } from "./time.ts";

/** Three `step.do` calls returning small values: the workload of the burst and latency figures. */
export class ThreeSteps extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep): Promise<number> {
    const a = await step.do("one", async () => 1);
    const b = await step.do("two", async () => a + 1);
    return step.do("three", async () => a + b);
  }
}

/** Waits for an event of type "go" (the wait outlives any hot-wait threshold), then returns its payload. */
export class AwaitEvent extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep): Promise<unknown> {
    const e = await step.waitForEvent("go", { type: "go", timeout: "1 hour" });
    return e.payload;
  }
}

/** Waits for an event of type "go" with a 1-minute timeout (kept hot below a longer hot-wait threshold). */
export class AwaitEventBriefly extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep): Promise<unknown> {
    const e = await step.waitForEvent("go", { type: "go", timeout: "1 minute" });
    return e.payload;
  }
}

/** When each `SleepOneSecond` instance asked to sleep and when it woke (epoch ms, fractional). */
export const sleeps = new Map<string, { asked: number; woke?: number }>();

/** Sleeps one second; records when it asked and when `sleep` returned. */
export class SleepOneSecond extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep): Promise<void> {
    if (!sleeps.has(event.instanceId)) sleeps.set(event.instanceId, { asked: epochNow() });
    await step.sleep("s", "1 second");
    sleeps.get(event.instanceId)!.woke = epochNow();
  }
}

/** One step, then a one-day sleep: an instance parked in the store. */
export class ParkForADay extends WorkflowEntrypoint {
  async run(_event: WorkflowEvent<unknown>, step: WorkflowStep): Promise<void> {
    await step.do("prepare", async () => ({ ok: true }));
    await step.sleep("park", "1 day");
  }
}

export interface ManyStepsParams {
  steps: number;
  /** Marks the time every `segment` steps. */
  segment: number;
  /** After this many steps, sleep one second (with a small hot-wait threshold: evicts and replays). */
  sleepAfter?: number;
}

/** One invocation of `run()` of a `ManySteps` instance: when it began and its segment marks. */
export interface RunTrace {
  entered: number;
  marks: { steps: number; at: number }[];
  sleepAsked?: number;
  sleepReturned?: number;
}

export const traces = new Map<string, RunTrace[]>();

/** `steps` sequential `step.do` calls, with an optional sleep in the middle. */
export class ManySteps extends WorkflowEntrypoint<unknown, ManyStepsParams> {
  async run(event: WorkflowEvent<ManyStepsParams>, step: WorkflowStep): Promise<number> {
    const { steps, segment, sleepAfter } = event.payload;
    const trace: RunTrace = { entered: performance.now(), marks: [] };
    const runs = traces.get(event.instanceId) ?? [];
    runs.push(trace);
    traces.set(event.instanceId, runs);
    let sum = 0;
    for (let i = 1; i <= steps; i++) {
      sum += await step.do("step", async () => i);
      if (i % segment === 0) trace.marks.push({ steps: i, at: performance.now() });
      if (i === sleepAfter) {
        trace.sleepAsked = performance.now();
        await step.sleep("pause", "1 second");
        trace.sleepReturned = performance.now();
      }
    }
    return sum;
  }
}
