/** Display helpers: times in the viewer's time zone, durations in words people read quickly. */

export function ms(iso: string | null | undefined): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : undefined;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** "14:03:07" today, "2025-01-31 14:03:07" otherwise; with milliseconds when asked. */
export function formatTime(iso: string | number | null | undefined, withMs = false): string {
  if (iso === null || iso === undefined) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${withMs ? `.${pad(d.getMilliseconds(), 3)}` : ""}`;
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

export function formatDuration(millis: number | undefined): string {
  if (millis === undefined || !Number.isFinite(millis)) return "—";
  const m = Math.max(0, millis);
  if (m < 1000) return `${Math.round(m)} ms`;
  if (m < 60_000) return `${(m / 1000).toFixed(m < 10_000 ? 2 : 1)} s`;
  if (m < 3_600_000) return `${Math.floor(m / 60_000)} min ${Math.floor((m % 60_000) / 1000)} s`;
  if (m < 86_400_000) return `${Math.floor(m / 3_600_000)} h ${Math.floor((m % 3_600_000) / 60_000)} min`;
  return `${Math.floor(m / 86_400_000)} d ${Math.floor((m % 86_400_000) / 3_600_000)} h`;
}

export function between(start: string | null | undefined, end: string | null | undefined, now?: number) {
  const a = ms(start);
  const b = ms(end) ?? now;
  return a === undefined || b === undefined ? undefined : b - a;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  const t = ms(iso);
  if (t === undefined) return "never";
  const d = now - t;
  if (d < 0) return `in ${formatDuration(-d)}`;
  if (d < 5_000) return "just now";
  if (d < 60_000) return `${Math.round(d / 1000)} s ago`;
  return `${formatDuration(d).replace(/ \d+ (s|min|h)$/, "")} ago`;
}

/** Pretty JSON; `undefined` as an em dash. */
export function pretty(value: unknown): string {
  if (value === undefined) return "—";
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** `<input type="datetime-local">` value → ISO string, or undefined when empty or invalid. */
export function localToIso(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const t = new Date(value).getTime();
  return Number.isFinite(t) ? new Date(t).toISOString() : undefined;
}

/**
 * Parses the text of a JSON field. Empty text is `undefined` (nothing sent); otherwise the value,
 * or the parser's message.
 */
export function parseJsonField(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (text.trim() === "") return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: `Not valid JSON: ${(e as Error).message}` };
  }
}

/** The pattern of instance ids and event types (SPEC §3). */
export const ID_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9-_]*$/;
