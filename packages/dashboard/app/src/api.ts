import { API_PREFIX } from "@cairn/api";
import { CairnApiError, type CairnClient, createClient } from "@cairn/client";
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";

/** The API token lives in sessionStorage: it survives reloads of the tab, not the browser. */
const TOKEN_KEY = "cairn.token";

interface AuthState {
  token: string | undefined;
  /** The API answered 401: show the token prompt. */
  needsToken: boolean;
  /** Bumped when the token changes, so every loader runs again. */
  generation: number;
}

let auth: AuthState = { token: readToken(), needsToken: false, generation: 0 };
const listeners = new Set<() => void>();
let client: CairnClient = makeClient(auth.token);

function readToken(): string | undefined {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || undefined;
  } catch {
    return undefined;
  }
}

function makeClient(token: string | undefined): CairnClient {
  return createClient({ url: location.origin, ...(token ? { token } : {}) });
}

function update(next: Partial<AuthState>) {
  auth = { ...auth, ...next };
  for (const l of listeners) l();
}

export function useAuth(): AuthState {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => auth,
  );
}

export function setToken(token: string | undefined) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: keep the token for this page only
  }
  client = makeClient(token);
  update({ token, needsToken: false, generation: auth.generation + 1 });
}

/** The typed client, with the current token. */
export function api(): CairnClient {
  return client;
}

/** Runs an API call; a 401 opens the token prompt. */
export async function call<T>(fn: (c: CairnClient) => Promise<T>): Promise<T> {
  try {
    return await fn(client);
  } catch (e) {
    if (isUnauthorized(e)) update({ needsToken: true });
    throw e;
  }
}

/**
 * GET an `/api/v1` route the typed client has no method for, with the tab's token; the `result` of
 * the envelope. An error answer throws a `CairnApiError` (a 401 opens the token prompt, as `call`).
 */
export async function getApi<T>(path: string, token: string | undefined): Promise<T> {
  const url = `${location.origin}${API_PREFIX}${path}`;
  const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = (await r.json().catch(() => undefined)) as
    | { success?: boolean; result?: T; errors?: { code?: string; message: string }[] }
    | undefined;
  if (r.ok && body?.success) return body.result as T;
  const first = body?.errors?.[0];
  const error = new CairnApiError({
    status: r.status,
    code: first?.code ?? "http",
    message: first?.message ?? `HTTP ${r.status}`,
    url,
  });
  if (isUnauthorized(error)) update({ needsToken: true });
  throw error;
}

export function isUnauthorized(e: unknown): boolean {
  return CairnApiError.is(e) && (e.status === 401 || e.code === "unauthorized");
}

/** A readable message for an error from the API or the network. */
export function errorMessage(e: unknown): string {
  if (CairnApiError.is(e)) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The `…/subscribe` URL for `EventSource`, which cannot send headers: the token goes in `?token=`. */
export function subscribeUrl(workflow: string, id: string): string {
  const u = new URL(
    `${API_PREFIX}/workflows/${encodeURIComponent(workflow)}/instances/${encodeURIComponent(id)}/subscribe`,
    location.origin,
  );
  if (auth.token) u.searchParams.set("token", auth.token);
  return u.toString();
}

export interface Loaded<T> {
  /**
   * The answer for the current `deps`, or with `keepPrevious` the last answer while the one for new
   * `deps` loads (then `stale` is true). Never an answer for other deps otherwise, not even for the
   * one render between a change of `deps` and the start of its load.
   */
  data: T | undefined;
  /** `data` answers earlier `deps` (only with `keepPrevious`). */
  stale: boolean;
  error: unknown;
  loading: boolean;
  /** Loads again; the previous data stays visible meanwhile. */
  reload: () => void;
}

const sameDeps = (a: readonly unknown[], b: readonly unknown[]) =>
  a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/**
 * Loads `fn` when `deps` change (and when the token changes), optionally every `refreshMs` while
 * the tab is visible. Stale answers (from older deps) are dropped. `keepPrevious` keeps showing the
 * last answer while the answer for new deps loads (a list's next page), instead of none.
 */
export function useLoad<T>(
  fn: (c: CairnClient) => Promise<T>,
  deps: unknown[],
  options: { refreshMs?: number; enabled?: boolean; keepPrevious?: boolean } = {},
): Loaded<T> {
  const { generation } = useAuth();
  const key = [...deps, generation];
  // `key`: the deps `data` answers; `errorKey`: the deps `error` came from.
  const [state, setState] = useState<{
    key: unknown[] | undefined;
    data: T | undefined;
    errorKey: unknown[] | undefined;
    error: unknown;
    loading: boolean;
  }>({ key: undefined, data: undefined, errorKey: undefined, error: undefined, loading: true });
  const seq = useRef(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const keyRef = useRef(key);
  keyRef.current = key;
  const enabled = options.enabled ?? true;

  const load = useCallback(() => {
    const mine = ++seq.current;
    const loadedKey = keyRef.current;
    setState((s) => ({ ...s, loading: true }));
    call((c) => fnRef.current(c)).then(
      (data) => {
        if (mine === seq.current)
          setState({ key: loadedKey, data, errorKey: undefined, error: undefined, loading: false });
      },
      (error) => {
        if (mine === seq.current) setState((s) => ({ ...s, errorKey: loadedKey, error, loading: false }));
      },
    );
  }, []);

  // biome-ignore lint/correctness/useExhaustiveDependencies: deps are the caller's
  useEffect(() => {
    if (!enabled) return;
    load();
  }, [...deps, generation, enabled]);

  useEffect(() => {
    if (!options.refreshMs || !enabled) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") load();
    }, options.refreshMs);
    return () => clearInterval(timer);
  }, [options.refreshMs, enabled, load]);

  const current = state.key !== undefined && sameDeps(state.key, key);
  const failed = state.errorKey !== undefined && sameDeps(state.errorKey, key);
  const shown = current || options.keepPrevious === true;
  return {
    data: shown ? state.data : undefined,
    stale: !current && shown && state.data !== undefined,
    error: failed ? state.error : undefined,
    loading: state.loading || (!current && !failed),
    reload: load,
  };
}
