import type { NewHistoryEntry, StepKind } from "@cairn/core";
import type { Runtime, Telemetry } from "@cairn/runtime";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** How old the store's counts behind the `cairn_instances` gauges may be. */
export const INSTANCE_GAUGE_MAX_AGE_MS = 5000;

const KIND: Record<StepKind, string> = {
  do: "do",
  sleep: "sleep",
  waitForEvent: "wait",
  rollback: "rollback",
};

/** A step entry's outcome: `timeout` for a `WorkflowTimeoutError`, else `error`. */
function failure(entry: NewHistoryEntry): "error" | "timeout" {
  const error = (entry.data as { error?: { name?: string } } | undefined)?.error;
  return error?.name === "WorkflowTimeoutError" ? "timeout" : "error";
}

/**
 * Cairn's Prometheus metrics (SPEC §12.3) on their own prom-client registry, fed by the runtime's
 * telemetry (`stored`, `ran`, `leaseLost`) and, for the gauges, by the store (counts at most
 * `INSTANCE_GAUGE_MAX_AGE_MS` old) and the runs in memory. Labels hold workflow names, statuses,
 * kinds and outcomes, never instance ids or step names. Plus prom-client's default process metrics.
 */
export class PrometheusMetrics implements Telemetry {
  readonly registry = new Registry();
  readonly #created: Counter<"workflow">;
  readonly #finished: Counter<"workflow" | "status">;
  readonly #steps: Counter<"workflow" | "kind" | "outcome">;
  readonly #attempts: Counter<"workflow" | "outcome">;
  readonly #attemptDuration: Histogram<"workflow">;
  readonly #instanceDuration: Histogram<"workflow" | "status">;
  readonly #cpu: Counter<"workflow">;
  readonly #wall: Counter<"workflow">;
  readonly #leasesLost: Counter;
  readonly #storeErrors: Counter;
  readonly #transactions: Histogram<"store">;
  #counts?: { at: number; rows: Promise<{ workflow: string; status: string; count: number }[]> };
  /** Labelled children by metric and label values: a step's counts skip prom-client's label hashing. */
  readonly #children = new Map<object, Map<string, unknown>>();

