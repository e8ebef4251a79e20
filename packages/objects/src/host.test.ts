import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { deserialize } from "node:v8";
import { FakeClock } from "@cairn/core";
import { afterEach, describe, expect, it } from "vitest";
import { cleanDirs, tempDir, turns } from "../test/helpers.ts";
import { DurableObject } from "./durable-object.ts";
import { createObjectHost, type ObjectHost } from "./host.ts";
import { DurableObjectId } from "./ids.ts";

const constructed: string[] = [];
let release: () => void = () => {};

class Counter extends DurableObject<{ OTHER: any }> {
  constructor(ctx: any, env: any) {
    super(ctx, env);
    constructed.push(ctx.id.toString());
  }
  async increment(by = 1): Promise<number> {
    const n = ((await this.ctx.storage.get<number>("n")) ?? 0) + by;
    await this.ctx.storage.put("n", n);
    return n;
  }
  get value(): number {
    return 0;
  }
  read(): number {
    return this.ctx.storage.kv.get<number>("n") ?? 0;
  }
  echo(value: unknown): unknown {
    return value;
  }
  whoAmI(): { id: string; name: string | undefined } {
    return { id: this.ctx.id.toString(), name: this.ctx.id.name };
  }
  fail(kind: string): never {
    if (kind === "type") throw new TypeError("bad type");
    const e = new Error("custom failure");
    e.name = "CustomError";
    throw e;
  }
  returnsFunction(): unknown {
    return () => 1;
  }
  async viaOther(name: string): Promise<number> {
    return this.env.OTHER.getByName(name).increment(10);
  }
  async hold(): Promise<string> {
    await new Promise<void>((r) => (release = r));
    return "held";
  }
  async slow(ms: number): Promise<string> {
    await new Promise((r) => setTimeout(r, ms));
    return "slow";
  }
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/count") return new Response(String(await this.increment()));
    if (request.method === "POST") return new Response(`got ${await request.text()}`, { status: 201 });
    return new Response("not found", { status: 404 });
  }
}

class Gated extends DurableObject {
  log: string[] = [];
  constructor(ctx: any, env: any) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      await new Promise((r) => setTimeout(r, 30));
      this.log.push("init");
    });
  }
  first(): string[] {
    this.log.push("call");
    return this.log;
  }
}

let host: ObjectHost | undefined;
afterEach(async () => {
  await host?.close();
  host = undefined;
  constructed.length = 0;
  cleanDirs();
});

function open(options: { dir?: string; clock?: FakeClock; idleTimeoutMs?: number } = {}) {
  const env: Record<string, unknown> = {};
  host = createObjectHost({
    dir: options.dir ?? tempDir(),
    objects: [
      { binding: "COUNTER", class: Counter },
      { binding: "OTHER", class: Counter, className: "Other" },
      { binding: "GATED", class: Gated },
    ],
    env,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
  });
  return { host, env, ns: host.namespaces.COUNTER as any };
}

describe("ids", () => {
  it("idFromName is stable, toString is 64 hex, equals compares, idFromString round-trips", () => {
    const { ns } = open();
    const a = ns.idFromName("a");
    expect(a).toBeInstanceOf(DurableObjectId);
    expect(a.toString()).toMatch(/^[0-9a-f]{64}$/);
    expect(a.name).toBe("a");
    expect(ns.idFromName("a").equals(a)).toBe(true);
    expect(ns.idFromName("b").equals(a)).toBe(false);
    const parsed = ns.idFromString(a.toString());
    expect(parsed.equals(a)).toBe(true);
    expect(parsed.name).toBeUndefined();
    const u = ns.newUniqueId();
    expect(u.toString()).not.toBe(ns.newUniqueId().toString());
    expect(ns.idFromString(u.toString()).equals(u)).toBe(true);
  });

  it("idFromString refuses non-hex and ids of another namespace", () => {
    const { ns } = open();
    expect(() => ns.idFromString("xyz")).toThrow(
      new TypeError("Invalid Durable Object ID: must be 64 hex digits"),
    );
    expect(() => ns.idFromString("g".repeat(64))).toThrow(/must be 64 hex digits/);
    const other = host!.namespaces.OTHER!.idFromName("a").toString();
    expect(() => ns.idFromString(other)).toThrow("Durable Object ID is not valid for this namespace.");
  });

  it("ids stay the same after a restart of the host", async () => {
    const dir = tempDir();
    const first = open({ dir }).ns.idFromName("a").toString();
    await host!.close();
    expect(open({ dir }).ns.idFromName("a").toString()).toBe(first);
  });
});

