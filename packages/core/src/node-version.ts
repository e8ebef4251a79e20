/** The oldest Node.js Cairn runs on: the first with `node:sqlite` without a flag. */
export const MIN_NODE_VERSION = "22.13.0";

/**
 * Why this Node.js cannot run Cairn, as one line naming the version found, the one needed and how
 * to get it; undefined when it can. `version` is `process.versions.node`.
 *
 * ```ts
 * nodeVersionProblem("20.19.0"); // "Cairn needs Node.js 22.13 or newer (for node:sqlite); this is Node.js 20.19.0. …"
 * nodeVersionProblem("24.1.0");  // undefined
 * ```
 */
export function nodeVersionProblem(version: string): string | undefined {
  const [major = 0, minor = 0] = version.split(".").map((n) => Number.parseInt(n, 10));
  if (major > 22 || (major === 22 && minor >= 13)) return undefined;
  return (
    `Cairn needs Node.js 22.13 or newer (for node:sqlite); this is Node.js ${version}. ` +
    "Install Node.js 24 from https://nodejs.org or with a version manager (nvm install 24), then run this again."
  );
}
