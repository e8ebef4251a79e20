import { WorkflowEntrypoint } from "@cairn/core";
import { createCairn } from "@cairn/engine";
import { describe, expect, it } from "vitest";
import { DASHBOARD_PATH, dashboardBuilt, dashboardDir } from "./index.ts";
import { createApi, startServer } from "./server.ts";

class Noop extends WorkflowEntrypoint {
  async run() {
    return 1;
  }
}

describe("@cairn/dashboard/server", () => {
  it("points dashboardDir at the built app", () => {
    expect(dashboardDir.endsWith("/dist/app/")).toBe(true);
    expect(DASHBOARD_PATH).toBe("/_cairn/");
  });

  it("creates an API app that serves the dashboard, with startServer beside it", async () => {
    expect(typeof startServer).toBe("function");
    const cairn = await createCairn({
      store: ":memory:",
      workflows: [{ binding: "N", name: "noop", class: Noop }],
    });
    try {
      const app = createApi({ runtime: cairn.runtime });
      const root = await app.request("/");
      expect(root.headers.get("location")).toBe("/_cairn/");
      const page = await app.request("/_cairn/workflows/noop");
      expect(page.status).toBe(dashboardBuilt() ? 200 : 503);
      expect((await app.request("/api/v1/workflows")).status).toBe(200);
    } finally {
      await cairn.close();
    }
  });
});
