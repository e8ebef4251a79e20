/**
 * Durable Objects shared by workers on PostgreSQL (SPEC §13.7): one worker holds an object at a
 * time; another takes it over with its data once the first lets it go; alarms of objects nobody
 * holds fire on a worker that is still up.
 */

import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { routeAgentRequest } from "@cairn/agents";
import { listAgents } from "@cairn/agents/operate";
import { upgradeListener } from "@cairn/objects";
import { AgentClient } from "agents/client";
import { type Cairn, type CairnOptions, createCairn, DurableObject } from "cairnjs";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket as WsClient } from "ws";
import { TestStateAgent } from "../agents/agents.ts";
import { postgresUrl, Scene, sleep } from "./harness.ts";

const base = postgresUrl("the Durable Objects scale-out test");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

/** A worker of this test's scene: its own objects directory, named `name` in leases, `env.WORKER`. */
function worker(name: string, options: Omit<CairnOptions, "store">): Promise<Cairn> {
  return createCairn({
    store: scene!.url,
    objectsDir: join(scene!.dir, name),
    workerId: name,
    ...options,
    env: { WORKER: name, ...options.env },
  });
}

class Counter extends DurableObject {
  add(n: number): number {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS counts (k TEXT PRIMARY KEY, n INTEGER)");
    // A table without a primary key too: its rows reach the next worker through snapshots.
    sql.exec("CREATE TABLE IF NOT EXISTS journal (line TEXT)");
    sql.exec("INSERT INTO journal VALUES (?)", `add ${n}`);
    sql.exec("INSERT INTO counts VALUES ('n', ?) ON CONFLICT (k) DO UPDATE SET n = n + excluded.n", n);
    return this.read().n;
  }
  read(): { n: number; journal: string[]; kv: unknown } {
    const sql = this.ctx.storage.sql;
    return {
      n: Number(sql.exec("SELECT n FROM counts").one().n),
      journal: sql
        .exec("SELECT line FROM journal ORDER BY rowid")
        .toArray()
        .map((r) => String(r.line)),
      kv: this.ctx.storage.kv.get("alarmed") ?? null,
    };
  }
  async wakeIn(ms: number): Promise<void> {
    await this.ctx.storage.setAlarm(Date.now() + ms);
  }
  async alarm(): Promise<void> {
    this.add(100);
    this.ctx.storage.kv.put("alarmed", true);
  }
}

