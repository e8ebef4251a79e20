// Run when the package is packed (`--clean` after): copies the files of Cloudflare's starter that the cloudflare
// template shares with the repository's copy (tests/cloudflare-fixtures) into templates/cloudflare-shared.
import { cpSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const list = JSON.parse(readFileSync(join(root, "templates/cloudflare/shared.json"), "utf8"));
const target = join(root, "templates/cloudflare-shared");
rmSync(target, { recursive: true, force: true });
if (process.argv.includes("--clean")) process.exit(0);
for (const file of list.files) {
  mkdirSync(dirname(join(target, file)), { recursive: true });
  cpSync(join(root, "../..", list.from, file), join(target, file));
}
