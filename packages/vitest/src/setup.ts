/**
 * The setup file `cloudflareTest` adds: before each test file, starts its Worker on a fresh Cairn;
 * after it, closes that Cairn.
 */
import { afterAll, inject } from "vitest";
import { PROVIDE_KEY, type ResolvedWorkerOptions } from "./plugin.ts";
import { startWorker } from "./worker.ts";

const options = inject(PROVIDE_KEY as never) as ResolvedWorkerOptions | undefined;
if (!options)
  throw new Error("cairnjs/vitest: the setup file ran without the cloudflareTest plugin's options");
const worker = await startWorker(options);
afterAll(() => worker.close());
