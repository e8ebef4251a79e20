/**
 * A 3 MiB `ReadableStream` step result on PostgreSQL (SPEC §9.3): stored beyond the 1 MiB cap by one
 * process, read back as a new stream, byte for byte, by the next one.
 */

import { createCairn, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cairnjs";
import { afterEach, describe, expect, it } from "vitest";
import { postgresUrl, Scene, sleep } from "./harness.ts";

const base = postgresUrl("the PostgreSQL stream result test");
let scene: Scene | undefined;
afterEach(async () => {
  await scene?.dispose();
  scene = undefined;
});

const MiB = 1024 * 1024;
const pattern = (i: number) => (i * 13 + 5) & 0xff;
let produced = 0;

class Blob extends WorkflowEntrypoint {
  async run(_e: WorkflowEvent<unknown>, step: WorkflowStep) {
    const stream = (await step.do("blob", async () => {
      produced++;
      const bytes = new Uint8Array(3 * MiB);
      for (let i = 0; i < bytes.length; i++) bytes[i] = pattern(i);
      return new ReadableStream<Uint8Array>({
        start(c) {
          for (let o = 0; o < bytes.length; o += 100_000) c.enqueue(bytes.subarray(o, o + 100_000));
          c.close();
        },
      });
    })) as unknown as ReadableStream<Uint8Array>;
    await step.waitForEvent("go", { type: "go", timeout: "1 hour" });
    let n = 0;
    let same = true;
    for await (const chunk of stream) {
      for (let i = 0; i < chunk.length; i++) if (chunk[i] !== pattern(n + i)) same = false;
      n += chunk.length;
    }
    return { n, same };
  }
}

describe.skipIf(!base)("stream results on PostgreSQL", () => {
  it("a 3 MiB stream result round-trips after a restart", async () => {
    scene = new Scene(base!);
    const open = () =>
      createCairn({
        store: scene!.url,
        workflows: [{ binding: "BLOB", name: "blob", class: Blob }],
        pollMs: 100,
      });
    {
      await using cairn = await open();
      await cairn.env.BLOB.create({ id: "b" });
      for (let i = 0; !(await cairn.store.steps.hasWaiter("blob", "b", "go")); i++) {
        if (i > 300) throw new Error("the instance never reached its wait");
        await sleep(50);
      }
      // Stored as 12 chunk rows of 256 KiB; the step's result is only what stands for them.
      const [row] = await cairn.store.steps.list("blob", "b");
      expect(row!.result!.byteLength).toBeLessThan(64);
      const sizes: number[] = [];
      for (let i = 0; ; i++) {
        const c = await cairn.store.steps.chunk("blob", "b", row!, i);
        if (!c) break;
        sizes.push(c.byteLength);
      }
      expect(sizes).toEqual(Array(12).fill(256 * 1024));
    }
    await using cairn = await open();
    const instance = await cairn.env.BLOB.get("b");
    await instance.sendEvent({ type: "go" });
    for (let i = 0; (await instance.status()).status !== "complete"; i++) {
      if (i > 300) throw new Error(`not complete: ${JSON.stringify(await instance.status())}`);
      await sleep(50);
    }
    expect((await instance.status()).output).toEqual({ n: 3 * MiB, same: true });
    expect(produced).toBe(1);
  }, 60_000);
});
