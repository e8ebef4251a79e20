/**
 * Mail in and out of Cairn (SPEC §13.8): composing rfc822 messages (nodemailer's MailComposer),
 * the outbound transports (`.eml` files in a directory under `cairn dev`, SMTP from
 * `CAIRN_SMTP_URL` under `cairn start`), a `send_email` binding over a transport, and the
 * `ForwardableEmailMessage` an inbound rfc822 message is delivered as (headers by postal-mime).
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nanoid } from "nanoid";
import { createTransport } from "nodemailer";
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import PostalMime from "postal-mime";
import type { ForwardableEmailMessage } from "./email.ts";

/** A composed message with its SMTP envelope. */
export interface OutboundEmail {
  from: string;
  to: string;
  raw: Uint8Array | string;
}

/** Where outbound mail goes. */
export interface MailTransport {
  /** Delivers one message; resolves to where it went (the `.eml` path, or the SMTP message id). */
  send(message: OutboundEmail): Promise<{ path?: string; messageId?: string }>;
  close?(): void;
}

/** What `composeEmail` builds a message from. */
export interface ComposeOptions {
  from: string | { name?: string; address: string };
  to: string | string[];
  subject: string;
  text?: string;
  html?: string;
  messageId?: string;
  inReplyTo?: string;
  references?: string;
  replyTo?: string;
  headers?: Record<string, string>;
}

/** An rfc822 message (MIME, with encoded headers) as bytes. */
export async function composeEmail(options: ComposeOptions): Promise<Uint8Array> {
  const from =
    typeof options.from === "string"
      ? options.from
      : { name: options.from.name ?? "", address: options.from.address };
  const composer = new MailComposer({
    from,
    to: options.to,
    subject: options.subject,
    ...(options.text !== undefined ? { text: options.text } : {}),
    ...(options.html !== undefined ? { html: options.html } : {}),
    ...(options.messageId ? { messageId: options.messageId } : {}),
    ...(options.inReplyTo ? { inReplyTo: options.inReplyTo } : {}),
    ...(options.references ? { references: options.references } : {}),
    ...(options.replyTo ? { replyTo: options.replyTo } : {}),
    headers: options.headers ?? {},
  });
  const buffer = await new Promise<Buffer>((resolve, reject) =>
    composer.compile().build((error, message) => (error ? reject(error) : resolve(message))),
  );
  return new Uint8Array(buffer);
}

/**
 * `cairn dev`'s transport: each message is written to `dir` as `<unix ms>-<random>.eml` (written to
 * a temporary name and renamed, so a reader never sees half a file).
 */
export function emlDirectoryTransport(dir: string): MailTransport {
  return {
    async send(message) {
      mkdirSync(dir, { recursive: true });
      const name = `${Date.now()}-${nanoid(8)}.eml`;
      const path = join(dir, name);
      const tmp = join(dir, `.${name}.tmp`);
      writeFileSync(tmp, typeof message.raw === "string" ? message.raw : Buffer.from(message.raw));
      renameSync(tmp, path);
      return { path };
    },
  };
}

/** `cairn start`'s transport: SMTP to the server `url` names (`smtp://user:pass@host:port`, `smtps://…`). */
export function smtpTransport(url: string): MailTransport {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`CAIRN_SMTP_URL is not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "smtp:" && parsed.protocol !== "smtps:")
    throw new Error(`CAIRN_SMTP_URL must start with smtp:// or smtps://, not ${parsed.protocol}//`);
  const transport = createTransport(url);
  return {
    async send(message) {
      const info = await transport.sendMail({
        envelope: { from: message.from, to: [message.to] },
        raw: typeof message.raw === "string" ? message.raw : Buffer.from(message.raw),
      });
      return { messageId: info.messageId };
    },
    close: () => transport.close(),
  };
}

/** The transport for a mode: SMTP when `smtpUrl` is set under `start`, else `.eml` files in `mailDir`. */
export function mailTransportFor(options: {
  mode: "dev" | "start";
  mailDir: string;
  smtpUrl?: string | undefined;
}): MailTransport {
  if (options.mode === "start" && options.smtpUrl) return smtpTransport(options.smtpUrl);
  return emlDirectoryTransport(options.mailDir);
}

/** Cloudflare's `send_email` binding over a transport: `send({ from, to, raw })` (an `EmailMessage`). */
export interface SendEmailBinding {
  send(message: {
    from: string;
    to: string;
    raw: Uint8Array | string | ReadableStream<Uint8Array>;
  }): Promise<void>;
}

