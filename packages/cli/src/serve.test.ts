import { createCairn } from "@cairn/engine";
import { describe, expect, it } from "vitest";
import { serveMetrics } from "./serve.ts";

describe("cairn start --metrics-port", () => {
  it("serves the API's Prometheus metrics as /metrics without a token, and nothing else", async () => {
    const cairn = await createCairn({ store: ":memory:", workflows: [] });
    const metrics = await serveMetrics(cairn.runtime, "127.0.0.1", 0);
    try {
      expect(metrics.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const res = await fetch(metrics.url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const text = await res.text();
      expect(text).toContain(`cairn_worker_info{worker_id="${cairn.runtime.workerId}"`);
      expect(text).toContain("# TYPE cairn_instances_created_total counter");
      expect((await fetch(metrics.url.replace("/metrics", "/other"))).status).toBe(404);
    } finally {
      await metrics.close();
      await cairn.close();
    }
  });
});
