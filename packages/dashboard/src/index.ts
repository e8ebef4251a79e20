import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Absolute path of the dashboard's built assets (`index.html` and `assets/`), produced by this
 * package's `build` script (run by the repository's `npm install`). Serve it with
 * `createApi({ runtime, dashboard: { dir: dashboardDir } })`, which mounts it at `/_cairn/`.
 *
 * The same path is right from `src/` (tests, which load sources) and from `dist/`.
 */
export const dashboardDir: string = fileURLToPath(new URL("../dist/app/", import.meta.url));

/** The path the server mounts the dashboard at. */
export const DASHBOARD_PATH = "/_cairn/";

/** Whether the dashboard was built (`npm run build -w @cairn/dashboard`). */
export function dashboardBuilt(dir: string = dashboardDir): boolean {
  return existsSync(`${dir}/index.html`);
}
