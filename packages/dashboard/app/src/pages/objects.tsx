import { useAuth, useLoad } from "../api.ts";
import { formatTime } from "../format.ts";
import { Link, paths } from "../router.tsx";
import { Empty, ErrorBox, Json, Loading, Section } from "../ui.tsx";

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

/** GET an `/api/v1/objects` route with the tab's token; the `result` of the envelope. */
async function getObjects<T>(path: string, token: string | undefined): Promise<T> {
  const r = await fetch(`${location.origin}/api/v1/objects${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const body = (await r.json().catch(() => undefined)) as
    | { success?: boolean; result?: T; errors?: { message: string }[] }
    | undefined;
  if (!r.ok || !body?.success) throw new Error(body?.errors?.[0]?.message ?? `HTTP ${r.status}`);
  return body.result as T;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The Durable Object namespaces, each with its objects (most recently used first). */
export function ObjectsPage() {
  const { token } = useAuth();
  const { data, error, loading, reload } = useLoad(
    async () => {
      const namespaces = await getObjects<Namespace[]>("", token);
      const lists = await Promise.all(
        namespaces.map((n) =>
          getObjects<{ objects: ObjectRow[] }>(`/${encodeURIComponent(n.binding)}?limit=100`, token),
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
          {n.list.length === 0 ? (
            <Empty title="No objects yet." />
          ) : (
            <table className="table" data-testid={`objects-${n.binding}`}>
              <thead>
                <tr>
                  <th scope="col">Object</th>
                  <th scope="col">Name</th>
                  <th scope="col">Last access</th>
                  <th scope="col">Alarm</th>
                  <th scope="col">Loaded</th>
                </tr>
              </thead>
              <tbody>
                {n.list.map((o) => (
                  <tr key={o.id}>
                    <td>
                      <Link className="mono" to={paths.object(n.binding, o.id)}>
                        {o.id.slice(0, 16)}…
                      </Link>
                    </td>
                    <td>{o.name ?? "—"}</td>
                    <td>{formatTime(iso(o.lastAccess))}</td>
                    <td>{o.alarm === null ? "—" : formatTime(iso(o.alarm))}</td>
                    <td>{o.loaded ? "yes" : "no"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Section>
      ))}
    </div>
  );
}

/** One object, read-only: size, alarm, its KV entries and SQL tables (first rows). */
export function ObjectPage({ binding, id }: { binding: string; id: string }) {
  const { token } = useAuth();
  const { data, error, reload } = useLoad(
    () => getObjects<ObjectDetail>(`/${encodeURIComponent(binding)}/${encodeURIComponent(id)}`, token),
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
        {data.kv.length === 0 ? (
          <Empty title="No keys." />
        ) : (
          <table className="table" data-testid="object-kv">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {data.kv.map((e) => (
                <tr key={e.key}>
                  <td className="mono">{e.key}</td>
                  <td>
                    <Json value={e.value} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      {data.tables.map((t) => (
        <Section key={t.name} title={`Table ${t.name} (${t.count} rows)`} id={`table-${t.name}`}>
          <table className="table" data-testid={`object-table-${t.name}`}>
            <thead>
              <tr>
                {t.columns.map((c) => (
                  <th key={c} scope="col">
                    {c}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {t.rows.map((r, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: rows have no key of their own
                <tr key={i}>
                  {r.map((v, j) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: columns are positional
                    <td key={j} className="mono">
                      {typeof v === "string" ? v : JSON.stringify(v)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
      ))}
    </div>
  );
}
