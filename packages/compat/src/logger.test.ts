import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

describe("createLogger", () => {
  it("writes readable lines: a mark for warnings and errors, fields, the error's own frames", () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    log.info("Cairn: ready");
    log.warn({ workflow: "w", step: "charge card" }, "attempt failed");
    const err = new Error("boom");
    err.stack =
      "Error: boom\n    at handler (/app/src/index.ts:3:9)\n    at run (/app/node_modules/x/y.js:1:1)\n    at node:internal/x:1:1";
    log.error({ err }, "GET /: the fetch handler threw");
    log.debug("hidden at info");
    expect(lines).toEqual([
      "Cairn: ready\n",
      '⚠ attempt failed  workflow=w step="charge card"\n',
      "✘ GET /: the fetch handler threw: boom\n    at handler (/app/src/index.ts:3:9)\n",
    ]);
  });

  it("writes JSON lines with level names, ISO times and errors with their stack", () => {
    const lines: string[] = [];
    const log = createLogger({ format: "json", level: "debug", write: (l) => lines.push(l) });
    log.debug({ method: "GET", path: "/", status: 200 }, "GET / 200");
    log.error({ err: new Error("boom") }, "failed");
    const [request, failure] = lines.map((l) => JSON.parse(l));
    expect(request).toEqual({
      level: "debug",
      time: expect.any(String),
      method: "GET",
      path: "/",
      status: 200,
      msg: "GET / 200",
    });
    expect(Number.isNaN(Date.parse(request.time))).toBe(false);
    expect(failure).toMatchObject({ level: "error", msg: "failed", err: { type: "Error", message: "boom" } });
    expect(failure.err.stack).toMatch(/^Error: boom\n/);
  });

  it("refuses unknown levels and formats", () => {
    expect(() => createLogger({ level: "loud" as never })).toThrow(
      'log level must be one of trace, debug, info, warn, error, fatal, silent, got "loud"',
    );
    expect(() => createLogger({ format: "xml" as never })).toThrow(
      'log format must be "text" or "json", got "xml"',
    );
  });
});
