/**
 * HTTP bench: `npm run bench:http [-- --seconds 10] [-- --connections 50]`.
 * Starts the API in a server process and loads it from this process over loopback with autocannon:
 * (1) POST /api/v1/workflows/w/instances (create throughput; each instance runs a one-step workflow),
 * (2) GET /api/v1/workflows/w/instances/:id (detail latency) while creates continue in the background.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    connections: { type: "string", default: "50" },
    synchronous: { type: "string", default: "FULL" },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);

const dir = mkdtempSync(join(tmpdir(), "cairn-bench-http-"));
const child = spawn(
  process.execPath,
  [
    "--conditions=source",
    join(import.meta.dirname, "http", "server.ts"),
    join(dir, "c.db"),
    values.synchronous!,
  ],
  {
    stdio: ["ignore", "pipe", "inherit"],
  },
);
const url = await new Promise<string>((resolve, reject) => {
  child.stdout.setEncoding("utf8");
  child.stdout.once("data", (line: string) => resolve(JSON.parse(line).url));
  child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
});
const api = `${url}/api/v1/workflows/w/instances`;

function run(options: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(options, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

try {
  const create = await run({
    url: api,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ params: { n: 1 } }),
    connections,
    duration: seconds,
  });
  const created = await (
    await fetch(api, { method: "POST", body: "{}", headers: { "content-type": "application/json" } })
  ).json();
  const id = (created as { result: { id: string } }).result.id;
  const background = run({
    url: api,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
    connections: Math.max(1, Math.floor(connections / 5)),
    duration: seconds,
  });
  const get = await run({ url: `${api}/${id}`, connections, duration: seconds });
  await background;
  const line = (name: string, r: autocannon.Result) =>
    `${name.padEnd(46)} ${Math.round(r.requests.average).toString().padStart(7)} req/s   p50 ${r.latency.p50} ms   p99 ${r.latency.p99} ms   non-2xx ${r.non2xx}   errors ${r.errors}`;
  console.log(
    `Cairn HTTP bench: ${availableParallelism()} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, synchronous=${values.synchronous}, ${connections} connections, ${seconds} s each`,
  );
  console.log(line("POST …/instances (create, runs a 1-step workflow)", create));
  console.log(line("GET …/instances/:id (detail) under create load", get));
} finally {
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