describe.skipIf(!base)("Durable Objects on PostgreSQL, shared by workers", () => {
  it("one worker holds an object; the next takes it over with its data, and a free object's alarm fires on a worker still up", async () => {
    scene = new Scene(base!);
    const open = (name: string) =>
      worker(name, { objects: [{ binding: "COUNTER", class: Counter }], objectLeaseMs: 300 });
    const a = await open("a");
    const b = await open("b");
    try {
      const onA = (a.env as any).COUNTER.getByName("c");
      const onB = (b.env as any).COUNTER.getByName("c");
      expect(onA.id.toString()).toBe(onB.id.toString());
      expect(await onA.add(2)).toBe(2);
      expect(await onA.add(3)).toBe(5);
      // a holds it: b's calls are forwarded to a, which runs them (b loads nothing).
      expect(await onB.add(0)).toBe(5);
      expect(a.objects.listNamespaces()[0]).toMatchObject({ loaded: 1 });
      expect(b.objects.listNamespaces()[0]).toMatchObject({ loaded: 0 });

      // Unloaded (here: a closes), the object is free at once and b has everything a shipped.
      await a.close();
      expect(await onB.read()).toEqual({ n: 5, journal: ["add 2", "add 3", "add 0"], kv: null });
      expect(b.objects.listNamespaces()[0]).toMatchObject({ loaded: 1 });
      expect(await onB.add(1)).toBe(6);
      await onB.wakeIn(200);
    } finally {
      await a.close();
      await b.close();
    }
    // b is gone with the alarm set; a worker that is up fires it, with the data b wrote.
    const c = await open("c");
    try {
      const onC = (c.env as any).COUNTER.getByName("c");
      for (let i = 0; ; i++) {
        const rows = await scene.query<{ alarm_at: string | null }>("SELECT alarm_at FROM $S.do_objects");
        if (rows[0]?.alarm_at === null) break;
        if (i > 200) throw new Error("the alarm never ran");
        await sleep(50);
      }
      expect(await onC.read()).toEqual({
        n: 106,
        journal: ["add 2", "add 3", "add 0", "add 1", "add 100"],
        kv: true,
      });
    } finally {
      await c.close();
    }
  }, 60_000);

  it("forwards fetch, WebSocket upgrades and errors to the worker holding the object, and refuses requests without the workers' secret", async () => {
    scene = new Scene(base!);
    const open = (name: string) => worker(name, { objects: [{ binding: "ROOM", class: Room }] });
    const a = await open("a");
    const b = await open("b");
    try {
      const onA = (a.env as any).ROOM.getByName("r");
      const onB = (b.env as any).ROOM.getByName("r");
      expect(await onA.where()).toBe("a");
      expect(await onB.where()).toBe("a");

      // fetch: method, URL, headers (Authorization too: the forwarding's own secret is elsewhere),
      // body, status and response headers as the object gave them.
      const res = await onB.fetch("http://room.example/things?x=1", {
        method: "PUT",
        headers: { authorization: "Bearer mine", "x-thing": "1" },
        body: "payload",
      });
      expect(res.status).toBe(201);
      expect(res.headers.get("x-room")).toBe("a");
      expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
      expect(await res.json()).toEqual({
        method: "PUT",
        url: "http://room.example/things?x=1",
        auth: "Bearer mine",
        thing: "1",
        body: "payload",
        worker: "a",
      });

      // Errors keep their class, message and code.
      const err = await onB.boom().catch((e: Error) => e);
      expect(err).toBeInstanceOf(RangeError);
      expect(err).toMatchObject({ message: "too far", code: "room.boom" });
      await expect(onB.fetch("http://room.example/throw")).rejects.toThrow(/^the room is on fire$/);

      // A WebSocket through b ends at a's object (accepted there, hibernatable).
      const up = await onB.fetch("http://room.example/ws", { headers: { upgrade: "websocket" } });
      expect(up.status).toBe(101);
      const ws = up.webSocket;
      const got: string[] = [];
      const two = new Promise<void>((resolve) =>
        ws.addEventListener("message", (e: MessageEvent) => {
          got.push(String(e.data));
          if (got.length === 2) resolve();
        }),
      );
      ws.accept();
      ws.send("hi");
      ws.send("there");
      await two;
      expect(got).toEqual(["hi from a (1 socket)", "there from a (1 socket)"]);
      // Closing it here reaches the object there.
      expect(await onB.sockets()).toBe(1);
      ws.close(4000, "bye");
      for (let i = 0; (await onB.sockets()) > 0; i++) {
        if (i > 100) throw new Error("the close never reached the object");
        await sleep(20);
      }
      expect(await onB.closes()).toEqual(["4000 bye"]);

      // The door itself: no secret, or a wrong one, gets nothing.
      const url = await a.objects.forwardUrl!;
      const hex = onA.id.toString();
      const bare = await fetch(`${url}/objects/Room/${hex}/rpc/where`, { method: "POST", body: "x" });
      expect(bare.status).toBe(401);
      const wrong = await fetch(`${url}/objects/Room/${hex}/rpc/where`, {
        method: "POST",
        headers: { "x-cairn-forward-secret": "00".repeat(32) },
      });
      expect(wrong.status).toBe(401);
      const refused = await new Promise<number>((resolve, reject) => {
        const c = new WsClient(`${url.replace("http", "ws")}/objects/Room/${hex}/fetch`);
        c.once("unexpected-response", (_q, r) => resolve(r.statusCode ?? 0));
        c.once("open", () => reject(new Error("a WebSocket without the secret was accepted")));
        c.once("error", () => {});
      });
      expect(refused).toBe(401);
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);

  it("waits for the lease of a holder that cannot be reached, then takes the object; without forwarding, says so", async () => {
    scene = new Scene(base!);
    const b = await worker("b", { objects: [{ binding: "ROOM", class: Room }], objectLeaseMs: 500 });
    const c = await worker("c", {
      objects: [{ binding: "ROOM", class: Room }],
      objectLeaseMs: 300,
      objectForward: false,
    });
    try {
      const onB = (b.env as any).ROOM.getByName("r");
      const hex = onB.id.toString();
      // A worker that died holding the object, its lease still running: nothing listens at its address.
      const hold = (until: number, url: string) =>
        scene!.query(
          `INSERT INTO $S.do_objects (class, object_id, owner, epoch, lease_until, owner_url)
           VALUES ('Room', $1, 'ghost', 1, $2, $3)`,
          [hex, until, url],
        );
      // A port nothing listens on.
      const port = await new Promise<number>((resolve) => {
        const probe = createServer().listen(0, "127.0.0.1", () => {
          const p = (probe.address() as AddressInfo).port;
          probe.close(() => resolve(p));
        });
      });
      await hold(Date.now() + 400, `http://127.0.0.1:${port}`);
      const started = Date.now();
      expect(await onB.where()).toBe("b");
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(b.objects.listNamespaces()[0]).toMatchObject({ loaded: 1 });

      // c does not forward: while b holds the object (and renews), c's calls fail after twice its lease.
      await expect((c.env as any).ROOM.getByName("r").where()).rejects.toThrow(
        /Room [0-9a-f]{64} is held by worker b .*and this request could not be forwarded to it/,
      );
    } finally {
      await b.close();
      await c.close();
    }
  }, 60_000);

  it("the upstream agents client on either worker reaches the same agent: state syncs across both and calls run where it is held", async () => {
    scene = new Scene(base!);
    const open = (name: string) =>
      worker(name, { objects: [{ binding: "TestStateAgent", class: TestStateAgent }] });
    const a = await open("a");
    const b = await open("b");
    const servers = [await serveAgents(a.env as never), await serveAgents(b.env as never)];
    const clients: AgentClient<any, any>[] = [];
    try {
      const seen: { count: number }[][] = [[], []];
      for (const [i, s] of servers.entries()) {
        const c = new AgentClient<any, { count: number }>({
          host: s.host,
          agent: "TestStateAgent",
          name: "shared",
          onStateUpdate: (state: { count: number }) => seen[i]!.push(state),
        } as any);
        clients.push(c);
        await c.ready;
      }
      // The first connection (through a) loaded the agent on a; b's went there through b.
      expect(a.objects.listNamespaces()[0]).toMatchObject({ loaded: 1 });
      expect(b.objects.listNamespaces()[0]).toMatchObject({ loaded: 0 });
      expect(await clients[1]!.call("increment", [5])).toBe(5);
      expect(await clients[0]!.call("increment", [2])).toBe(7);
      // A client-sent state through b is broadcast to the client on a.
      clients[1]!.setState({ count: 40, items: [] } as never);
      for (let i = 0; !seen[0]!.some((st) => st.count === 40); i++) {
        if (i > 100) throw new Error(`the client on a never saw count 40: ${JSON.stringify(seen[0])}`);
        await sleep(20);
      }
      expect(seen[1]!.map((st) => st.count)).toContain(7);
      expect(b.objects.listNamespaces()[0]).toMatchObject({ loaded: 0 });

      // b's operations views (API, CLI, dashboard) show the agent a holds, read from the store.
      await b.objects.refreshViews();
      expect(b.objects.listNamespaces()[0]).toMatchObject({ objects: 1, loaded: 0 });
      await b.objects.refreshViews("TestStateAgent");
      expect(b.objects.listObjects("TestStateAgent")).toMatchObject([{ name: "shared", loaded: false }]);
      const [agent] = await listAgents(b.objects);
      expect(agent?.name).toBe("shared");
      expect(JSON.parse(String(agent?.state))).toEqual({ count: 40, items: [] });
      expect(b.objects.listNamespaces()[0]).toMatchObject({ loaded: 0 });
    } finally {
      for (const c of clients) c.close();
      for (const s of servers) await s.close();
      await a.close();
      await b.close();
    }
  }, 60_000);

  it("applies wrangler migrations once per store: a renamed class keeps its objects and ids on every worker, a deleted one loses them", async () => {
    scene = new Scene(base!);
    const v1 = { tag: "v1", new_sqlite_classes: ["Counter"] };
    const v2 = { tag: "v2", renamed_classes: [{ from: "Counter", to: "Tally" }] };
    const v3 = { tag: "v3", deleted_classes: ["Tally"], new_sqlite_classes: ["Room"] };
    const open = (name: string, migrations: object[], objects: object[]) =>
      worker(name, { objects: objects as never, migrations: migrations as never });
    // Two workers starting together apply v1 once.
    const [a, a2] = await Promise.all([
      open("a", [v1], [{ binding: "COUNTER", class: Counter }]),
      open("a2", [v1], [{ binding: "COUNTER", class: Counter }]),
    ]);
    const idBefore = (a.env as any).COUNTER.idFromName("c").toString();
    try {
      expect(await (a.env as any).COUNTER.getByName("c").add(7)).toBe(7);
    } finally {
      await a.close();
      await a2.close();
    }
    // b renames the class: it finds the object under the new name, with the same id and its data.
    const b = await open("b", [v1, v2], [{ binding: "TALLY", class: Counter, className: "Tally" }]);
    try {
      const tally = (b.env as any).TALLY.getByName("c");
      expect(tally.id.toString()).toBe(idBefore);
      expect((await tally.read()).n).toBe(7);
    } finally {
      await b.close();
    }
    expect(await scene.query("SELECT DISTINCT class FROM $S.do_objects")).toEqual([{ class: "Tally" }]);
    // c deletes it: nothing of it is left in the store.
    const c = await open("c", [v1, v2, v3], [{ binding: "ROOM", class: Room }]);
    await c.close();
    for (const table of ["do_objects", "do_changesets", "do_snapshots", "do_namespaces"])
      expect(await scene.query(`SELECT class FROM $S.${table} WHERE class IN ('Counter', 'Tally')`)).toEqual(
        [],
      );
    expect((await scene.query("SELECT tag FROM $S.do_migrations ORDER BY seq")).map((r) => r.tag)).toEqual([
      "v1",
      "v2",
      "v3",
    ]);
    // A configuration that rewrites what the store applied is refused, and changes nothing.
    await expect(open("d", [v1, v3], [{ binding: "ROOM", class: Room }])).rejects.toThrow(
      /this store has applied migration "v2", which the configuration no longer lists/,
    );
  }, 60_000);
});

/** Serves `/agents/*` of a Cairn's env over a real HTTP server (as `cairn start` does); its URL and close. */
async function serveAgents(env: Record<string, unknown>): Promise<{ host: string; close(): Promise<void> }> {
  const handle = async (request: Request) =>
    (await routeAgentRequest(request, env)) ?? new Response("Not found", { status: 404 });
  const server = createHttpServer(async (req, res) => {
    const response = await handle(
      new Request(`http://${req.headers.host}${req.url}`, { method: req.method }),
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  const connections = new Set<{ terminate(): void }>();
  server.on("upgrade", upgradeListener(handle, { connections }));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const c of connections) c.terminate();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

class Room extends DurableObject<{ WORKER: string }> {
  where(): string {
    return this.env.WORKER;
  }
  boom(): never {
    throw Object.assign(new RangeError("too far"), { code: "room.boom" });
  }
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.headers.get("upgrade") === "websocket") {
      const pair = new (globalThis as any).WebSocketPair();
      this.ctx.acceptWebSocket(pair[1]);
      return new Response(null, { status: 101, webSocket: pair[0] } as ResponseInit);
    }
    if (url.pathname === "/throw") throw new Error("the room is on fire");
    const headers = new Headers({ "x-room": this.env.WORKER });
    headers.append("set-cookie", "a=1");
    headers.append("set-cookie", "b=2");
    return Response.json(
      {
        method: request.method,
        url: request.url,
        auth: request.headers.get("authorization"),
        thing: request.headers.get("x-thing"),
        body: await request.text(),
        worker: this.env.WORKER,
      },
      { status: 201, headers },
    );
  }
  webSocketMessage(ws: any, message: string | ArrayBuffer): void {
    ws.send(`${String(message)} from ${this.env.WORKER} (${this.ctx.getWebSockets().length} socket)`);
  }
  webSocketClose(_ws: unknown, code: number, reason: string): void {
    this.ctx.storage.kv.put("closes", [...this.closes(), `${code} ${reason}`]);
  }
  sockets(): number {
    return this.ctx.getWebSockets().length;
  }
  closes(): string[] {
    return this.ctx.storage.kv.get<string[]>("closes") ?? [];
  }
}
