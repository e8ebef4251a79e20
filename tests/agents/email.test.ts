import {
  createAddressBasedEmailResolver,
  createCatchAllEmailResolver,
  createHeaderBasedEmailResolver,
  createSecureReplyEmailResolver,
  type ForwardableEmailMessage,
  isAutoReplyEmail,
  routeAgentEmail,
  signAgentHeaders,
} from "@cairn/agents";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MailAgent, mail } from "./agents.ts";
import { closeAll, serve } from "./helpers.ts";

// Mirrors upstream's email-routing.test.ts and email-headers.test.ts.

afterEach(async () => {
  await closeAll();
  mail.length = 0;
  vi.useRealTimers();
});

function message(
  to: string,
  headers: Record<string, string> = {},
  body = "hello",
): ForwardableEmailMessage & { rejected?: string } {
  const raw = new TextEncoder().encode(`Subject: ${headers.subject ?? ""}\r\n\r\n${body}`);
  const m: ForwardableEmailMessage & { rejected?: string } = {
    from: "sender@example.com",
    to,
    headers: new Headers(headers),
    raw,
    rawSize: raw.byteLength,
    setReject: (reason: string) => {
      m.rejected = reason;
    },
  };
  return m;
}

describe("signed headers", () => {
  it("signAgentHeaders refuses empty inputs and colons", async () => {
    await expect(signAgentHeaders("", "a", "b")).rejects.toThrow(
      "secret is required for signing agent headers",
    );
    await expect(signAgentHeaders("s", "", "b")).rejects.toThrow(
      "agentName is required for signing agent headers",
    );
    await expect(signAgentHeaders("s", "a", "")).rejects.toThrow(
      "agentId is required for signing agent headers",
    );
    await expect(signAgentHeaders("s", "a:b", "c")).rejects.toThrow("agentName cannot contain colons");
    await expect(signAgentHeaders("s", "a", "b:c")).rejects.toThrow("agentId cannot contain colons");
    const h = await signAgentHeaders("s", "mail-agent", "inbox");
    expect(Object.keys(h)).toEqual(["X-Agent-Name", "X-Agent-ID", "X-Agent-Sig", "X-Agent-Sig-Ts"]);
    expect(h["X-Agent-Sig"]).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });

  it("the secure resolver accepts a valid signature and names every failure reason", async () => {
    const reasons: string[] = [];
    const resolve = createSecureReplyEmailResolver("secret", {
      onInvalidSignature: (_e, r) => reasons.push(r),
    });
    const good = await signAgentHeaders("secret", "mail-agent", "inbox");
    expect(await resolve(message("x@y", good), {})).toEqual({
      agentName: "mail-agent",
      agentId: "inbox",
      _secureRouted: true,
    });
    expect(await resolve(message("x@y", {}), {})).toBeNull();
    expect(await resolve(message("x@y", { ...good, "X-Agent-Sig-Ts": "soon" }), {})).toBeNull();
    const wrong = await signAgentHeaders("other-secret", "mail-agent", "inbox");
    expect(await resolve(message("x@y", wrong), {})).toBeNull();
    expect(await resolve(message("x@y", { ...good, "X-Agent-ID": "someone-else" }), {})).toBeNull();
    expect(await resolve(message("x@y", { ...good, "X-Agent-Name": "other-agent" }), {})).toBeNull();
    expect(reasons).toEqual(["missing_headers", "malformed_timestamp", "invalid", "invalid", "invalid"]);
  });

  it("rejects expired signatures and timestamps more than 5 minutes ahead; allows small skew", async () => {
    const reasons: string[] = [];
    const resolve = createSecureReplyEmailResolver("secret", {
      maxAge: 3600,
      onInvalidSignature: (_e, r) => reasons.push(r),
    });
    vi.useFakeTimers({ toFake: ["Date"] });
    const now = Date.now();
    vi.setSystemTime(now - 7200_000);
    const old = await signAgentHeaders("secret", "a", "b");
    vi.setSystemTime(now + 600_000);
    const future = await signAgentHeaders("secret", "a", "b");
    vi.setSystemTime(now + 120_000);
    const skewed = await signAgentHeaders("secret", "a", "b");
    vi.setSystemTime(now);
    expect(await resolve(message("x@y", old), {})).toBeNull();
    expect(await resolve(message("x@y", future), {})).toBeNull();
    expect(await resolve(message("x@y", skewed), {})).toMatchObject({ agentName: "a" });
    expect(reasons).toEqual(["expired", "invalid"]);
  });

  it("address, catch-all and header resolvers; auto-reply detection", async () => {
    const byAddress = createAddressBasedEmailResolver("support");
    expect(await byAddress(message("mail-agent+inbox@example.com"), {})).toEqual({
      agentName: "mail-agent",
      agentId: "inbox",
    });
    expect(await byAddress(message("alice@example.com"), {})).toEqual({
      agentName: "support",
      agentId: "alice",
    });
    expect(await byAddress(message(`${"x".repeat(65)}@example.com`), {})).toBeNull();
    expect(await createCatchAllEmailResolver("a", "b")(message("z@z"), {})).toEqual({
      agentName: "a",
      agentId: "b",
    });
    expect(() => createHeaderBasedEmailResolver()).toThrow(
      /has been removed due to a security vulnerability/,
    );
    expect(isAutoReplyEmail([{ key: "Auto-Submitted", value: "auto-replied" }])).toBe(true);
    expect(isAutoReplyEmail([{ key: "Auto-Submitted", value: "no" }])).toBe(false);
    expect(isAutoReplyEmail([{ key: "Precedence", value: "bulk" }])).toBe(true);
  });
});

describe("routeAgentEmail", () => {
  it("delivers to the agent (binding matched as written, kebab or lower case); rejections apply; unknown agents throw", async () => {
    const s = await serve([{ binding: "MailAgent", class: MailAgent }]);
    const resolver = createAddressBasedEmailResolver("MailAgent");
    await routeAgentEmail(message("mail-agent+inbox@example.com", { subject: "hi" }, "body text"), s.env, {
      resolver,
    });
    await routeAgentEmail(message("alice@example.com", { subject: "hey" }), s.env, { resolver });
    const spam = message("mailagent+inbox@example.com", { subject: "spam" });
    await routeAgentEmail(spam, s.env, { resolver });
    expect(spam.rejected).toBe("no spam");
    expect(mail.map((m: any) => [m.name, m.subject, m.secure, m.inContext])).toEqual([
      ["inbox", "hi", false, true],
      ["alice", "hey", false, true],
      ["inbox", "spam", false, true],
    ]);
    expect((mail[0] as any).raw).toContain("body text");
    await expect(routeAgentEmail(message("nobody+x@example.com"), s.env, { resolver })).rejects.toThrow(
      "Agent namespace 'nobody' not found in environment. Available agents: MailAgent",
    );
    const dropped: string[] = [];
    await routeAgentEmail(message("x@y"), s.env, {
      resolver: () => null,
      onNoRoute: (e) => void dropped.push(e.to),
    });
    expect(dropped).toEqual(["x@y"]);
    const secure = createSecureReplyEmailResolver("k");
    await routeAgentEmail(
      message("r@y", { ...(await signAgentHeaders("k", "MailAgent", "thread-1")), subject: "re" }),
      s.env,
      {
        resolver: secure,
      },
    );
    expect(mail.at(-1)).toMatchObject({ name: "thread-1", secure: true });
  });
});
