#!/usr/bin/env node
// The `cairn` command of the `cairnjs` package: the CLI lives in @cairn/cli (0 ok, 1 error, 2 usage).
// Checks the Node.js version first (without importing anything that needs a newer one).
import { nodeVersionProblem } from "@cairn/core";

const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  process.stderr.write(`✘ ${problem}\n`);
  process.exit(1);
}

// `cairn … | head` closes the pipe early: stop quietly instead of crashing on EPIPE.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});
const { run } = await import("@cairn/cli/main");
process.exitCode = await run(process.argv.slice(2));