  constructor(runtime: Runtime, info: { version: string }) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    this.#created = new Counter({
      name: "cairn_instances_created_total",
      help: "Instances created",
      labelNames: ["workflow"],
      registers: [r],
    });
    this.#finished = new Counter({
      name: "cairn_instances_finished_total",
      help: "Instances that ended, by final status",
      labelNames: ["workflow", "status"],
      registers: [r],
    });
    this.#steps = new Counter({
      name: "cairn_steps_total",
      help: "Steps that ended, by kind and outcome",
      labelNames: ["workflow", "kind", "outcome"],
      registers: [r],
    });
    this.#attempts = new Counter({
      name: "cairn_step_attempts_total",
      help: "Step attempts that ended, by outcome",
      labelNames: ["workflow", "outcome"],
      registers: [r],
    });
    this.#attemptDuration = new Histogram({
      name: "cairn_step_attempt_duration_seconds",
      help: "Wall time of step attempts",
      labelNames: ["workflow"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers: [r],
    });
    this.#instanceDuration = new Histogram({
      name: "cairn_instance_duration_seconds",
      help: "Time from an instance's creation to its end",
      labelNames: ["workflow", "status"],
      buckets: [0.01, 0.1, 1, 10, 60, 600, 3600, 86_400, 604_800],
      registers: [r],
    });
    this.#cpu = new Counter({
      name: "cairn_instance_cpu_seconds_total",
      help: "CPU time of instance code (step callbacks and run()), approximate",
      labelNames: ["workflow"],
      registers: [r],
    });
    this.#wall = new Counter({
      name: "cairn_instance_wall_seconds_total",
      help: "Time instances were loaded in this worker",
      labelNames: ["workflow"],
      registers: [r],
    });
    this.#leasesLost = new Counter({
      name: "cairn_leases_lost_total",
      help: "Runs that lost their claim of an instance",
      registers: [r],
    });
    this.#storeErrors = new Counter({
      name: "cairn_store_errors_total",
      help: "Store failures runs could not hand to user code",
      registers: [r],
    });
    const counts = () => this.#storeCounts(runtime);
    new Gauge({
      name: "cairn_instances",
      help: `Instances by status, from the store (at most ${INSTANCE_GAUGE_MAX_AGE_MS / 1000} s old)`,
      labelNames: ["workflow", "status"],
      registers: [r],
      async collect() {
        this.reset();
        for (const row of await counts()) this.set({ workflow: row.workflow, status: row.status }, row.count);
      },
    });
    for (const [name, status, help] of [
      ["cairn_running_instances", "running", "Instances running, from the store"],
      ["cairn_queued_instances", "queued", "Instances queued, from the store"],
    ] as const)
      new Gauge({
        name,
        help,
        labelNames: ["workflow"],
        registers: [r],
        async collect() {
          this.reset();
          for (const def of runtime.workflows) this.set({ workflow: def.name }, 0);
          for (const row of await counts())
            if (row.status === status) this.set({ workflow: row.workflow }, row.count);
        },
      });
    new Gauge({
      name: "cairn_loaded_instances",
      help: "Instances in this process's memory",
      labelNames: ["workflow"],
      registers: [r],
      collect() {
        this.reset();
        const loaded = runtime.loaded();
        for (const def of runtime.workflows) this.set({ workflow: def.name }, loaded.get(def.name) ?? 0);
      },
    });
    new Gauge({
      name: "cairn_timers_due",
      help: "Waiting instances whose timer (a sleep or a retry delay) has come and that no run has taken up yet, from the store",
      registers: [r],
      async collect() {
        this.set(await runtime.store.queue.countDue(runtime.clock.now()));
      },
    });
    this.#transactions = new Histogram({
      name: "cairn_store_transaction_duration_seconds",
      help: "Duration of the store's database transactions (BEGIN to COMMIT or ROLLBACK)",
      labelNames: ["store"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [r],
    });
    this.#transactions.zero({ store: runtime.store.kind });
    new Gauge({
      name: "cairn_worker_info",
      help: "This worker",
      labelNames: ["worker_id", "version", "store"],
      registers: [r],
    }).set({ worker_id: runtime.workerId, version: info.version, store: runtime.store.kind }, 1);
  }

  #storeCounts(runtime: Runtime): Promise<{ workflow: string; status: string; count: number }[]> {
    const now = Date.now();
    if (!this.#counts || now - this.#counts.at > INSTANCE_GAUGE_MAX_AGE_MS) {
      const rows = runtime.store.instances.countByStatus();
      this.#counts = { at: now, rows };
      // A failed read is not kept: the next scrape asks again.
      rows.catch(() => {
        if (this.#counts?.rows === rows) this.#counts = undefined;
      });
    }
    return this.#counts.rows;
  }

  #counter(metric: Counter<string>, ...values: string[]): { inc(n?: number): void } {
    return this.#child(metric, values, () => metric.labels(...values));
  }

  #histogram(metric: Histogram<string>, ...values: string[]): { observe(v: number): void } {
    return this.#child(metric, values, () => metric.labels(...values));
  }

  #child<C>(metric: object, values: string[], make: () => C): C {
    let byValues = this.#children.get(metric);
    if (!byValues) this.#children.set(metric, (byValues = new Map()));
    const key = values.join("\0");
    let c = byValues.get(key) as C | undefined;
    if (c === undefined) byValues.set(key, (c = make()));
    return c;
  }

  stored(entries: readonly NewHistoryEntry[], instance?: { createdAt: number }): void {
    for (const e of entries) {
      const workflow = e.workflow;
      switch (e.type) {
        case "workflow_queued":
          this.#counter(this.#created, workflow).inc();
          break;
        case "workflow_completed":
        case "workflow_errored":
        case "workflow_terminated": {
          const status =
            e.type === "workflow_completed"
              ? "complete"
              : e.type === "workflow_errored"
                ? "errored"
                : "terminated";
          this.#counter(this.#finished, workflow, status).inc();
          if (instance)
            this.#histogram(this.#instanceDuration, workflow, status).observe(
              (e.timestamp - instance.createdAt) / 1000,
            );
          break;
        }
        case "attempt_completed":
        case "rollback_attempt_completed":
        case "attempt_errored":
        case "rollback_attempt_errored": {
          const ok = e.type === "attempt_completed" || e.type === "rollback_attempt_completed";
          this.#counter(this.#attempts, workflow, ok ? "ok" : failure(e)).inc();
          const wall = (e.data as { wallTimeMs?: number } | undefined)?.wallTimeMs;
          if (typeof wall === "number") this.#histogram(this.#attemptDuration, workflow).observe(wall / 1000);
          break;
        }
        case "step_completed":
        case "rollback_step_completed":
        case "sleep_completed":
        case "wait_completed":
          this.#counter(this.#steps, workflow, KIND[e.step?.kind ?? "do"], "ok").inc();
          break;
        case "step_errored":
        case "rollback_step_errored":
          this.#counter(this.#steps, workflow, KIND[e.step?.kind ?? "do"], failure(e)).inc();
          break;
        case "wait_timed_out":
          this.#counter(this.#steps, workflow, "wait", "timeout").inc();
          break;
      }
    }
  }

  ran(workflow: string, cpuTimeMs: number, wallTimeMs: number): void {
    this.#counter(this.#cpu, workflow).inc(cpuTimeMs / 1000);
    this.#counter(this.#wall, workflow).inc(wallTimeMs / 1000);
  }

  leaseLost(): void {
    this.#leasesLost.inc();
  }

  storeError(): void {
    this.#storeErrors.inc();
  }

  storeTransaction(store: string, durationMs: number): void {
    this.#histogram(this.#transactions, store).observe(durationMs / 1000);
  }

  /** The text format (0.0.4) of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
