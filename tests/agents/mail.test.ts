import { readdirSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import {
  Agent,
  type AgentEmail,
  computeAgentSignature,
  createAddressBasedEmailResolver,
  createSecureReplyEmailResolver,
  emlDirectoryTransport,
  type ForwardableEmailMessage,
  inboundEmail,
  type MailTransport,
  routeAgentEmail,
  sendEmailBinding,
  smtpTransport,
} from "@cairn/agents";
import { createCairn } from "@cairn/engine";
import { createApi, startServer } from "@cairn/server";
import PostalMime from "postal-mime";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, serve } from "./helpers.ts";

// Outbound mail (replyToEmail, sendEmail), inbound over POST /api/v1/email, and the signed round trip.

const SECRET = "reply-secret";
const received: { name: string; subject: string | null; secure: boolean | undefined; from: string }[] = [];

class Helpdesk extends Agent {
  override async onEmail(email: AgentEmail): Promise<void> {
    received.push({
      name: this.name,
      subject: email.headers.get("subject"),
      secure: email._secureRouted,
      from: email.from,
    });
    if (email.headers.get("subject")?.includes("no secret")) {
      await this.replyToEmail(email, { fromName: "Helpdesk", body: "unsigned" });
      return;
    }
    await this.replyToEmail(email, {
      fromName: "Helpdesk",
      body: `Ticket ${this.name} opened`,
      secret: SECRET,
    });
  }
  async announce(to: string): Promise<void> {
    await this.sendEmail({
      binding: "EMAIL",
      from: { name: "Helpdesk", address: "helpdesk@example.com" },
      to,
      subject: "News",
      text: "hello",
      secret: SECRET,
    });
  }
}

afterEach(async () => {
  await closeAll();
  received.length = 0;
});

/** A project's email() handler: signed replies back to their agent, else by address. */
function emailHandler(reasons: string[], noRoute: string[]) {
  const secure = createSecureReplyEmailResolver(SECRET, { onInvalidSignature: (_e, r) => reasons.push(r) });
  const byAddress = createAddressBasedEmailResolver("helpdesk");
  return (message: ForwardableEmailMessage, env: unknown) =>
    routeAgentEmail(message, env, {
      resolver: async (m, e) =>
        m.headers.has("x-agent-sig") || m.headers.has("x-agent-name") ? secure(m, e) : byAddress(m, e),
      onNoRoute: (m) => {
        noRoute.push(m.headers.get("subject") ?? "");
        m.setReject("no route");
      },
    });
}

const runtimes: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const c of runtimes.splice(0)) await c.close();
});

