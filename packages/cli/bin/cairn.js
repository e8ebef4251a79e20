#!/usr/bin/env node
// The `cairn` command: runs the built CLI and exits with its code (0 ok, 1 error, 2 usage).
import { run } from "../dist/main.js";

// `cairn … | head` closes the pipe early: stop quietly instead of crashing on EPIPE.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});
process.exitCode = await run(process.argv.slice(2));
