import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseEnv } from "node:util";

/** Secrets read for local development, as `wrangler dev` reads them. */
export interface DevSecrets {
  /** Name → value; strings, as in the file. */
  values: Record<string, string>;
  /** The files read, in the order they were applied (later ones win), relative to the project. */
  files: string[];
}

/**
 * Reads a project's local secrets like `wrangler dev`: `.dev.vars` (or `.dev.vars.<env>` when an
 * environment is selected and that file exists); when there is no `.dev.vars` file, the `.env`
 * files instead: `.env`, `.env.<env>`, `.env.local`, `.env.<env>.local`, later ones winning.
 * The format is dotenv (`KEY=value`, quotes, `#` comments), parsed by Node's `util.parseEnv`.
 *
 * ```ts
 * readDevSecrets("./my-worker", "staging"); // { values: { API_KEY: "…" }, files: [".dev.vars.staging"] }
 * ```
 */
export function readDevSecrets(dir: string, env?: string): DevSecrets {
  const devVars = [...(env ? [`.dev.vars.${env}`] : []), ".dev.vars"].find((f) => existsSync(join(dir, f)));
  const files = devVars
    ? [devVars]
    : [".env", ...(env ? [`.env.${env}`] : []), ".env.local", ...(env ? [`.env.${env}.local`] : [])].filter(
        (f) => existsSync(join(dir, f)),
      );
  const values: Record<string, string> = {};
  for (const file of files) {
    const parsed = parseEnv(readFileSync(join(dir, file), "utf8")) as Record<string, string>;
    Object.assign(values, parsed);
  }
  return { values, files };
}
