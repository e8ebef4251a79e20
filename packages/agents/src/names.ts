/** Upstream's kebab-casing of class and binding names: `MyAgent` → `my-agent`, `MY_AGENT` → `my-agent`. */
export function camelCaseToKebabCase(str: string): string {
  if (str === str.toUpperCase() && str !== str.toLowerCase()) return str.toLowerCase().replace(/_/g, "-");
  let kebab = str.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  kebab = kebab.startsWith("-") ? kebab.slice(1) : kebab;
  return kebab.replace(/_/g, "-").replace(/-$/, "");
}

/** The longest agent name Cairn accepts (SPEC §13.9). */
export const MAX_AGENT_NAME_LENGTH = 256;
/** The largest state an agent keeps, as JSON (SPEC §13.7). */
export const MAX_STATE_BYTES = 1024 * 1024;