async function hosted() {
  const s = await serve([{ binding: "Helpdesk", class: Helpdesk }]);
  const mailDir = join(s.dir, "mail");
  const transport = emlDirectoryTransport(mailDir);
  const reasons: string[] = [];
  const noRoute: string[] = [];
  const handle = emailHandler(reasons, noRoute);
  // The API needs a runtime (its metrics count it); mail itself goes to the agents' host.
  const cairn = await createCairn({ store: ":memory:", workflows: [], worker: false });
  runtimes.push(cairn);
  const app = createApi({
    runtime: cairn.runtime,
    deliverEmail: async (raw, envelope) => {
      const message = await inboundEmail(raw, envelope, transport);
      await handle(message, s.env);
      return { rejected: message.rejected };
    },
  });
  const api = await startServer({ app, port: 0 });
  const post = (raw: string | Uint8Array, headers: Record<string, string> = {}) =>
    fetch(`${api.url}/api/v1/email`, {
      method: "POST",
      headers: { "content-type": "message/rfc822", ...headers },
      body: raw,
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const emls = () =>
    readdirSync(mailDir)
      .filter((f) => f.endsWith(".eml"))
      .sort()
      .map((f) => readFileSync(join(mailDir, f), "utf8"));
  return { s, api, post, emls, reasons, noRoute, mailDir, transport };
}

const first = (subject: string) =>
  `From: Alice <alice@example.org>\r\nTo: helpdesk+t-42@example.com\r\nSubject: ${subject}\r\nMessage-ID: <m1@example.org>\r\n\r\nMy printer is on fire.\r\n`;

/** A reply to `eml` (an agent's message) as the customer's client would send it: headers kept. */
function answer(eml: string, replace: Record<string, string> = {}): string {
  let text = eml;
  for (const [k, v] of Object.entries(replace))
    text = text.replace(new RegExp(`^${k}: .*$`, "mi"), `${k}: ${v}`);
  return text.replace(/^Subject: (.*)$/m, "Subject: Re: $1");
}

describe("mail round trip", () => {
  it("inbound mail → agent → signed reply as .eml → the reply sent back routes to the same agent", async () => {
    const h = await hosted();
    try {
      const r = await h.post(first("Help"), { "x-cairn-mail-from": "alice@example.org" });
      expect(r).toEqual({
        status: 200,
        body: { success: true, errors: [], messages: [], result: { delivered: true, rejected: null } },
      });
      expect(received).toEqual([{ name: "t-42", subject: "Help", secure: false, from: "alice@example.org" }]);
      const [eml] = h.emls();
      const parsed = await PostalMime.parse(eml!);
      const header = (k: string) => parsed.headers.find((x) => x.key === k)?.value;
      expect(parsed.from).toEqual({ name: "Helpdesk", address: "helpdesk+t-42@example.com" });
      expect(parsed.to?.[0]?.address).toBe("alice@example.org");
      expect(parsed.subject).toBe("Re: Help");
      expect(parsed.inReplyTo).toBe("<m1@example.org>");
      expect(parsed.text?.trim()).toBe("Ticket t-42 opened");
      expect(header("x-agent-name")).toBe("helpdesk");
      expect(header("x-agent-id")).toBe("t-42");
      const ts = header("x-agent-sig-ts")!;
      expect(header("x-agent-sig")).toBe(await computeAgentSignature(SECRET, "helpdesk", "t-42", ts));

      // Alice answers the reply: the signed headers route it back to helpdesk/t-42 (secure).
      const back = await h.post(answer(eml!, { From: "alice@example.org", To: "support@example.com" }));
      expect(back.body.result).toEqual({ delivered: true, rejected: null });
      expect(received[1]).toEqual({
        name: "t-42",
        subject: "Re: Re: Help",
        secure: true,
        from: "alice@example.org",
      });
      expect(h.reasons).toEqual([]);
      expect(h.emls()).toHaveLength(2);
    } finally {
      await h.api.close();
    }
  });

  it("a forged, a re-targeted, an expired, a future-dated and an unsigned reply are refused, each with its reason", async () => {
    const h = await hosted();
    try {
      await h.post(first("Help"));
      const [eml] = h.emls();
      const sig = (await PostalMime.parse(eml!)).headers.find((x) => x.key === "x-agent-sig")!.value;
      const forged = `${sig.slice(0, -4)}AAA=`;
      const old = String(Math.floor(Date.now() / 1000) - 31 * 24 * 3600);
      const future = String(Math.floor(Date.now() / 1000) + 3600);
      const cases: [string, Record<string, string>][] = [
        ["forged", { "X-Agent-Sig": forged }],
        ["other id", { "X-Agent-ID": "t-1" }],
        [
          "expired",
          {
            "X-Agent-Sig-Ts": old,
            "X-Agent-Sig": await computeAgentSignature(SECRET, "helpdesk", "t-42", old),
          },
        ],
        [
          "future",
          {
            "X-Agent-Sig-Ts": future,
            "X-Agent-Sig": await computeAgentSignature(SECRET, "helpdesk", "t-42", future),
          },
        ],
        ["malformed", { "X-Agent-Sig-Ts": "yesterday" }],
      ];
      for (const [, replace] of cases) {
        const r = await h.post(answer(eml!, { From: "mallory@example.net", ...replace }));
        expect(r.body.result).toEqual({ delivered: false, rejected: "no route" });
      }
      const unsigned = answer(eml!, { From: "mallory@example.net" }).replace(/^X-Agent-Sig: .*\r\n/im, "");
      expect((await h.post(unsigned)).body.result).toEqual({ delivered: false, rejected: "no route" });
      expect(h.reasons).toEqual([
        "invalid",
        "invalid",
        "expired",
        "invalid",
        "malformed_timestamp",
        "missing_headers",
      ]);
      expect(received.map((r) => r.subject)).toEqual(["Help"]);
      expect(h.emls()).toHaveLength(1);
    } finally {
      await h.api.close();
    }
  });

  it("a securely routed email makes replyToEmail throw without a secret", async () => {
    const h = await hosted();
    try {
      await h.post(first("Help"));
      const [eml] = h.emls();
      const r = await h.post(answer(eml!, { Subject: "no secret" }));
      expect(r.status).toBe(500);
      expect(received.map((x) => [x.subject, x.secure])).toEqual([
        ["Help", false],
        ["Re: no secret", true],
      ]);
      expect(h.emls()).toHaveLength(1);
    } finally {
      await h.api.close();
    }
  });

  it("POST /api/v1/email refuses what is not a deliverable rfc822 message", async () => {
    const h = await hosted();
    try {
      const json = await fetch(`${h.api.url}/api/v1/email`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(json.status).toBe(415);
      expect(((await json.json()) as any).errors[0]).toEqual({
        code: "unsupported_media_type",
        message: '(unsupported_media_type) Expected Content-Type: message/rfc822, got "application/json"',
      });
      const bad = await h.post(first("x"), { "x-cairn-rcpt-to": "not an address" });
      expect(bad.status).toBe(400);
      expect(bad.body.errors[0].message).toBe(
        '(body) x-cairn-rcpt-to is not an email address: "not an address"',
      );
      const empty = await h.post("");
      expect(empty.body.errors[0].message).toBe("(body) The message is empty");
      const noTo = await h.post("From: a@example.org\r\nSubject: s\r\n\r\nbody");
      expect(noTo.status).toBe(400);
      expect(noTo.body.errors[0].message).toBe("(body) No recipient: set x-cairn-rcpt-to or a To header");
      expect(received).toEqual([]);
      const bare = await createCairn({ store: ":memory:", workflows: [], worker: false });
      runtimes.push(bare);
      const none = await startServer({ app: createApi({ runtime: bare.runtime }), port: 0 });
      try {
        const r = await fetch(`${none.url}/api/v1/email`, {
          method: "POST",
          headers: { "content-type": "message/rfc822" },
          body: first("x"),
        });
        expect(r.status).toBe(404);
        expect(((await r.json()) as any).errors[0].message).toBe(
          "(not_found) The project has no email() handler",
        );
      } finally {
        await none.close();
      }
    } finally {
      await h.api.close();
    }
  });
});

describe("SMTP", () => {
  it("sendEmail through a send_email binding over SMTP reaches a real SMTP server, signed", async () => {
    const got: { from: string; to: string[]; raw: string }[] = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          got.push({
            from: (session.envelope.mailFrom as { address: string }).address,
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString("utf8"),
          });
          callback();
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.server.address() as AddressInfo).port;
    const transport: MailTransport = smtpTransport(`smtp://127.0.0.1:${port}`);
    try {
      const s = await serve([{ binding: "Helpdesk", class: Helpdesk }]);
      s.env.EMAIL = sendEmailBinding(transport);
      const stub = s.env.Helpdesk.get(s.env.Helpdesk.idFromName("t-7"));
      await stub.announce("bob@example.org");
      expect(got).toHaveLength(1);
      expect(got[0]!.from).toBe("helpdesk@example.com");
      expect(got[0]!.to).toEqual(["bob@example.org"]);
      const parsed = await PostalMime.parse(got[0]!.raw);
      const header = (k: string) => parsed.headers.find((x) => x.key === k)?.value;
      expect(parsed.subject).toBe("News");
      expect(header("x-agent-name")).toBe("helpdesk");
      const ts = header("x-agent-sig-ts")!;
      expect(header("x-agent-sig")).toBe(
        await computeAgentSignature(SECRET, "helpdesk", header("x-agent-id")!, ts),
      );
    } finally {
      transport.close?.();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("smtpTransport refuses a URL that is not smtp", () => {
    expect(() => smtpTransport("http://example.com")).toThrow(
      "CAIRN_SMTP_URL must start with smtp:// or smtps://, not http://",
    );
    expect(() => smtpTransport("nope")).toThrow('CAIRN_SMTP_URL is not a URL: "nope"');
  });
});
