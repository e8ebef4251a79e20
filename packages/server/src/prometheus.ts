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
 * prom-client's default process and Node.js metrics, on a registry of their own made once per
 * process: `collectDefaultMetrics` starts observers (GC, event-loop delay) that are never stopped, so
 * one per runtime would pile up in a process that opens many.
 */
let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Label values of up to three labels as nested maps: a lookup allocates nothing. */
class ByLabels<T> {
  readonly #root = new Map<string, Map<string, Map<string, T>>>();

  get(a: string, b = "", c = ""): T | undefined {
    return this.#root.get(a)?.get(b)?.get(c);
  }

  set(value: T, a: string, b = "", c = ""): T {
    let m1 = this.#root.get(a);
    if (!m1) this.#root.set(a, (m1 = new Map()));
    let m2 = m1.get(b);
    if (!m2) m1.set(b, (m2 = new Map()));
    m2.set(c, value);
    return value;
  }
}

/** Increments of one labelled series, added up in a plain number until the registry is read. */
interface Tally {
  readonly labels: Record<string, string>;
  n: number;
  /** Whether prom-client has the series yet (so it shows at 0 once anything asked for it). */
  shown: boolean;
}

/**
 * A prom-client counter fed through tallies: the hot path (every stored entry of every run) costs a
 * map lookup and an addition, and prom-client's label hashing and validation run once per series per
 * scrape, when `collect` hands it the sums.
 */
class TalliedCounter {
  readonly #labelNames: readonly string[];
  readonly #tallies = new ByLabels<Tally>();
  readonly #all: Tally[] = [];

  constructor(config: { name: string; help: string; labelNames: string[]; registers: Registry[] }) {
    this.#labelNames = config.labelNames;
    const all = this.#all;
    new Counter({
      ...config,
      collect() {
        for (const t of all)
          if (t.n !== 0 || !t.shown) {
            this.inc(t.labels, t.n);
            t.n = 0;
            t.shown = true;
          }
      },
    });
  }

  /** The tally of the series with these label values (in `labelNames` order). */
  of(a: string, b?: string, c?: string): Tally {
    return this.#tallies.get(a, b, c) ?? this.#add(a, b, c);
  }

  #add(a: string, b?: string, c?: string): Tally {
    const values = [a, b, c];
    const labels = Object.fromEntries(this.#labelNames.map((name, i) => [name, values[i]!]));
    const t: Tally = { labels, n: 0, shown: false };
    this.#all.push(t);
    return this.#tallies.set(t, a, b, c);
  }
}

/**
 * Observations of one labelled histogram series, kept in a plain array and handed to prom-client
 * when the registry is read (or when 1,024 have piled up): the hot path costs an array push.
 */
class PendingObservations {
  readonly #child: { observe(v: number): void };
  readonly #values: number[] = [];

  constructor(child: { observe(v: number): void }) {
    this.#child = child;
  }

  observe(v: number): void {
    if (this.#values.push(v) >= 1024) this.flush();
  }

  flush(): void {
    for (const v of this.#values) this.#child.observe(v);
    this.#values.length = 0;
  }
}

/**
 * A prom-client histogram fed through `PendingObservations`, one per series, handed to prom-client
 * in `collect` (when the registry is read).
 */
class BufferedHistogram {
  readonly #metric: Histogram<string>;
  readonly #series = new ByLabels<PendingObservations>();
  readonly #all: PendingObservations[] = [];

  constructor(config: {
    name: string;
    help: string;
    labelNames: string[];
    buckets: number[];
    registers: Registry[];
  }) {
    const all = this.#all;
    this.#metric = new Histogram({
      ...config,
      collect() {
        for (const p of all) p.flush();
      },
    });
  }

  /** The series with these label values (in `labelNames` order). */
  of(a: string, b?: string): PendingObservations {
    return this.#series.get(a, b) ?? this.#add(a, b);
  }

  #add(a: string, b?: string): PendingObservations {
    const p = new PendingObservations(b === undefined ? this.#metric.labels(a) : this.#metric.labels(a, b));
    this.#all.push(p);
    return this.#series.set(p, a, b);
  }

  /** Shows the series at zero before anything is observed. */
  zero(labels: Record<string, string>): void {
    this.#metric.zero(labels);
  }
}

/**
 * Cairn's Prometheus metrics (SPEC §12.3) on their own prom-client registry, fed by the runtime's
 * telemetry (`stored`, `ran`, `leaseLost`) and, for the gauges, by the store (counts at most
 * `INSTANCE_GAUGE_MAX_AGE_MS` old) and the runs in memory. Labels hold workflow names, statuses,
 * kinds and outcomes, never instance ids or step names. `text()` adds prom-client's default process
 * metrics (one set per process); `registry` holds Cairn's own.
 */
