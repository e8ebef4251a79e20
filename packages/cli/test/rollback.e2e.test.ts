/** `cairn workflows instances terminate --rollback` against a running server (SPEC §9.1). */
import { createClient } from "@cairn/client";
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "@cairn/core";
import { type Cairn, createCairn } from "@cairn/engine";
import { createApi, startServer } from "@cairn/server";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildCli, cairn, waitFor } from "./helpers.ts";

const undone: string[] = [];

class Saga extends WorkflowEntrypoint {
  async run(event: WorkflowEvent<unknown>, step: WorkflowStep) {
    await step.do("reserve", async () => ({ seat: 3 }), {
      rollback: async ({ output }) =>
        void undone.push(`${event.instanceId}:${(output as { seat: number }).seat}`),
    });
    await step.waitForEvent("approval", { type: "approved", timeout: "1 hour" });
  }
}

let engine: Cairn;
let server: { url: string; close(): Promise<void> };
let env: Record<string, string>;

beforeAll(async () => {
  await buildCli();
  engine = await createCairn({
    store: ":memory:",
    workflows: [{ binding: "SAGA", name: "saga", class: Saga }],
  });
  server = await startServer({ app: createApi({ runtime: engine.runtime }), host: "127.0.0.1", port: 0 });
  env = { CAIRN_URL: server.url };
}, 180_000);

afterAll(async () => {
  await server?.close();
  await engine?.close();
});

it("terminate --rollback compensates, then the instance is terminated; plain terminate does not", {
  timeout: 60_000,
}, async () => {
  const api = createClient({ url: server.url });
  await api.createInstance("saga", { instance_id: "a" });
  await api.createInstance("saga", { instance_id: "b" });
  const waiting = async (id: string) =>
    (await api.getInstance("saga", id)).status === "waiting" ? true : undefined;
  await waitFor(() => waiting("a"), "a waiting");
  await waitFor(() => waiting("b"), "b waiting");

  const out = await cairn(["workflows", "instances", "terminate", "saga", "a", "--rollback"], env);
  expect(out.code).toBe(0);
  expect(out.stdout).toBe('🥷 The instance "a" from saga was terminated successfully\n');
  const done = await waitFor(async () => {
    const d = await api.getInstance("saga", "a");
    return d.status === "terminated" ? d : undefined;
  }, "a terminated");
  expect(done.rollback).toEqual({ outcome: "complete" });
  expect(undone).toEqual(["a:3"]);
  const described = await cairn(["workflows", "instances", "describe", "saga", "a"], env);
  expect(described.stdout).toContain("↩️ Rollback");

  expect((await cairn(["workflows", "instances", "terminate", "saga", "b"], env)).code).toBe(0);
  await waitFor(
    async () => ((await api.getInstance("saga", "b")).status === "terminated" ? true : undefined),
    "b",
  );
  expect(undone).toEqual(["a:3"]);
});
