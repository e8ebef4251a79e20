/** Forwarding requests to the worker holding an object (SPEC §13.7): the transport on its own. */
import { randomBytes } from "node:crypto";
import { serialize } from "node:v8";
import { afterEach, describe, expect, it } from "vitest";
import { checkForwardOptions, ForwardClient, ForwardServer, type ForwardTarget } from "./forward.ts";

const servers: ForwardServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const HEX = "ab".repeat(32);

/** A target that records what reached it and answers from it. */
function recorder(): ForwardTarget & { calls: unknown[] } {
  const calls: unknown[] = [];
  return {
    calls,
    async rpc(className, hex, method, args) {
      calls.push({ className, hex, method, args });
      if (method === "fail") throw Object.assign(new TypeError("bad thing"), { code: "x.bad" });
      if (method === "fn") return () => 1;
      return { echoed: args, at: new Date(0), big: 2n ** 70n };
    },
    async fetch(className, hex, request) {
      calls.push({ className, hex, method: request.method, url: request.url, body: await request.text() });
      return new Response("ok", { status: 202, headers: { "x-a": "1" } });
    },
  };
}

describe("forwarding transport", () => {
  it("carries RPC arguments, results and errors as structured clones, and requests whole", async () => {
    const secret = randomBytes(32);
    const target = recorder();
    const server = new ForwardServer(target, { secret });
    servers.push(server);
    const url = await server.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const client = new ForwardClient(secret);

    const out = await client.rpc(url, "Counter", HEX, "add", [1, new Map([["k", [2]]])]);
    expect(out).toEqual({ echoed: [1, new Map([["k", [2]]])], at: new Date(0), big: 2n ** 70n });
    const err = await client.rpc(url, "Counter", HEX, "fail", []).catch((e: Error) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(err).toMatchObject({ message: "bad thing", code: "x.bad" });
    // A result that cannot be cloned fails as it would locally.
    await expect(client.rpc(url, "Counter", HEX, "fn", [])).rejects.toMatchObject({ name: "DataCloneError" });

    const res = await client.fetch(
      url,
      "Counter",
      HEX,
      new Request("https://app.example/a/b?c=d", { method: "POST", body: "hello" }),
    );
    expect(res.status).toBe(202);
    expect(res.headers.get("x-a")).toBe("1");
    expect(await res.text()).toBe("ok");
    expect(target.calls.at(-1)).toEqual({
      className: "Counter",
      hex: HEX,
      method: "POST",
      url: "https://app.example/a/b?c=d",
      body: "hello",
    });
  });

  it("refuses requests without the secret, with a wrong one, to unknown routes and with bodies that are not arguments", async () => {
    const secret = randomBytes(32);
    const target = recorder();
    const server = new ForwardServer(target, { secret });
    servers.push(server);
    const url = await server.url;
    const rpc = `${url}/objects/Counter/${HEX}/rpc/add`;
    const good = { "x-cairn-forward-secret": Buffer.from(secret).toString("hex") };
    expect((await fetch(rpc, { method: "POST", body: serialize([1]) })).status).toBe(401);
    await expect(new ForwardClient(randomBytes(32)).rpc(url, "Counter", HEX, "add", [])).rejects.toThrow(
      /HTTP 401 the forwarding secret is missing or wrong/,
    );
    expect(
      (await fetch(`${url}/objects/Counter/not-an-id/rpc/add`, { method: "POST", headers: good })).status,
    ).toBe(404);
    const notArgs = await fetch(rpc, { method: "POST", headers: good, body: "plain text" });
    expect(notArgs.status).toBe(400);
    const notArray = await fetch(rpc, { method: "POST", headers: good, body: serialize({ a: 1 }) });
    expect([notArray.status, await notArray.text()]).toEqual([400, "the arguments must be an array\n"]);
    const noUrl = await fetch(`${url}/objects/Counter/${HEX}/fetch`, { headers: good });
    expect(noUrl.status).toBe(400);
    expect(target.calls).toEqual([]);
  });

  it("tells a worker that cannot be reached from other failures", async () => {
    const secret = randomBytes(32);
    const server = new ForwardServer(recorder(), { secret });
    const url = await server.url;
    await server.close();
    await expect(new ForwardClient(secret).rpc(url, "Counter", HEX, "add", [])).rejects.toMatchObject({
      name: "OwnerUnreachable",
    });
  });

  it("checks its options", () => {
    const check = (o: unknown) => () => checkForwardOptions(o, "objectForward");
    expect(check({})).not.toThrow();
    expect(check({ host: "0.0.0.0", port: 9100, advertise: "http://10.0.0.5:9100" })).not.toThrow();
    expect(check("yes")).toThrow("objectForward must be false or { host?, port?, advertise? }");
    expect(check({ port: 70000 })).toThrow("objectForward.port must be an integer from 0 to 65535");
    expect(check({ port: 1.5 })).toThrow("objectForward.port must be an integer");
    expect(check({ host: "" })).toThrow("objectForward.host must be a host name");
    expect(check({ advertise: "ftp://x" })).toThrow("objectForward.advertise must be the http:// URL");
    expect(check({ advertise: "http://x/?a=1" })).toThrow("objectForward.advertise must be");
    expect(check({ hots: "x" })).toThrow("objectForward: unknown field hots");
  });
});
