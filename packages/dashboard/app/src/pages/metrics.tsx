import type { WorkflowMetrics } from "@cairn/api";
import { useLoad } from "../api.ts";
import { formatDuration } from "../format.ts";
import { Link, paths } from "../router.tsx";
import { Empty, ErrorBox, Loading } from "../ui.tsx";

/** Minutes the charts show, ending now. */
const WINDOW_MINUTES = 60;
const MINUTE_MS = 60_000;

type Group = WorkflowMetrics["groups"][number];

/** CPU time in ms: 0.01 ms below 10 ms (it is approximate anyway), else like durations. */
export function formatCpu(ms: number): string {
  return ms < 10 ? `${Number(ms.toFixed(2))} ms` : formatDuration(ms);
}

/**
 * The Metrics tab of a workflow (SPEC §12): the instances that used the most CPU time, and per
 * minute of the last hour the instances started and finished, the attempts' error rate, step
 * duration percentiles and CPU time. Everything comes from `GET /workflows/:name/metrics`.
 */
export function WorkflowMetricsView({ workflow }: { workflow: string }) {
  const top = useLoad(
    (c) => c.getWorkflowMetrics(workflow, { group_by: "instanceId", order_by: "cpuTime", limit: 10 }),
    [workflow],
    { refreshMs: 5000 },
  );
  const series = useLoad(
    (c) => {
      const end = Math.ceil(Date.now() / MINUTE_MS) * MINUTE_MS;
      return c.getWorkflowMetrics(workflow, {
        group_by: "eventType,datetimeMinute",
        date_start: new Date(end - WINDOW_MINUTES * MINUTE_MS).toISOString(),
        date_end: new Date(end).toISOString(),
      });
    },
    [workflow],
    { refreshMs: 5000 },
  );
  if (top.error) return <ErrorBox error={top.error} retry={top.reload} />;
  if (series.error) return <ErrorBox error={series.error} retry={series.reload} />;
  if (!top.data || !series.data) return <Loading what="Loading metrics" />;
  return (
    <>
      <TopInstances workflow={workflow} metrics={top.data} />
      <Charts metrics={series.data} />
    </>
  );
}