describe("stubs", () => {
  it("call public methods by RPC with cloned arguments and results", async () => {
    const { ns } = open();
    const stub = ns.getByName("a");
    expect(stub.id.name).toBe("a");
    expect(stub.name).toBe("a");
    expect(await stub.increment()).toBe(1);
    expect(await stub.increment(2)).toBe(3);
    const arg = { d: new Date(5), list: [1, 2] };
    const back = await stub.echo(arg);
    expect(back).toEqual(arg);
    expect(back).not.toBe(arg);
    expect(await stub.whoAmI()).toEqual({ id: ns.idFromName("a").toString(), name: "a" });
    expect(await ns.get(ns.idFromName("a")).read()).toBe(3);
    expect("then" in stub).toBe(false);
    expect(await Promise.resolve(stub)).toBe(stub);
  });

  it("rethrow errors with their name and message; unknown methods fail like Cloudflare", async () => {
    const { ns } = open();
    const stub = ns.getByName("a");
    await expect(stub.fail("type")).rejects.toThrow(new TypeError("bad type"));
    const e = await stub.fail("custom").catch((x: Error) => x);
    expect(e.name).toBe("CustomError");
    expect(e.message).toBe("custom failure");
    await expect(stub.nope()).rejects.toThrow(
      new TypeError('The RPC receiver does not implement the method "nope".'),
    );
    await expect(stub.constructor()).rejects.toThrow(/does not implement the method "constructor"/);
    await expect(stub.toString()).rejects.toThrow(/does not implement the method "toString"/);
    await expect(stub.value()).rejects.toThrow(/does not implement the method "value"/);
    expect(await stub.increment()).toBe(1);
  });

  it("refuse unclonable arguments and results with a clear error", async () => {
    const { ns } = open();
    const stub = ns.getByName("a");
    const e = await stub.echo(() => 1).catch((x: Error) => x);
    expect(e.name).toBe("DataCloneError");
    expect(e.message).toMatch(/Could not serialize the arguments of echo\(\)/);
    await expect(stub.returnsFunction()).rejects.toThrow(
      /Could not serialize the result of returnsFunction\(\)/,
    );
    expect(await stub.increment()).toBe(1);
  });

  it("fetch delivers a Request and returns the object's Response", async () => {
    const { ns } = open();
    const stub = ns.getByName("a");
    const r = await stub.fetch("http://do/count");
    expect(await r.text()).toBe("1");
    const post = await stub.fetch(new Request("http://do/x", { method: "POST", body: "hello" }));
    expect(post.status).toBe(201);
    expect(await post.text()).toBe("got hello");
    expect((await stub.fetch("http://do/missing")).status).toBe(404);
  });

  it("objects call other objects through env", async () => {
    const { ns } = open();
    expect(await ns.getByName("a").viaOther("z")).toBe(10);
    expect(await host!.namespaces.OTHER!.getByName("z").read()).toBe(10);
    expect(await ns.getByName("z").read()).toBe(0);
  });
});

describe("concurrency", () => {
  it("50 concurrent RPC increments on one object give exactly 50", async () => {
    const { ns } = open();
    const stub = ns.getByName("hot");
    const results = await Promise.all(Array.from({ length: 50 }, () => stub.increment()));
    expect(new Set(results).size).toBe(50);
    expect(await stub.read()).toBe(50);
  });

  it("many objects run concurrently, each with one instance", async () => {
    const { ns } = open();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        Promise.all([1, 2, 3].map(() => ns.getByName(`o${i}`).increment())),
      ),
    );
    for (let i = 0; i < 20; i++) expect(await ns.getByName(`o${i}`).read()).toBe(3);
    expect(new Set(constructed).size).toBe(constructed.length);
  });

  it("events interleave only while an event waits on something other than storage", async () => {
    const { ns } = open();
    const stub = ns.getByName("a");
    const order: string[] = [];
    const slow = stub.slow(50).then((r: string) => order.push(r));
    const fast = stub.increment().then(() => order.push("fast"));
    await Promise.all([slow, fast]);
    expect(order).toEqual(["fast", "slow"]);
  });

  it("blockConcurrencyWhile in the constructor holds every event until it finishes", async () => {
    open();
    const gated = host!.namespaces.GATED!.getByName("g") as any;
    const logs = await Promise.all([gated.first(), gated.first()]);
    expect(logs[1]).toEqual(["init", "call", "call"]);
  });
});

describe("output gate", () => {
  const committed = (file: string) => {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      const row = db.prepare("SELECT value FROM _cf_KV WHERE key = 'n'").get() as
        | { value: Uint8Array }
        | undefined;
      return row ? deserialize(row.value) : undefined;
    } finally {
      db.close();
    }
  };

  it("a write made before an RPC result or a response is committed when the caller gets it", async () => {
    const dir = tempDir();
    const { ns } = open({ dir });
    const stub = ns.getByName("g");
    await stub.increment();
    const file = join(dir, "Counter", `${ns.idFromName("g")}.sqlite`);
    // Read from another connection the moment the result arrives (before any later turn of the loop).
    expect(await stub.increment(5).then(() => committed(file))).toBe(6);
    expect(await stub.fetch("http://do/count").then(() => committed(file))).toBe(7);
  });
});

describe("unload and reload", () => {
  it("unloads idle objects and constructs them again with their data", async () => {
    const clock = new FakeClock();
    const { ns } = open({ clock, idleTimeoutMs: 1000 });
    const stub = ns.getByName("a");
    await stub.increment();
    expect(host!.listNamespaces().find((n) => n.binding === "COUNTER")?.loaded).toBe(1);
    await clock.advance(999);
    expect(host!.listNamespaces().find((n) => n.binding === "COUNTER")?.loaded).toBe(1);
    await clock.advance(2);
    expect(host!.listNamespaces().find((n) => n.binding === "COUNTER")?.loaded).toBe(0);
    expect(constructed.length).toBe(1);
    expect(await stub.increment()).toBe(2);
    expect(constructed.length).toBe(2);
  });

  it("an event keeps the object loaded", async () => {
    const clock = new FakeClock();
    const { ns } = open({ clock, idleTimeoutMs: 10 });
    const stub = ns.getByName("a");
    await stub.increment();
    const held = stub.hold();
    await turns();
    await clock.advance(20);
    expect(host!.listNamespaces().find((n) => n.binding === "COUNTER")?.loaded).toBe(1);
    release();
    expect(await held).toBe("held");
    await clock.advance(20);
    expect(host!.listNamespaces().find((n) => n.binding === "COUNTER")?.loaded).toBe(0);
  });
});
