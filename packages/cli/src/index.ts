export {
  CliContext,
  type CliIo,
  DEFAULT_URL,
  type GlobalOptions,
  parseJsonArgument,
  portNumber,
  positiveInt,
  UsageError,
} from "./context.ts";
export { type DescribeOptions, describeInstance } from "./describe-instance.ts";
export {
  displayWidth,
  durationBetween,
  field,
  formatDate,
  formatDuration,
  formatTime,
  padEnd,
  STATUS_LABELS,
  statusLabel,
  type TableOptions,
  type TimeOptions,
  table,
  truncateJson,
  wrap,
} from "./format.ts";
export { createProgram, EXIT_ERROR, EXIT_OK, EXIT_USAGE, processIo, run } from "./main.ts";
export { type RunningServer, serveUntilStopped } from "./serve.ts";
