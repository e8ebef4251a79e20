import { describe, expect, it } from "vitest";
import { InFlight } from "./in-flight.ts";

describe("InFlight", () => {
  it("counts work while it runs and lowers the count however it ends", async () => {
    const n = new InFlight();
    let release!: () => void;
    const a = n.during(() => new Promise<string>((r) => (release = () => r("a"))));
    const b = n.during(async () => {
      throw new Error("b failed");
    });
    expect(n.count).toBe(2);
    await expect(b).rejects.toThrow("b failed");
    expect(n.count).toBe(1);
    release();
    expect(await a).toBe("a");
    expect(n.count).toBe(0);
  });

  it("lowers the count when the work throws before returning a promise", async () => {
    const n = new InFlight();
    await expect(
      n.during(() => {
        throw new Error("at once");
      }),
    ).rejects.toThrow("at once");
    expect(n.count).toBe(0);
  });
});
