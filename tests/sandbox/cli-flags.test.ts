// `cairn dev|start --sandbox-network egress --sandbox-allow host:port,…`: checked, then handed to
// the project's sandboxes.
import { describe, expect, it } from "vitest";
import { applySandboxFlags } from "../../packages/cli/src/context.ts";

describe("--sandbox-network / --sandbox-allow", () => {
  it("sets the sandboxes' network and allow-list", () => {
    const env: NodeJS.ProcessEnv = {};
    applySandboxFlags({ sandboxNetwork: "egress", sandboxAllow: ["127.0.0.1:8080", "github.com:443"] }, env);
    expect(env).toEqual({
      CAIRN_SANDBOX_NETWORK: "egress",
      CAIRN_SANDBOX_ALLOW: "127.0.0.1:8080,github.com:443",
    });
  });

  it("refuses bad values with one clear line", () => {
    expect(() => applySandboxFlags({ sandboxNetwork: "open" }, {})).toThrow(
      '--sandbox-network must be none or egress, got "open"',
    );
    expect(() => applySandboxFlags({ sandboxNetwork: "egress", sandboxAllow: ["github.com"] }, {})).toThrow(
      '--sandbox-allow: "github.com" is not host:port',
    );
    expect(() => applySandboxFlags({ sandboxAllow: ["github.com:443"] }, {})).toThrow(
      "--sandbox-allow needs --sandbox-network egress",
    );
  });
});
