/**
 * The server process of the HTTP bench: a Cairn on a fresh SQLite file with a one-step workflow,
 * its API served on a free loopback port. Prints `{"url": …}` when listening; exits on SIGTERM.
 */

import { createApi, startServer } from "@cairn/server";
import { createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";

class Noop extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<{ n?: number }>, step: WorkflowStep) {
    return step.do("only", async () => event.payload.n ?? 0);
  }
}

const [store, synchronous] = process.argv.slice(2);
const cairn = await createCairn({
  store: store!,
  synchronous: synchronous === "NORMAL" ? "NORMAL" : "FULL",
  workflows: [{ binding: "W", name: "w", class: Noop }],
});
const server = await startServer({ app: createApi({ runtime: cairn.runtime }), port: 0 });
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
process.on("SIGTERM", async () => {
  await server.close();
  await cairn.close();
  process.exit(0);
});
