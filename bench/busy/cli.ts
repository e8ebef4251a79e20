/** The `cairn` command from the sources (run with `--conditions=source`), for the benchmarks. */
import { run } from "@cairn/cli";

process.exitCode = await run(process.argv.slice(2));
