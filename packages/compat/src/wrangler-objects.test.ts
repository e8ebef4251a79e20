import { describe, expect, it } from "vitest";
import { parseWranglerConfig, WranglerConfigError } from "./wrangler.ts";

const json = (value: unknown) => JSON.stringify(value, null, 2);
const errorOf = (text: string) => {
  try {
    parseWranglerConfig(text, "/p/wrangler.json");
  } catch (e) {
    expect(e).toBeInstanceOf(WranglerConfigError);
    return (e as Error).message;
  }
  throw new Error("expected an error");
};

describe("wrangler durable_objects and migrations", () => {
  it("reads bindings and migrations; workflows are optional when there are Durable Objects", () => {
    const config = parseWranglerConfig(
      json({
        main: "src/index.ts",
        durable_objects: { bindings: [{ name: "COUNTER", class_name: "Counter" }] },
        migrations: [
          { tag: "v1", new_sqlite_classes: ["Counter"] },
          { tag: "v2", renamed_classes: [{ from: "Counter", to: "Tally" }], deleted_classes: [] },
        ],
      }),
      "/p/wrangler.json",
    );
    expect(config.workflows).toEqual([]);
    expect(config.durableObjects).toEqual([{ name: "COUNTER", class_name: "Counter" }]);
    expect(config.migrations).toEqual([
      { tag: "v1", new_sqlite_classes: ["Counter"] },
      { tag: "v2", renamed_classes: [{ from: "Counter", to: "Tally" }], deleted_classes: [] },
    ]);
  });

  it("refuses script_name with a clear not-supported line", () => {
    expect(
      errorOf(
        json({
          main: "x.ts",
          durable_objects: { bindings: [{ name: "C", class_name: "Counter", script_name: "other-worker" }] },
        }),
      ),
    ).toBe(
      "/p/wrangler.json: durable_objects.bindings[0].script_name: script_name (a Durable Object of another Worker) is not supported by Cairn",
    );
  });

  it("names bad bindings and migrations", () => {
    expect(
      errorOf(json({ main: "x.ts", durable_objects: { bindings: [{ name: "my-do", class_name: "A" }] } })),
    ).toBe(
      "/p/wrangler.json: durable_objects.bindings[0].name: name must be a JavaScript identifier, like MY_DURABLE_OBJECT",
    );
    expect(
      errorOf(
        json({
          main: "x.ts",
          durable_objects: { bindings: [{ name: "A", class_name: "A" }] },
          migrations: [{ new_sqlite_classes: ["A"] }],
        }),
      ),
    ).toBe("/p/wrangler.json: migrations[0].tag: needs a tag (a string)");
    expect(
      errorOf(
        json({
          main: "x.ts",
          workflows: [{ binding: "A", name: "a", class_name: "W" }],
          durable_objects: { bindings: [{ name: "A", class_name: "A" }] },
        }),
      ),
    ).toBe('/p/wrangler.json: workflows[0].binding: binding "A" is already used by a Durable Object binding');
  });
});
