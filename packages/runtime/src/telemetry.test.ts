import { describe, expect, it } from "vitest";
import { CPU_READ_INTERVAL_MS, CpuMeter } from "./telemetry.ts";

/** Clocks a test moves by hand: `busy(ms)` uses CPU and wall time, `idle(ms)` wall time only. */
function clocks() {
  const c = { cpuUs: 0, wallMs: 0, reads: 0 };
  return {
    c,
    clocks: {
      cpu: () => {
        c.reads++;
        return c.cpuUs;
      },
      wall: () => c.wallMs,
    },
    busy(ms: number) {
      c.cpuUs += ms * 1000;
      c.wallMs += ms;
    },
    idle(ms: number) {
      c.wallMs += ms;
    },
  };
}

describe("CpuMeter", () => {
  it("gives a busy segment its CPU time and a waiting one only what others used meanwhile", () => {
    const t = clocks();
    const meter = new CpuMeter(t.clocks);
    t.idle(50);
    const busy = meter.open();
    t.busy(100);
    expect(meter.close(busy)).toBeCloseTo(100, 6);
    const waiting = meter.open();
    t.idle(200);
    const other = meter.open();
    t.busy(10);
    // Both were open for those 10 ms: 5 each.
    expect(meter.close(other)).toBeCloseTo(5, 6);
    t.idle(100);
    expect(meter.close(waiting)).toBeCloseTo(5, 6);
    expect(meter.openSegments).toBe(0);
  });

  it("reads the thread's CPU time at most once per interval, estimating in between", () => {
    const t = clocks();
    const meter = new CpuMeter(t.clocks);
    const reads = t.c.reads;
    // 100 segments of 5 µs each, back to back in a busy burst: 0.5 ms in all.
    let total = 0;
    for (let i = 0; i < 100; i++) {
      const m = meter.open();
      t.busy(0.005);
      total += meter.close(m);
    }
    expect(t.c.reads - reads).toBe(0);
    // The estimate at the last interval's utilisation (busy) counted them all.
    expect(total).toBeCloseTo(0.5, 6);
    // Past the interval, a boundary reads the real value again.
    t.busy(CPU_READ_INTERVAL_MS);
    const m = meter.open();
    expect(t.c.reads - reads).toBe(1);
    t.busy(2);
    expect(meter.close(m)).toBeCloseTo(2, 6);
  });

  it("never runs backwards: an estimate ahead of the thread is paid back, and the total stays true", () => {
    const t = clocks();
    const meter = new CpuMeter(t.clocks);
    t.busy(5); // utilisation 1 at the next reading
    meter.close(meter.open());
    // Then the thread idles in gaps too short for a reading: the estimate counts them as busy.
    let total = 0;
    for (let i = 0; i < 9; i++) {
      const m = meter.open();
      t.idle(0.1);
      total += meter.close(m);
    }
    expect(total).toBeCloseTo(0.9, 6);
    // The next reading finds the thread used nothing: the estimate is 0.9 ms ahead. No segment gets
    // negative time, the clock stands still, and the next increments pay the 0.9 ms back.
    const a = meter.open();
    t.idle(0.2);
    const b = meter.open();
    const aMs = meter.close(a);
    expect(aMs).toBe(0);
    t.busy(0.5);
    const bMs = meter.close(b);
    expect(bMs).toBe(0);
    const c = meter.open();
    t.busy(0.9);
    const cMs = meter.close(c);
    expect(cMs).toBeCloseTo(0.5, 6);
    // In all, the segments got exactly what the thread used while any was open: 0.5 + 0.9 ms.
    expect(total + aMs + bMs + cMs).toBeCloseTo(1.4, 6);
  });
});
