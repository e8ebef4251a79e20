import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "@cairn/core";
import { type RemoteLogLine, RemoteWorkers, type RemoteWorkflow } from "@cairn/runtime";
import { createApi, type RunningServer, startServer } from "@cairn/server";
import { type Cairn, createCairn } from "cairnjs";

export interface PyServer {
  url: string;
  cairn: Cairn;
  workers: RemoteWorkers;
  logs: RemoteLogLine[];
  dbPath: string;
  close(): Promise<void>;
}

export function tempDb(): string {
  return join(mkdtempSync(join(tmpdir(), "cairn-py-")), "cairn.db");
}

/** A real Cairn on a SQLite file with remote workflows, served over HTTP on a free port. */
export async function startPyServer(options: {
  workflows: RemoteWorkflow[];
  /** Cron expressions by workflow name (wrangler's `workflows[].schedules`). */
  schedules?: Record<string, string[]>;
  dbPath?: string;
  leaseMs?: number;
  clock?: Clock;
  hotWaitThreshold?: string;
  fetch?: boolean;
  port?: number;
  onRequest?: (info: { method: string; path: string; status: number }) => void;
}): Promise<PyServer> {
  const dbPath = options.dbPath ?? tempDb();
  const logs: RemoteLogLine[] = [];
  const workers = new RemoteWorkers({
    workflows: options.workflows,
    leaseMs: options.leaseMs ?? 30_000,
    log: (l) => logs.push(l),
  });
  const cairn = await createCairn({
    store: dbPath,
    workflows: workers.definitions().map((d) => ({
      ...d,
      binding: d.binding ?? d.name.toUpperCase(),
      ...(options.schedules?.[d.name] ? { schedules: options.schedules[d.name] } : {}),
    })),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.hotWaitThreshold ? { hotWaitThreshold: options.hotWaitThreshold } : {}),
    log: () => {},
  });
  workers.attach(cairn.runtime);
  const app = createApi({ runtime: cairn.runtime, workers });
  const server: RunningServer = await startServer({
    app,
    port: options.port ?? 0,
    ...(options.fetch ? { fetch: (r: Request) => workers.fetch(r) } : {}),
    ...(options.onRequest ? { onRequest: options.onRequest } : {}),
  });
  return {
    url: server.url,
    cairn,
    workers,
    logs,
    dbPath,
    async close() {
      workers.close();
      await server.close();
      await cairn.close();
    },
  };
}

/** Polls `check` until it holds (no timing assertion: gives up after `tries`). */
export async function until<T>(
  check: () => Promise<T | undefined> | T | undefined,
  tries = 2000,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition not reached");
}
