import { relative } from "node:path";
import { describeStoreLocation, parseStoreLocation } from "@cairn/core";
import type { LoadFailure } from "./load-error.ts";
import type { LoadedProject } from "./project.ts";

/** What a host loaded, for people: the `cairn dev` banner and `GET /api/v1/project`. */
export interface ProjectInfo {
  name?: string;
  /** The configuration file, relative to the project directory. */
  config?: string;
  /** The wrangler environment (`--env`). */
  env?: string;
  workflows: { binding: string; name: string; className?: string }[];
  /** Names of the plain variables (`vars`) in `env`. */
  vars: string[];
  /** Names of the secrets read from `.dev.vars` / `.env`, and the files they came from. */
  secrets: string[];
  secretsFiles: string[];
  /** The store, described (SQLite path, or PostgreSQL host and database; never a password). */
  store: string;
  warnings: string[];
  /** Why the project did not load (then its routes answer 500 and nothing else is set). */
  error?: LoadFailure;
}

export function projectInfo(project: LoadedProject, store: string): ProjectInfo {
  const secrets = new Set(project.secrets);
  return {
    name: project.name,
    config: relative(project.dir, project.configPath) || project.configPath,
    ...(project.env ? { env: project.env } : {}),
    workflows: project.workflows.map((w) => ({
      binding: w.binding,
      name: w.name,
      ...(w.className ? { className: w.className } : {}),
    })),
    vars: Object.keys(project.vars).filter((k) => !secrets.has(k)),
    secrets: project.secrets,
    secretsFiles: project.secretsFiles,
    store: describeStore(store),
    warnings: project.warnings,
  };
}

export function describeStore(store: string): string {
  try {
    return describeStoreLocation(parseStoreLocation(store));
  } catch {
    return store;
  }
}

/**
 * The lines `cairn dev` prints when a project is ready: what was loaded (workflows and bindings),
 * the store, the dashboard and the API.
 */
export function bannerLines(info: ProjectInfo, url: string): string[] {
  const lines = [
    `Cairn dev: ${info.name} (${info.workflows.map((w) => w.name).join(", ")}) ready on ${url}${info.env ? ` (env ${info.env})` : ""}`,
  ];
  for (const w of info.workflows)
    lines.push(`  workflow   env.${w.binding} → ${w.name}${w.className ? ` (class ${w.className})` : ""}`);
  if (info.vars.length) lines.push(`  vars       ${info.vars.map((v) => `env.${v}`).join(", ")}`);
  if (info.secrets.length)
    lines.push(
      `  secrets    ${info.secrets.map((v) => `env.${v}`).join(", ")} (from ${info.secretsFiles.join(", ")})`,
    );
  lines.push(`  store      ${info.store}`);
  lines.push(`  dashboard  ${url}/_cairn/`);
  lines.push(`  API        ${url}/api/v1`);
  return lines;
}

/** What a failed address binding means for people: one line, with what to do. */
export function listenErrorMessage(error: unknown, host: string, port: number): string | undefined {
  const code = (error as { code?: string } | undefined)?.code;
  if (code === "EADDRINUSE")
    return `Port ${port} on ${host} is already in use (another cairn dev or start?); pick another with --port <n> (--port 0 picks a free one)`;
  if (code === "EACCES")
    return `Not allowed to listen on port ${port} on ${host} (ports below 1024 need privileges); pick another with --port <n>`;
  if (code === "EADDRNOTAVAIL")
    return `Cannot listen on ${host}: no such address on this machine; pick another with --host`;
  return undefined;
}
