import { describe, expect, it } from "vitest";
import { nodeVersionProblem } from "./node-version.ts";

describe("nodeVersionProblem", () => {
  it("accepts Node.js 22.13 and newer", () => {
    for (const v of ["22.13.0", "22.20.1", "23.4.0", "24.0.0", "25.1.0"])
      expect(nodeVersionProblem(v)).toBeUndefined();
  });
  it("names the version found, the one needed and how to get it", () => {
    expect(nodeVersionProblem("20.20.2")).toBe(
      "Cairn needs Node.js 22.13 or newer (for node:sqlite); this is Node.js 20.20.2. Install Node.js 24 from https://nodejs.org or with a version manager (nvm install 24), then run this again.",
    );
    expect(nodeVersionProblem("22.12.0")).toMatch(/this is Node\.js 22\.12\.0/);
  });
});
