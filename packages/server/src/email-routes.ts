import { z } from "zod";
import { envelope, HttpError } from "./errors.ts";
import { defineRoute, type RouteGroup } from "./routes.ts";

/** The largest inbound message `POST /email` takes (Cloudflare Email Routing's limit). */
export const MAX_EMAIL_BYTES = 25 * 1024 * 1024;

/**
 * What the email route works with: the host's delivery of one rfc822 message to the project's
 * `email()` handler. For a message it cannot deliver (bad envelope, not a message) it throws an
 * error with `refused: true` (answered 400 `body` with its message); it resolves to the rejection
 * the handler set, if any.
 */
export interface EmailApiDeps {
  deliverEmail?: (
    raw: Uint8Array,
    envelope: { from: string | undefined; to: string | undefined },
  ) => Promise<{ rejected: string | undefined }>;
}

const ADDRESS = /^[^\s@<>]{1,64}@[^\s@<>]{1,253}$/;

function envelopeHeader(value: string | undefined, header: string): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!ADDRESS.test(v))
    throw new HttpError("body", `${header} is not an email address: ${JSON.stringify(value)}`);
  return v;
}

/** Inbound mail for the project's `email()` handler (SPEC §13.8, docs/agents.md). */
export const emailRoutes: RouteGroup<EmailApiDeps> = {
  tag: "email",
  description: "Inbound mail, delivered to the project's email() handler",
  routes: [
    defineRoute<EmailApiDeps>({
      method: "post",
      path: "/email",
      operationId: "deliverEmail",
      summary: "Deliver an rfc822 message (Content-Type: message/rfc822) to the project's email() handler",
      description:
        "The envelope is taken from x-cairn-mail-from / x-cairn-rcpt-to, else from the From and first To headers. " +
        "The result says whether the handler rejected the message (setReject) and why.",
      headers: {
        "x-cairn-mail-from": "the envelope sender (MAIL FROM)",
        "x-cairn-rcpt-to": "the envelope recipient (RCPT TO)",
      },
      response: {
        description: "delivered",
        result: z.object({ delivered: z.boolean(), rejected: z.string().nullable() }),
      },
      errors: [404, 413, 415],
      async handle({ c }, { deliverEmail }) {
        const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
        if (type !== "message/rfc822")
          throw new HttpError(
            "unsupported_media_type",
            `Expected Content-Type: message/rfc822, got ${type ? JSON.stringify(type) : "none"}`,
            415,
          );
        const from = envelopeHeader(c.req.header("x-cairn-mail-from"), "x-cairn-mail-from");
        const to = envelopeHeader(c.req.header("x-cairn-rcpt-to"), "x-cairn-rcpt-to");
        const declared = Number(c.req.header("content-length") ?? "0");
        if (declared > MAX_EMAIL_BYTES)
          throw new HttpError(
            "payload.too_large",
            `The message is larger than ${MAX_EMAIL_BYTES} bytes`,
            413,
          );
        const raw = new Uint8Array(await c.req.arrayBuffer());
        if (raw.byteLength > MAX_EMAIL_BYTES)
          throw new HttpError(
            "payload.too_large",
            `The message is larger than ${MAX_EMAIL_BYTES} bytes`,
            413,
          );
        if (raw.byteLength === 0) throw new HttpError("body", "The message is empty");
        if (!deliverEmail) throw new HttpError("not_found", "The project has no email() handler", 404);
        try {
          const { rejected } = await deliverEmail(raw, { from, to });
          return c.json(envelope({ delivered: rejected === undefined, rejected: rejected ?? null }));
        } catch (e) {
          if ((e as { refused?: unknown } | null)?.refused === true)
            throw new HttpError("body", (e as Error).message);
          throw e;
        }
      },
    }),
  ],
};
