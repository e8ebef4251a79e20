#!/usr/bin/env node
// The `cairn` command of the `cairn` package: the CLI lives in @cairn/cli (0 ok, 1 error, 2 usage).
import { run } from "@cairn/cli/main";

// `cairn … | head` closes the pipe early: stop quietly instead of crashing on EPIPE.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});
process.exitCode = await run(process.argv.slice(2));
