import { describe, expect, it } from "vitest";
import { describeStoreLocation, parseStoreLocation } from "./store-location.ts";

describe("parseStoreLocation", () => {
  it("reads SQLite paths, :memory: and PostgreSQL URLs", () => {
    expect(parseStoreLocation("./cairn.db")).toEqual({ kind: "sqlite", path: "./cairn.db" });
    expect(parseStoreLocation("/var/lib/cairn/cairn.db")).toEqual({
      kind: "sqlite",
      path: "/var/lib/cairn/cairn.db",
    });
    expect(parseStoreLocation("C:\\data\\cairn.db")).toEqual({ kind: "sqlite", path: "C:\\data\\cairn.db" });
    expect(parseStoreLocation(":memory:")).toEqual({ kind: "memory" });
    expect(parseStoreLocation("postgres://u@h/db")).toEqual({ kind: "postgres", url: "postgres://u@h/db" });
    expect(parseStoreLocation("postgresql://u@h/db").kind).toBe("postgres");
  });

  it("refuses other schemes, naming the value", () => {
    for (const bad of ["mysql://x", "sqlite:///tmp/x.db", "file:cairn.db", "redis://h"])
      expect(() => parseStoreLocation(bad)).toThrow(`unsupported store "${bad}"`);
    expect(() => parseStoreLocation("")).toThrow(/SQLite file path/);
  });

  it("describes a location without the password", () => {
    expect(describeStoreLocation(parseStoreLocation("postgres://u:secret@db:5432/app?schema=c"))).toBe(
      "PostgreSQL db:5432/app (schema c)",
    );
    expect(describeStoreLocation(parseStoreLocation("./x.db"))).toBe("SQLite ./x.db");
  });
});
