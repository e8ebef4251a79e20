/**
 * A Durable Objects process for the crash test: `node --conditions=source child.ts <dir>`.
 * Serves `GET /write?obj=<name>&n=<n>` (the object inserts row n and puts key n, then answers),
 * `GET /alarm?obj=<name>&in=<ms>` (sets an alarm) and `GET /read?obj=<name>` (rows and keys as
 * JSON). Prints one JSON line per event: `{"event":"ready","port"}`, `{"event":"alarm","obj"}`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createObjectHost, DurableObject } from "@cairn/objects";

const dir = process.argv[2]!;
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

class Log extends DurableObject {
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS rows (n INTEGER PRIMARY KEY)");
    if (url.pathname === "/write") {
      const n = Number(url.searchParams.get("n"));
      sql.exec("INSERT INTO rows (n) VALUES (?)", n);
      await this.ctx.storage.put(`k${n}`, n);
      return new Response(`ok ${n}`);
    }
    if (url.pathname === "/alarm") {
      await this.ctx.storage.put("name", url.searchParams.get("obj"));
      await this.ctx.storage.setAlarm(Date.now() + Number(url.searchParams.get("in")));
      return new Response("set");
    }
    const rows = sql
      .exec("SELECT n FROM rows ORDER BY n")
      .toArray()
      .map((r) => r.n);
    const keys = [...(await this.ctx.storage.list()).keys()];
    return Response.json({ rows, keys, alarmed: (await this.ctx.storage.get("alarmed")) ?? false });
  }
  async alarm(): Promise<void> {
    await this.ctx.storage.put("alarmed", true);
    await this.ctx.storage.sync();
    print({ event: "alarm", obj: await this.ctx.storage.get("name") });
  }
}

const host = createObjectHost({ dir, objects: [{ binding: "LOG", class: Log }] });
const ns = host.namespaces.LOG!;
const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  const response = await ns.getByName(url.searchParams.get("obj") ?? "a").fetch(`http://do${req.url}`);
  res.writeHead(response.status, { "content-type": "text/plain" });
  res.end(await response.text());
});
server.listen(0, "127.0.0.1", () => print({ event: "ready", port: (server.address() as AddressInfo).port }));