export class PrometheusMetrics implements Telemetry {
  readonly registry = new Registry();
  readonly #created: TalliedCounter;
  readonly #finished: TalliedCounter;
  readonly #steps: TalliedCounter;
  readonly #attempts: TalliedCounter;
  readonly #attemptDuration: BufferedHistogram;
  readonly #instanceDuration: BufferedHistogram;
  readonly #cpu: TalliedCounter;
  readonly #wall: TalliedCounter;
  readonly #leasesLost: Counter;
  readonly #storeErrors: Counter;
  readonly #transactions: BufferedHistogram;
  #counts?: { at: number; rows: Promise<{ workflow: string; status: string; count: number }[]> };

  constructor(runtime: Runtime, info: { version: string }) {
    const r = this.registry;
    processMetrics();
    this.#created = new TalliedCounter({
      name: "cairn_instances_created_total",
      help: "Instances created",
      labelNames: ["workflow"],
      registers: [r],
    });
    this.#finished = new TalliedCounter({
      name: "cairn_instances_finished_total",
      help: "Instances that ended, by final status",
      labelNames: ["workflow", "status"],
      registers: [r],
    });
    this.#steps = new TalliedCounter({
      name: "cairn_steps_total",
      help: "Steps that ended, by kind and outcome",
      labelNames: ["workflow", "kind", "outcome"],
      registers: [r],
    });
    this.#attempts = new TalliedCounter({
      name: "cairn_step_attempts_total",
      help: "Step attempts that ended, by outcome",
      labelNames: ["workflow", "outcome"],
      registers: [r],
    });
    this.#attemptDuration = new BufferedHistogram({
      name: "cairn_step_attempt_duration_seconds",
      help: "Wall time of step attempts",
      labelNames: ["workflow"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers: [r],
    });
    this.#instanceDuration = new BufferedHistogram({
      name: "cairn_instance_duration_seconds",
      help: "Time from an instance's creation to its end",
      labelNames: ["workflow", "status"],
      buckets: [0.01, 0.1, 1, 10, 60, 600, 3600, 86_400, 604_800],
      registers: [r],
    });
    this.#cpu = new TalliedCounter({
      name: "cairn_instance_cpu_seconds_total",
      help: "CPU time of instance code (step callbacks and run()), approximate",
      labelNames: ["workflow"],
      registers: [r],
    });
    this.#wall = new TalliedCounter({
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
    this.#transactions = new BufferedHistogram({
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

  stored(entries: readonly NewHistoryEntry[], instance?: { createdAt: number }): void {
    for (const e of entries) {
      const workflow = e.workflow;
      switch (e.type) {
        case "workflow_queued":
          this.#created.of(workflow).n++;
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
          this.#finished.of(workflow, status).n++;
          if (instance)
            this.#instanceDuration.of(workflow, status).observe((e.timestamp - instance.createdAt) / 1000);
          break;
        }
        case "attempt_completed":
        case "rollback_attempt_completed":
        case "attempt_errored":
        case "rollback_attempt_errored": {
          const ok = e.type === "attempt_completed" || e.type === "rollback_attempt_completed";
          this.#attempts.of(workflow, ok ? "ok" : failure(e)).n++;
          const wall = (e.data as { wallTimeMs?: number } | undefined)?.wallTimeMs;
          if (typeof wall === "number") this.#attemptDuration.of(workflow).observe(wall / 1000);
          break;
        }
        case "step_completed":
        case "rollback_step_completed":
        case "sleep_completed":
        case "wait_completed":
          this.#steps.of(workflow, KIND[e.step?.kind ?? "do"], "ok").n++;
          break;
        case "step_errored":
        case "rollback_step_errored":
          this.#steps.of(workflow, KIND[e.step?.kind ?? "do"], failure(e)).n++;
          break;
        case "wait_timed_out":
          this.#steps.of(workflow, "wait", "timeout").n++;
          break;
      }
    }
  }

  ran(workflow: string, cpuTimeMs: number, wallTimeMs: number): void {
    this.#cpu.of(workflow).n += cpuTimeMs / 1000;
    this.#wall.of(workflow).n += wallTimeMs / 1000;
  }

  leaseLost(): void {
    this.#leasesLost.inc();
  }

  storeError(): void {
    this.#storeErrors.inc();
  }

  storeTransaction(store: string, durationMs: number): void {
    this.#transactions.of(store).observe(durationMs / 1000);
  }

  /** The text format (0.0.4) of every metric. */
  async text(): Promise<string> {
    const [own, process] = await Promise.all([this.registry.metrics(), processMetrics().metrics()]);
    return own.endsWith("\n") || own === "" ? own + process : `${own}\n${process}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
