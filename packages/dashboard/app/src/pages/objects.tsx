import { getApi, useAuth, useLoad } from "../api.ts";
import { formatTime } from "../format.ts";
import { Link, paths } from "../router.tsx";
import { DataTable, Empty, ErrorBox, Json, Loading, Section } from "../ui.tsx";

interface Namespace {
  binding: string;
  className: string;
  objects: number;
  loaded: number;
}

interface ObjectRow {
  id: string;
  name: string | null;
  lastAccess: number;
  createdAt: number;
  alarm: number | null;
  loaded: boolean;
}

interface ObjectDetail extends ObjectRow {
  sizeBytes: number;
  webSockets: number;
  alarmRetries: number;
  kv: { key: string; value: unknown }[];
  tables: { name: string; columns: string[]; rows: unknown[][]; count: number }[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The Durable Object namespaces, each with its objects (most recently used first). */
export function ObjectsPage() {
  const { token } = useAuth();
  const { data, error, loading, reload } = useLoad(
    async () => {
      const namespaces = await getApi<Namespace[]>("/objects", token);
      const lists = await Promise.all(
        namespaces.map((n) =>
          getApi<{ objects: ObjectRow[] }>(`/objects/${encodeURIComponent(n.binding)}?limit=100`, token),
        ),
      );
      return namespaces.map((n, i) => ({ ...n, list: lists[i]!.objects }));
    },
    [token],
    { refreshMs: 5000 },
  );
  return (
    <div className="page">
      <div className="page-head">
        <h1>Durable Objects</h1>
        <button type="button" className="btn small" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      {error && !data ? <ErrorBox error={error} retry={reload} /> : null}
      {!data && !error ? <Loading what="Loading Durable Objects" /> : null}
      {data && data.length === 0 ? (
        <Empty title="No Durable Object namespaces.">
          Add <code>durable_objects.bindings</code> and <code>migrations</code> to wrangler, or{" "}
          <code>objects</code> to <code>createCairn</code>.
        </Empty>
      ) : null}
      {data?.map((n) => (
        <Section key={n.binding} title={`${n.binding} (${n.className})`} id={`ns-${n.binding}`}>
          <p className="muted">
            {n.objects} objects, {n.loaded} loaded
          </p>
          <DataTable
            testId={`objects-${n.binding}`}
            rows={n.list}
            rowKey={(o) => o.id}
            empty="No objects yet."
            columns={[
              {
                header: "Object",
                cell: (o) => (
                  <Link className="mono" to={paths.object(n.binding, o.id)}>
                    {o.id.slice(0, 16)}…
                  </Link>
                ),
              },
              { header: "Name", cell: (o) => o.name ?? "—" },
              { header: "Last access", cell: (o) => formatTime(iso(o.lastAccess)) },
              { header: "Alarm", cell: (o) => (o.alarm === null ? "—" : formatTime(iso(o.alarm))) },
              { header: "Loaded", cell: (o) => (o.loaded ? "yes" : "no") },
            ]}
          />
        </Section>
      ))}
    </div>
  );
}

/** One object, read-only: size, alarm, its KV entries and SQL tables (first rows). */
export function ObjectPage({ binding, id }: { binding: string; id: string }) {
  const { token } = useAuth();
  const { data, error, reload } = useLoad(
    () => getApi<ObjectDetail>(`/objects/${encodeURIComponent(binding)}/${encodeURIComponent(id)}`, token),
    [binding, id, token],
    { refreshMs: 5000 },
  );
  if (error && !data) return <ErrorBox error={error} retry={reload} />;
  if (!data) return <Loading what="Loading the object" />;
  return (
    <div className="page">
      <div className="page-head">
        <h1 className="mono">{data.name ?? data.id}</h1>
      </div>
      <dl className="facts" data-testid="object-facts">
        <dt>Id</dt>
        <dd className="mono">{data.id}</dd>
        <dt>Size</dt>
        <dd>{data.sizeBytes.toLocaleString()} bytes</dd>
        <dt>Last access</dt>
        <dd>{formatTime(iso(data.lastAccess))}</dd>
        <dt>Alarm</dt>
        <dd>
          {data.alarm === null ? "none" : formatTime(iso(data.alarm))}
          {data.alarmRetries ? ` (retry ${data.alarmRetries})` : ""}
        </dd>
        <dt>Loaded</dt>
        <dd>{data.loaded ? "yes" : "no (hibernated or idle)"}</dd>
        <dt>WebSockets</dt>
        <dd>{data.webSockets}</dd>
      </dl>
      <Section title={`Key-value (${data.kv.length})`} id="kv">
        <DataTable
          testId="object-kv"
          rows={data.kv}
          rowKey={(e) => e.key}
          empty="No keys."
          columns={[
            { header: "Key", className: "mono", cell: (e) => e.key },
            { header: "Value", cell: (e) => <Json value={e.value} /> },
          ]}
        />
      </Section>
      {data.tables.map((t) => (
        <Section key={t.name} title={`Table ${t.name} (${t.count} rows)`} id={`table-${t.name}`}>
          <DataTable
            testId={`object-table-${t.name}`}
            rows={t.rows}
            rowKey={(_, i) => i}
            columns={t.columns.map((c, j) => ({
              header: c,
              className: "mono",
              cell: (r: unknown[]) => (typeof r[j] === "string" ? r[j] : JSON.stringify(r[j])),
            }))}
          />
        </Section>
      ))}
    </div>
  );
}