function TopInstances({ workflow, metrics }: { workflow: string; metrics: WorkflowMetrics }) {
  const groups = metrics.groups.filter((g) => g.sum.cpuTime > 0 || g.sum.wallTime > 0);
  return (
    <section className="panel" aria-label="Top instances by CPU time">
      <div className="panel-head">
        <h2>Top instances by CPU time</h2>
        <span className="muted">
          last 24 hours · step attempts · CPU limit {formatCpu(metrics.cpu_limit_ms)} per attempt
        </span>
      </div>
      {groups.length === 0 ? (
        <Empty title="No attempts in the last 24 hours." />
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Top instances by CPU time">
            <thead>
              <tr>
                <th>Instance</th>
                <th className="num">CPU time</th>
                <th className="num">Wall time</th>
              </tr>
            </thead>
            <tbody>
              {groups.map((g) => {
                const id = g.dimensions.instanceId ?? "";
                return (
                  <tr key={id}>
                    <td>
                      <Link to={paths.instance(workflow, id)}>{id}</Link>
                    </td>
                    <td className="num" data-cpu-ms={g.sum.cpuTime}>
                      {formatCpu(g.sum.cpuTime)}
                    </td>
                    <td className="num">{formatDuration(g.sum.wallTime)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

interface Series {
  name: string;
  color: string;
  values: (number | null)[];
}

function Charts({ metrics }: { metrics: WorkflowMetrics }) {
  const end = Date.parse(metrics.date_end);
  const start = end - WINDOW_MINUTES * MINUTE_MS;
  const minutes = Array.from({ length: WINDOW_MINUTES }, (_, i) =>
    new Date(start + i * MINUTE_MS).toISOString(),
  );
  const at = new Map<string, Group>();
  for (const g of metrics.groups) at.set(`${g.dimensions.eventType}|${g.dimensions.datetimeMinute}`, g);
  const count = (type: string) => minutes.map((m) => at.get(`${type}|${m}`)?.count ?? 0);
  const sum = (types: string[], f: (g: Group) => number) =>
    minutes.map((m) => types.reduce((n, t) => n + (at.has(`${t}|${m}`) ? f(at.get(`${t}|${m}`)!) : 0), 0));
  const started = count("WORKFLOW_START");
  const finished = sum(["WORKFLOW_SUCCESS", "WORKFLOW_FAILURE", "WORKFLOW_TERMINATED"], (g) => g.count);
  const ok = count("ATTEMPT_SUCCESS");
  const failed = count("ATTEMPT_FAILURE");
  const errorRate = minutes.map((_, i) => {
    const all = ok[i]! + failed[i]!;
    return all === 0 ? null : (100 * failed[i]!) / all;
  });
  const quantile = (k: keyof Group["quantiles"]) =>
    minutes.map((m) => at.get(`ATTEMPT_SUCCESS|${m}`)?.quantiles[k] ?? null);
  const cpu = sum(["ATTEMPT_SUCCESS", "ATTEMPT_FAILURE"], (g) => g.sum.cpuTime);
  return (
    <section className="panel" aria-label="Charts">
      <div className="panel-head">
        <h2>Last hour, per minute</h2>
      </div>
      <div className="charts">
        <Chart
          title="Instances started and finished"
          unit=""
          series={[
            { name: "started", color: "var(--s-running)", values: started },
            { name: "finished", color: "var(--s-complete)", values: finished },
          ]}
        />
        <Chart
          title="Attempt error rate"
          unit="%"
          series={[{ name: "errors", color: "var(--s-errored)", values: errorRate }]}
        />
        <Chart
          title="Step duration percentiles"
          unit="ms"
          series={[
            { name: "p50", color: "var(--b-ok)", values: quantile("wallTimeP50") },
            { name: "p90", color: "var(--b-retry)", values: quantile("wallTimeP90") },
            { name: "p99", color: "var(--b-fail)", values: quantile("wallTimeP99") },
          ]}
        />
        <Chart title="CPU time" unit="ms" series={[{ name: "cpu", color: "var(--accent)", values: cpu }]} />
      </div>
    </section>
  );
}

const W = 320;
const H = 120;

/** A small line chart of per-minute values; `null` values leave gaps. */
function Chart({ title, unit, series }: { title: string; unit: string; series: Series[] }) {
  const max = Math.max(1, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const n = series[0]?.values.length ?? 0;
  const x = (i: number) => (n <= 1 ? 0 : (i / (n - 1)) * W);
  const y = (v: number) => H - (v / max) * (H - 4) - 2;
  const totals = series.map((s) => s.values.reduce<number>((a, v) => a + (v ?? 0), 0));
  return (
    <figure className="chart" aria-label={title}>
      <figcaption>
        {title}
        <span className="muted">
          {" "}
          max {Number(max.toFixed(2))}
          {unit}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" height={H} role="img" aria-label={`${title} chart`}>
        <line x1={0} y1={H - 1} x2={W} y2={H - 1} stroke="var(--border)" />
        {series.map((s) => {
          const points: string[][] = [[]];
          s.values.forEach((v, i) => {
            if (v === null) points.push([]);
            else points[points.length - 1]!.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
          });
          return points
            .filter((p) => p.length > 0)
            .map((p) =>
              p.length === 1 ? (
                <circle
                  key={`${s.name}@${p[0]}`}
                  cx={p[0]!.split(",")[0]}
                  cy={p[0]!.split(",")[1]}
                  r={2}
                  fill={s.color}
                />
              ) : (
                <polyline
                  key={`${s.name}@${p[0]}`}
                  points={p.join(" ")}
                  fill="none"
                  stroke={s.color}
                  strokeWidth={1.5}
                />
              ),
            );
        })}
      </svg>
      <ul className="legend">
        {series.map((s, i) => (
          <li key={s.name} data-series={s.name} data-total={totals[i]}>
            <span className="swatch" style={{ background: s.color }} /> {s.name}
          </li>
        ))}
      </ul>
    </figure>
  );
}
