import { API_PREFIX } from "@cairn/api";
import { FakeClock, WorkflowEntrypoint } from "@cairn/core";
import { createCairn } from "@cairn/engine";
import { expect, it } from "vitest";
import { createApi } from "./index.ts";

class Noop extends WorkflowEntrypoint {
  async run() {
    return 1;
  }
}

it("POST …/instances beyond createRatePerSecond is 429 instance.rate_limited", async () => {
  await using cairn = await createCairn({
    store: ":memory:",
    clock: new FakeClock(),
    createRatePerSecond: 1,
    workflows: [{ binding: "NOOP", name: "noop", class: Noop }],
  });
  const app = createApi({ runtime: cairn.runtime, pollMs: 0 });
  const post = () =>
    app.request(`${API_PREFIX}/workflows/noop/instances`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
  expect((await post()).status).toBe(201);
  const refused = await post();
  expect(refused.status).toBe(429);
  const body = (await refused.json()) as { errors: { code: string; message: string }[] };
  expect(body.errors[0]!.code).toBe("instance.rate_limited");
});
