/**
 * What every command gets: where to write, the environment, the global options (`--url`,
 * `--token`, `--json`) and a client built from them. Commands never touch `process` directly, so
 * they run in-process in tests.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { type CairnClient, createClient } from "@cairn/client";
import { parseStoreLocation } from "@cairn/core";
import type { Command } from "commander";

/** The process around the CLI; tests pass their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Epoch ms, for durations of unfinished steps. */
  now(): number;
  /** Terminal width for describe output (default 80). */
  columns: number;
  /** Resolves when a long-running command (`dev`, `start`) should stop: SIGINT/SIGTERM. */
  untilStopped(): Promise<void>;
  /** Used by the client (tests point it at an in-process app). */
  fetch?: (request: Request) => Promise<Response> | Response;
  /** Render times in UTC (tests). */
  utc?: boolean;
  /** All of standard input, for `--params-file -` and `--payload-file -`. */
  readStdin?: () => Promise<string>;
}

export interface GlobalOptions {
  url: string;
  token?: string;
  json: boolean;
}

export const DEFAULT_URL = "http://localhost:8787";

/** Wrong use of the CLI: exit code 2, the message and a pointer to `--help`. */
export class UsageError extends Error {
  override name = "UsageError";
}

export class CliContext {
  readonly io: CliIo;
  /** The exit code a command chose (e.g. `cairn sandbox exec` exits with the command's). */
  exitCode: number | undefined;
  constructor(io: CliIo) {
    this.io = io;
  }

  globals(command: Command): GlobalOptions {
    const o = command.optsWithGlobals() as Partial<GlobalOptions>;
    return {
      url: o.url || this.io.env.CAIRN_URL || DEFAULT_URL,
      token: o.token || this.io.env.CAIRN_TOKEN || undefined,
      json: o.json === true,
    };
  }

  client(command: Command): CairnClient {
    const { url, token } = this.globals(command);
    try {
      return createClient({ url, token, fetch: this.io.fetch });
    } catch (e) {
      throw new UsageError(`--url: ${(e as Error).message}`);
    }
  }

  /** Prints a line for people, or `json` (pretty, one document) with `--json`. */
  print(command: Command, text: string, json: unknown): void {
    if (this.globals(command).json) this.io.stdout(`${JSON.stringify(json, null, 2)}\n`);
    else this.io.stdout(`${text}\n`);
  }

  /**
   * `latest` → the id of the most recently created instance of `workflow`; anything else as is.
   */
  async resolveId(
    client: CairnClient,
    workflow: string,
    id: string | undefined,
  ): Promise<{ id: string; latest: boolean }> {
    if (id !== undefined && id !== "latest") return { id, latest: false };
    const page = await client.listInstances(workflow, { per_page: 1, direction: "desc" });
    const newest = page.instances[0];
    if (!newest) throw new Error(`Workflow "${workflow}" has no instances, so there is no latest one`);
    return { id: newest.id, latest: true };
  }
}

/** Parses a JSON argument; a usage error (exit 2) names the option when it does not parse. */
export function parseJsonArgument(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${what} must be valid JSON: ${(e as Error).message}`);
  }
}

/** Parser for options that take a positive integer. */
export function positiveInt(what: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < 1)
      throw new UsageError(`${what} must be a positive integer, got "${value}"`);
    return Number(value);
  };
}

/** Parser for `--port`: 0 (any free port) to 65535. */
/**
 * `--host-allow a.example,b.example` (repeatable): host names the server answers besides loopback
 * names, added to those of `CAIRN_HOST_ALLOW`. Entries are checked by the server, which names a bad one.
 */
export function hostList(value: string, previous: string[] = []): string[] {
  return [...previous, ...splitHosts(value)];
}

/** A comma-separated list of host names, without empty entries. */
export function splitHosts(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((h) => h.trim())
    .filter((h) => h !== "");
}

export const HOST_ALLOW_HELP =
  "host names to answer besides localhost/127.0.0.1, comma-separated, e.g. cairn.example.com,*.example.com (also CAIRN_HOST_ALLOW)";

export function portNumber(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) > 65535)
    throw new UsageError(`--port must be a port number (0-65535), got "${value}"`);
  return Number(value);
}

/**
 * `--store` of `dev` and `start`: a SQLite path (resolved against `cwd`), `:memory:` or a
 * `postgres://` URL. Any other scheme is a usage error, before anything is created.
 */
export function storeArgument(value: string, cwd: string): string {
  let location: ReturnType<typeof parseStoreLocation>;
  try {
    location = parseStoreLocation(value);
  } catch (e) {
    throw new UsageError(`--store: ${(e as Error).message}`);
  }
  return location.kind === "sqlite" ? resolve(cwd, location.path) : value;
}

/**
 * The JSON of a `--params-file` / `--payload-file`: a file (relative to `cwd`), or standard input
 * for `-`. A file that cannot be read or is not JSON is a usage error naming the option.
 */
export async function readJsonFile(ctx: CliContext, path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    if (path === "-") {
      if (!ctx.io.readStdin) throw new Error("standard input is not available");
      text = await ctx.io.readStdin();
    } else text = await readFile(resolve(ctx.io.cwd, path), "utf8");
  } catch (e) {
    throw new UsageError(
      `${what}: cannot read ${path === "-" ? "standard input" : path}: ${(e as Error).message}`,
    );
  }
  return parseJsonArgument(text, `${what} (${path === "-" ? "standard input" : path})`);
}

/** `--sandbox-network` and `--sandbox-allow` of `dev`/`start` (options of `@cairn/sandbox`). */
export interface SandboxFlags {
  sandboxNetwork?: string;
  sandboxAllow?: string[];
}

export const SANDBOX_NETWORK_HELP = "sandboxes' network: none (default) or egress (only to --sandbox-allow)";
export const SANDBOX_ALLOW_HELP =
  "host:port destinations sandboxes may reach with --sandbox-network egress (comma-separated)";

/** Checks the sandbox flags and hands them to the project's sandboxes (`CAIRN_SANDBOX_*`). */
export function applySandboxFlags(flags: SandboxFlags, env: NodeJS.ProcessEnv = process.env): void {
  const network = flags.sandboxNetwork;
  if (network !== undefined && network !== "none" && network !== "egress")
    throw new UsageError(`--sandbox-network must be none or egress, got "${network}"`);
  for (const a of flags.sandboxAllow ?? [])
    if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5}|\*)$/.test(a))
      throw new UsageError(`--sandbox-allow: "${a}" is not host:port`);
  if (flags.sandboxAllow?.length && network !== "egress")
    throw new UsageError("--sandbox-allow needs --sandbox-network egress");
  if (network) env.CAIRN_SANDBOX_NETWORK = network;
  if (flags.sandboxAllow?.length) env.CAIRN_SANDBOX_ALLOW = flags.sandboxAllow.join(",");
}
