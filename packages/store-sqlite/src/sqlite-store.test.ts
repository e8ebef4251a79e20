import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storeConformance } from "@cairn/store/conformance";
import { afterAll } from "vitest";
import { openSqliteStore } from "./sqlite-store.ts";

storeConformance("sqlite (memory)", () => openSqliteStore({ path: ":memory:" }));

// A real file in WAL mode, a new one per test, which also runs the close-and-reopen tests.
const dir = mkdtempSync(join(tmpdir(), "cairn-store-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
let path = "";
storeConformance(
  "sqlite (file)",
  () => openSqliteStore({ path: (path = join(dir, `store-${++files}`, "cairn.db")) }),
  { reopen: () => openSqliteStore({ path }) },
);
