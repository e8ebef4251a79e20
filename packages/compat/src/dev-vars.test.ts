import { describe, expect, it } from "vitest";
import { makeProject, removeProject } from "../fixtures/helpers.ts";
import { readDevSecrets } from "./dev-vars.ts";

describe("readDevSecrets", () => {
  it("reads .dev.vars, or .dev.vars.<env> for an environment", () => {
    const dir = makeProject({
      ".dev.vars": 'API_KEY=dev-key\n# a comment\nQUOTED="a b"\n',
      ".dev.vars.staging": "API_KEY=staging-key\n",
      ".env": "IGNORED=1\n",
    });
    try {
      expect(readDevSecrets(dir)).toEqual({
        values: { API_KEY: "dev-key", QUOTED: "a b" },
        files: [".dev.vars"],
      });
      expect(readDevSecrets(dir, "staging")).toEqual({
        values: { API_KEY: "staging-key" },
        files: [".dev.vars.staging"],
      });
      expect(readDevSecrets(dir, "production").files).toEqual([".dev.vars"]);
    } finally {
      removeProject(dir);
    }
  });

  it("reads the .env files when there is no .dev.vars, later ones winning", () => {
    const dir = makeProject({
      ".env": "A=env\nB=env\nC=env\n",
      ".env.staging": "B=staging\n",
      ".env.local": "C=local\n",
    });
    try {
      expect(readDevSecrets(dir)).toEqual({
        values: { A: "env", B: "env", C: "local" },
        files: [".env", ".env.local"],
      });
      expect(readDevSecrets(dir, "staging")).toEqual({
        values: { A: "env", B: "staging", C: "local" },
        files: [".env", ".env.staging", ".env.local"],
      });
    } finally {
      removeProject(dir);
    }
  });

  it("reads nothing when there are no such files", () => {
    const dir = makeProject({ "wrangler.json": "{}" });
    try {
      expect(readDevSecrets(dir)).toEqual({ values: {}, files: [] });
    } finally {
      removeProject(dir);
    }
  });
});
