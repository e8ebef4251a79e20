import { pino } from "pino";

/** Cairn's logger: pino's, so levels, child loggers and JSON lines work as pino users expect. */
export type Logger = pino.Logger;

/** The levels `--log-level` accepts, from the most to the least verbose. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = "text" | "json";

export interface LoggerOptions {
  /** "text": readable lines (`cairn dev`, a terminal); "json": one JSON object per line. Default "text". */
  format?: LogFormat;
  /** Default "info". */
  level?: LogLevel;
  /** Where lines go (each ends with a newline). Default: stderr. */
  write?: (line: string) => void;
}

const LEVEL_NAMES: Record<number, string> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};
const TEXT_MARK: Record<string, string> = {
  trace: "·",
  debug: "·",
  info: "",
  warn: "⚠",
  error: "✘",
  fatal: "✘",
};
/** Fields every line has, not repeated in text lines. */
const OMITTED = new Set(["level", "time", "msg", "err", "pid", "hostname"]);

/**
 * Creates the logger for `cairn dev` and `cairn start`: readable lines (`✘ message key=value`) or
 * JSON lines (`{"level":"info","time":"…","msg":"…",…}`, levels as names, errors with their
 * stack under `err`), at `level` and above.
 *
 * ```ts
 * const log = createLogger({ format: "json", level: "debug" });
 * log.debug({ method: "GET", path: "/", status: 200, ms: 1.2 }, "request");
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const format = options.format ?? "text";
  const level = options.level ?? "info";
  if (!LOG_LEVELS.includes(level))
    throw new TypeError(`log level must be one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
  if (format !== "text" && format !== "json")
    throw new TypeError(`log format must be "text" or "json", got "${format}"`);
  const destination = {
    write(chunk: string) {
      if (format === "json") return write(chunk.endsWith("\n") ? chunk : `${chunk}\n`);
      write(`${textLine(JSON.parse(chunk) as Record<string, unknown>)}\n`);
    },
  };
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** One readable line: a mark for warnings and errors, the message, other fields as key=value. */
function textLine(record: Record<string, unknown>): string {
  const level =
    typeof record.level === "number" ? (LEVEL_NAMES[record.level] ?? "info") : String(record.level);
  const mark = TEXT_MARK[level] ?? "";
  const fields = Object.entries(record)
    .filter(([k]) => !OMITTED.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  const err = record.err as { message?: string; stack?: string } | undefined;
  const text = [record.msg, err?.message ? `: ${err.message}` : ""].join("");
  // The error's own frames, without Node's and installed packages' (a user's code is neither).
  const frames = (err?.stack ?? "")
    .split("\n")
    .filter((l) => /^\s+at /.test(l) && !l.includes("node:") && !l.includes("/node_modules/"))
    .map((l) => `    ${l.trim()}`);
  return `${mark ? `${mark} ` : ""}${text}${fields.length ? `  ${fields.join(" ")}` : ""}${frames.length ? `\n${frames.join("\n")}` : ""}`;
}
