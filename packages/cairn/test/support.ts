import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Cairn,
  type CairnOptions,
  createCairn,
  FakeClock,
  type Workflow,
  type WorkflowEntrypoint,
} from "cairnjs";

export type Ctor = new (...args: any[]) => WorkflowEntrypoint<any, any>;

/** A Cairn on an in-memory store with a fake clock, and helpers to move time. */
export async function setup(workflowClass: Ctor, options: Partial<CairnOptions> = {}) {
  const clock = new FakeClock();
  const cairn = await createCairn({
    store: ":memory:",
    clock,
    defaultRetryDelay: "1 second",
    workflows: [{ binding: "W", name: "w", class: workflowClass }],
    ...options,
  });
  const idle = () => cairn.runtime.whenIdle();
  return {
    cairn,
    clock,
    W: cairn.env.W as Workflow<any>,
    idle,
    advance: (ms: number) => clock.advance(ms, idle),
    history: async (id: string) =>
      (await cairn.store.history.list("w", id)).map((e) =>
        e.step ? `${e.type} ${e.step.name}-${e.step.count}` : e.type,
      ),
  };
}

/** A promise with its resolve and reject exposed. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A fresh directory for a SQLite file, removed by the returned function. */
export function tempDir(): { dir: string; file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "cairn-test-"));
  return { dir, file: join(dir, "cairn.db"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function expectCode(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string };
    if (err.code !== code)
      throw new Error(`expected error code ${code}, got ${err.code}: ${(e as Error).message}`);
    return e as Error;
  }
  throw new Error(`expected error code ${code}, but it succeeded`);
}

export type { Cairn };
