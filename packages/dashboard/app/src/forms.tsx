import type { InstanceSummary } from "@cairn/api";
import { MAX_INSTANCE_ID_LENGTH } from "@cairn/core";
import { useEffect, useId, useRef, useState } from "react";
import { call, errorMessage } from "./api.ts";
import { ID_PATTERN, parseJsonField } from "./format.ts";

/** Creates an instance; params must be valid JSON before anything is sent. */
export function CreateInstanceForm({
  workflow,
  onCreated,
  onCancel,
}: {
  workflow: string;
  onCreated: (instance: InstanceSummary) => void;
  onCancel?: () => void;
}) {
  const [id, setId] = useState("");
  const [params, setParams] = useState("{\n  \n}");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  const uid = useId();
  useEffect(() => first.current?.focus(), []);
  const parsed = parseJsonField(params);
  const idError =
    id && !ID_PATTERN.test(id) ? "Letters, digits, - and _ only (not starting with -)." : undefined;

  return (
    <form
      className="panel form"
      aria-label="New instance"
      data-testid="create-form"
      noValidate
      onSubmit={async (e) => {
        e.preventDefault();
        if (!parsed.ok) return setError(`Params: ${parsed.error}`);
        if (idError) return setError(`Instance id: ${idError}`);
        setBusy(true);
        setError(undefined);
        try {
          const created = await call((c) =>
            c.createInstance(workflow, {
              ...(id ? { instance_id: id } : {}),
              ...(parsed.value !== undefined ? { params: parsed.value } : {}),
            }),
          );
          onCreated(created);
        } catch (err) {
          setError(errorMessage(err));
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>New instance of {workflow}</h2>
      <label className="field">
        <span>Instance id (optional)</span>
        <input
          ref={first}
          name="instance_id"
          value={id}
          maxLength={MAX_INSTANCE_ID_LENGTH}
          placeholder="random UUID when empty"
          aria-invalid={idError ? true : undefined}
          onChange={(e) => setId(e.target.value)}
        />
      </label>
      <label className="field">
        <span>Params (JSON)</span>
        <textarea
          name="params"
          rows={6}
          spellCheck={false}
          className="mono"
          value={params}
          aria-invalid={!parsed.ok || undefined}
          aria-describedby={`${uid}-hint`}
          onChange={(e) => {
            setParams(e.target.value);
            setError(undefined);
          }}
        />
        <small id={`${uid}-hint`} className={parsed.ok ? "muted" : "text-error"}>
          {parsed.ok ? "Any JSON value; leave empty for none." : parsed.error}
        </small>
      </label>
      {error ? (
        <div className="state error" role="alert" data-testid="form-error">
          {error}
        </div>
      ) : null}
      <div className="row end">
        {onCancel ? (
          <button type="button" className="btn ghost" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
        <button type="submit" className="btn primary" disabled={busy}>
          {busy ? "Creating…" : "Create instance"}
        </button>
      </div>
    </form>
  );
}

/** Sends an event to an instance; the payload must be valid JSON (or empty, for `null`). */
export function SendEventForm({
  workflow,
  id,
  suggestedType,
  disabled,
  onSent,
}: {
  workflow: string;
  id: string;
  suggestedType?: string | undefined;
  disabled?: boolean;
  onSent?: () => void;
}) {
  const [type, setType] = useState(suggestedType ?? "");
  const [payload, setPayload] = useState("");
  const [message, setMessage] = useState<{ text: string; error: boolean }>();
  const [busy, setBusy] = useState(false);
  const touched = useRef(false);
  const uid = useId();
  useEffect(() => {
    if (!touched.current && suggestedType) setType(suggestedType);
  }, [suggestedType]);
  const parsed = parseJsonField(payload);
  const typeError = type && !ID_PATTERN.test(type) ? "Letters, digits, - and _ only." : undefined;

  return (
    <form
      className="form"
      aria-label="Send event"
      data-testid="event-form"
      noValidate
      onSubmit={async (e) => {
        e.preventDefault();
        if (!type) return setMessage({ text: "Give the event a type.", error: true });
        if (typeError) return setMessage({ text: `Type: ${typeError}`, error: true });
        if (!parsed.ok) return setMessage({ text: `Payload: ${parsed.error}`, error: true });
        setBusy(true);
        setMessage(undefined);
        try {
          await call((c) => c.sendEvent(workflow, id, type, parsed.value ?? null));
          setMessage({ text: `Sent “${type}”.`, error: false });
          setPayload("");
          onSent?.();
        } catch (err) {
          setMessage({ text: errorMessage(err), error: true });
        } finally {
          setBusy(false);
        }
      }}
    >
      <label className="field">
        <span>Type</span>
        <input
          name="type"
          value={type}
          maxLength={100}
          placeholder="e.g. approved"
          aria-invalid={typeError ? true : undefined}
          onChange={(e) => {
            touched.current = true;
            setType(e.target.value);
          }}
        />
      </label>
      <label className="field">
        <span>Payload (JSON)</span>
        <textarea
          name="payload"
          rows={4}
          spellCheck={false}
          className="mono"
          value={payload}
          placeholder='{"by": "ana"}'
          aria-invalid={!parsed.ok || undefined}
          aria-describedby={`${uid}-hint`}
          onChange={(e) => {
            setPayload(e.target.value);
            setMessage(undefined);
          }}
        />
        <small id={`${uid}-hint`} className={parsed.ok ? "muted" : "text-error"}>
          {parsed.ok ? "Empty sends null." : parsed.error}
        </small>
      </label>
      {message ? (
        <div
          className={`state ${message.error ? "error" : "ok"}`}
          role={message.error ? "alert" : "status"}
          data-testid="event-message"
        >
          {message.text}
        </div>
      ) : null}
      <div className="row end">
        <button type="submit" className="btn primary" disabled={busy || disabled}>
          {busy ? "Sending…" : "Send event"}
        </button>
      </div>
    </form>
  );
}