/**
 * A `send_email` binding over `transport`. With `destinationAddress` every message must go to that
 * address; with `allowedDestinationAddresses` to one of them (wrangler's `send_email` options).
 */
export function sendEmailBinding(
  transport: MailTransport,
  restrict: { name?: string; destinationAddress?: string; allowedDestinationAddresses?: string[] } = {},
): SendEmailBinding {
  const what = restrict.name ? `send_email ${restrict.name}` : "send_email";
  return {
    async send(message) {
      if (!message || typeof message.from !== "string" || typeof message.to !== "string")
        throw new TypeError(`${what}: the message needs from and to (strings)`);
      const to = message.to.toLowerCase();
      if (restrict.destinationAddress !== undefined && to !== restrict.destinationAddress.toLowerCase())
        throw new Error(`${what}: may only send to ${restrict.destinationAddress}, not ${message.to}`);
      if (
        restrict.allowedDestinationAddresses &&
        !restrict.allowedDestinationAddresses.some((a) => a.toLowerCase() === to)
      )
        throw new Error(
          `${what}: ${message.to} is not in allowed_destination_addresses (${restrict.allowedDestinationAddresses.join(", ")})`,
        );
      const raw =
        message.raw instanceof ReadableStream
          ? new Uint8Array(await new Response(message.raw).arrayBuffer())
          : message.raw;
      await transport.send({ from: message.from, to: message.to, raw });
    },
  };
}

/** Thrown for an inbound message that cannot be delivered: bad envelope or not a message. */
export class InboundEmailError extends Error {
  override name = "InboundEmailError";
  /** The HTTP API answers such an error 400 with its message. */
  readonly refused = true;
}

const ADDRESS = /^[^\s@<>]{1,64}@[^\s@<>]{1,253}$/;

/**
 * An inbound rfc822 message as the `ForwardableEmailMessage` a Worker's `email()` handler gets.
 * `from`/`to` are the envelope (they default to the message's From and first To); `reply` sends
 * through `transport`; `forward` sends the original bytes to another address. `rejected` holds what
 * the handler passed to `setReject`.
 */
export async function inboundEmail(
  raw: Uint8Array,
  envelope: { from?: string | undefined; to?: string | undefined },
  transport: MailTransport,
): Promise<ForwardableEmailMessage & { readonly rejected: string | undefined }> {
  if (raw.byteLength === 0) throw new InboundEmailError("The message is empty");
  const parsed = await PostalMime.parse(raw);
  if (parsed.headers.length === 0)
    throw new InboundEmailError("The message has no headers (expected rfc822)");
  const from = envelope.from ?? parsed.from?.address;
  const to = envelope.to ?? parsed.to?.find((a) => a.address)?.address;
  if (!from) throw new InboundEmailError("No sender: set x-cairn-mail-from or a From header");
  if (!to) throw new InboundEmailError("No recipient: set x-cairn-rcpt-to or a To header");
  if (!ADDRESS.test(from))
    throw new InboundEmailError(`The sender is not an address: ${JSON.stringify(from)}`);
  if (!ADDRESS.test(to))
    throw new InboundEmailError(`The recipient is not an address: ${JSON.stringify(to)}`);
  const headers = new Headers();
  for (const h of parsed.headers) {
    try {
      headers.append(h.key, h.value);
    } catch {
      // a header value Headers refuses (control characters) is left out
    }
  }
  let rejected: string | undefined;
  return {
    from,
    to,
    headers,
    raw,
    rawSize: raw.byteLength,
    get rejected() {
      return rejected;
    },
    setReject(reason: string) {
      rejected = reason;
    },
    async forward(rcptTo: string, extra?: Headers) {
      let bytes: Uint8Array | string = raw;
      if (extra) {
        const lines = [...extra].map(([k, v]) => `${k}: ${v}\r\n`).join("");
        bytes = Buffer.concat([Buffer.from(lines), Buffer.from(raw)]);
      }
      await transport.send({ from: to, to: rcptTo, raw: bytes });
    },
    async reply(message: unknown) {
      const m = message as Partial<OutboundEmail> | undefined;
      if (!m || typeof m.from !== "string" || m.raw === undefined)
        throw new TypeError("reply: the message needs from and raw");
      await transport.send({ from: m.from, to: typeof m.to === "string" ? m.to : from, raw: m.raw });
    },
  };
}
