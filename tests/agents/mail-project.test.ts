/**
 * An Agents project with an `email()` handler under Cairn's project host, as `cairn dev` and
 * `cairn start` run it: mail posted to `POST /api/v1/email` reaches the agent, its signed reply is
 * written to `.cairn/mail/*.eml`, and that reply posted back is routed to the same agent.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostProject, hostProjectInWorker } from "@cairn/compat";
import { createApi, startServer } from "@cairn/server";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "./helpers.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const SERVER = `
import { Agent, routeAgentEmail, routeAgentRequest, createAddressBasedEmailResolver, createSecureReplyEmailResolver } from "agents";

export class Inbox extends Agent {
  initialState = { subjects: [] };
  async onEmail(email) {
    this.setState({ subjects: [...this.state.subjects, [email.headers.get("subject"), email._secureRouted === true]] });
    await this.replyToEmail(email, { fromName: "Inbox", body: "Got it", secret: this.env.EMAIL_SECRET });
  }
  async onRequest(request) {
    const to = new URL(request.url).searchParams.get("send");
    if (to) {
      try {
        await this.sendEmail({ binding: "EMAIL", from: "inbox@example.com", to, subject: "Update", text: "news" });
        return Response.json({ sent: true });
      } catch (e) {
        return Response.json({ sent: false, error: e.message });
      }
    }
    return Response.json(this.state);
  }
}

export default {
  fetch: async (request, env) => (await routeAgentRequest(request, env)) ?? new Response("Not found", { status: 404 }),
  async email(message, env) {
    const secure = createSecureReplyEmailResolver(env.EMAIL_SECRET);
    const byAddress = createAddressBasedEmailResolver("inbox");
    await routeAgentEmail(message, env, {
      resolver: async (m, e) => (await secure(m, e)) ?? (m.headers.has("x-agent-name") ? null : byAddress(m, e)),
      onNoRoute: (m) => m.setReject("unknown recipient"),
    });
  },
};
`;

const WRANGLER = {
  name: "mail-demo",
  main: "src/server.js",
  compatibility_date: "2026-06-11",
  vars: { EMAIL_SECRET: "s3cret" },
  durable_objects: { bindings: [{ name: "Inbox", class_name: "Inbox" }] },
  migrations: [{ tag: "v1", new_sqlite_classes: ["Inbox"] }],
  send_email: [{ name: "EMAIL", allowed_destination_addresses: ["dave@example.org"] }],
};

describe("an Agents project with an email() handler", () => {
  it("delivers POST /api/v1/email to email(), saves the signed reply under .cairn/mail, routes the answer back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-agents-mail-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src/server.js"), SERVER);
    writeFileSync(join(dir, "wrangler.jsonc"), JSON.stringify(WRANGLER));
    const hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    cleanup.push(() => hosted.close());
    const post = async (raw: string) => {
      const r = await fetch(`${hosted.url}/api/v1/email`, {
        method: "POST",
        headers: { "content-type": "message/rfc822" },
        body: raw,
      });
      return { status: r.status, result: ((await r.json()) as any).result };
    };
    const first = await post(
      "From: carol@example.org\r\nTo: inbox+c-1@example.com\r\nSubject: Hello\r\nMessage-ID: <a@example.org>\r\n\r\nHi\r\n",
    );
    expect(first).toEqual({ status: 200, result: { delivered: true, rejected: null } });
    const mailDir = join(dir, ".cairn", "mail");
    const files = readdirSync(mailDir).filter((f) => f.endsWith(".eml"));
    expect(files).toHaveLength(1);
    const eml = readFileSync(join(mailDir, files[0]!), "utf8");
    expect(eml).toMatch(/^X-Agent-Name: inbox$/m);
    expect(eml).toMatch(/^X-Agent-ID: c-1$/m);
    expect(eml).toMatch(/^X-Agent-Sig: [A-Za-z0-9+/]+=*$/m);
    expect(eml).toMatch(/^In-Reply-To: <a@example.org>$/m);

    // Carol answers: From/To swapped, the agent's headers kept.
    const answer = eml
      .replace(/^From: .*$/m, "From: carol@example.org")
      .replace(/^To: .*$/m, "To: replies@example.com")
      .replace(/^Subject: .*$/m, "Subject: Thanks");
    expect(await post(answer)).toEqual({ status: 200, result: { delivered: true, rejected: null } });
    const forged = answer.replace(/^X-Agent-ID: .*$/m, "X-Agent-ID: c-2");
    expect(await post(forged)).toEqual({
      status: 200,
      result: { delivered: false, rejected: "unknown recipient" },
    });

    const state = await (await fetch(`${hosted.url}/agents/inbox/c-1`)).json();
    expect(state).toEqual({
      subjects: [
        ["Hello", false],
        ["Thanks", true],
      ],
    });
    expect(readdirSync(mailDir).filter((f) => f.endsWith(".eml"))).toHaveLength(2);
  });

  it("gives env the send_email bindings of wrangler.jsonc, with their allowed destinations", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-agents-mail-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src/server.js"), SERVER);
    writeFileSync(join(dir, "wrangler.jsonc"), JSON.stringify(WRANGLER));
    const hosted = await hostProject(dir, { port: 0, startServer, createApi, log: () => {} });
    cleanup.push(() => hosted.close());
    const send = async (to: string) => (await fetch(`${hosted.url}/agents/inbox/c-9?send=${to}`)).json();
    expect(await send("dave@example.org")).toEqual({ sent: true });
    expect(await send("eve@example.org")).toEqual({
      sent: false,
      error: "send_email EMAIL: eve@example.org is not in allowed_destination_addresses (dave@example.org)",
    });
    const mailDir = join(dir, ".cairn", "mail");
    const files = readdirSync(mailDir).filter((f) => f.endsWith(".eml"));
    expect(files).toHaveLength(1);
    const eml = readFileSync(join(mailDir, files[0]!), "utf8");
    expect(eml).toMatch(/^To: dave@example.org$/m);
    expect(eml).toMatch(/^X-Agent-Name: inbox$/m);
    expect(eml).toMatch(/^X-Agent-ID: c-9$/m);
    expect(eml).not.toMatch(/^X-Agent-Sig:/m);
  });
});

// A Worker with email() and no Durable Objects: `hostProjectInWorker` (what `cairn dev` and
// `cairn start` use) runs its code in a worker thread, and mail posted to the API reaches it there.
const PLAIN_SERVER = `
import { WorkflowEntrypoint } from "cloudflare:workers";

export class Ticket extends WorkflowEntrypoint {
  async run(event, step) {
    return step.do("file", async () => ({ filed: event.payload.subject }));
  }
}

export default {
  fetch: () => new Response("plain worker"),
  async email(message, env) {
    if (!message.to.startsWith("support@")) return message.setReject("no such mailbox: " + message.to);
    const subject = message.headers.get("subject");
    await env.TICKETS.create({ id: "t-" + message.headers.get("message-id").replace(/[^a-z0-9]/gi, ""), params: { subject } });
    await env.EMAIL.send({
      from: "support@example.com",
      to: "team@example.com",
      raw: "From: support@example.com\\r\\nTo: team@example.com\\r\\nSubject: New ticket\\r\\n\\r\\n" + subject + "\\r\\n",
    });
    await message.forward("archive@example.com");
  },
};
`;

describe("a Worker with email() and no Durable Objects", () => {
  it("runs in the project's thread: POST /api/v1/email reaches email(), with env's workflows and send_email", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-plain-mail-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src/server.js"), PLAIN_SERVER);
    writeFileSync(
      join(dir, "wrangler.jsonc"),
      JSON.stringify({
        name: "plain-mail",
        main: "src/server.js",
        compatibility_date: "2026-06-11",
        workflows: [{ name: "tickets", binding: "TICKETS", class_name: "Ticket" }],
        send_email: [{ name: "EMAIL", destination_address: "team@example.com" }],
      }),
    );
    const hosted = await hostProjectInWorker(dir, { port: 0, startServer, createApi, log: () => {} });
    cleanup.push(() => hosted.close());
    // It is served from the worker thread, not in one thread as projects with Durable Objects are.
    // (One thread hands back the loaded project, module and all; the worker thread a summary.)
    expect(hosted.project).not.toHaveProperty("module");
    const post = async (raw: string, headers: Record<string, string> = {}) => {
      const r = await fetch(`${hosted.url}/api/v1/email`, {
        method: "POST",
        headers: { "content-type": "message/rfc822", ...headers },
        body: raw,
      });
      const body = (await r.json()) as any;
      return { status: r.status, result: body.result, errors: body.errors };
    };
    const delivered = await post(
      "From: carol@example.org\r\nTo: support@example.com\r\nSubject: Printer on fire\r\nMessage-ID: <m1@example.org>\r\n\r\nHelp\r\n",
    );
    expect(delivered).toEqual({ status: 200, result: { delivered: true, rejected: null }, errors: [] });

    // The workflow it created runs (in the project's thread) and is visible through the API.
    const output = await until(async () => {
      const r = (await (
        await fetch(`${hosted.url}/api/v1/workflows/tickets/instances/t-m1exampleorg`)
      ).json()) as any;
      return r.result?.status === "complete" ? r.result.output : undefined;
    }, "the ticket workflow");
    expect(output).toEqual({ filed: "Printer on fire" });

    // env.EMAIL (send_email) and message.forward wrote .eml files beside the store.
    const mailDir = join(dir, ".cairn", "mail");
    const emls = readdirSync(mailDir)
      .filter((f) => f.endsWith(".eml"))
      .map((f) => readFileSync(join(mailDir, f), "utf8"));
    expect(emls).toHaveLength(2);
    expect(emls.some((e) => /^Subject: New ticket$/m.test(e) && e.includes("Printer on fire"))).toBe(true);
    expect(emls.some((e) => /^Subject: Printer on fire$/m.test(e))).toBe(true);

    // setReject in the thread comes back as the API's answer; a message the host refuses is a 400.
    expect(
      await post("From: carol@example.org\r\nTo: sales@example.com\r\nSubject: Hi\r\n\r\nx\r\n"),
    ).toEqual({
      status: 200,
      result: { delivered: false, rejected: "no such mailbox: sales@example.com" },
      errors: [],
    });
    const refused = await post("not a message at all");
    expect(refused.status).toBe(400);
    expect(refused.errors).toHaveLength(1);
    expect(refused.errors[0]).toMatchObject({ code: "body" });
    expect(refused.errors[0].message).toMatch(/no headers|No sender/);
  });
});
