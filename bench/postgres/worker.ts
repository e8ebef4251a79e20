/**
 * A worker process of the PostgreSQL bench: runs the bench workflows on a `postgres://` URL until its
 * stdin closes. Prints `ready` once it listens.
 */
import { createCairn } from "cairnjs";
import { AwaitEvent, ThreeSteps } from "../lib/workflows.ts";

const { url, poolSize } = JSON.parse(process.argv[2]!) as { url: string; poolSize?: number };
const cairn = await createCairn({
  store: url,
  workflows: [
    { binding: "W", name: "three-steps", class: ThreeSteps },
    { binding: "E", name: "await-event", class: AwaitEvent },
  ],
  ...(poolSize ? { poolSize } : {}),
  log: (message, error) => process.stderr.write(`${message} ${String(error)}\n`),
});
process.stdout.write(`${JSON.stringify({ event: "ready" })}\n`);
process.stdin.resume();
process.stdin.on("end", async () => {
  await cairn.close();
  process.exit(0);
});
