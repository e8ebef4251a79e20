// The seccomp program, run on a small classic-BPF interpreter (the kernel runs it in
// tests/sandbox-escape): every denied syscall gets EPERM, clone3 ENOSYS, clone with CLONE_NEWUSER
// EPERM, anything else is allowed, and a foreign architecture is killed.
import { describe, expect, it } from "vitest";
import { buildSeccompFilter, deniedSyscalls } from "./seccomp.ts";

/** Runs the filter on `struct seccomp_data { nr, arch, ip, args[6] }`. */
function run(prog: Buffer, data: { nr: number; arch: number; arg0?: number }): number {
  const word = (off: number) =>
    off === 0 ? data.nr : off === 4 ? data.arch : off === 16 ? (data.arg0 ?? 0) : 0;
  let a = 0;
  for (let pc = 0; pc < prog.length / 8; ) {
    const code = prog.readUInt16LE(pc * 8);
    const jt = prog.readUInt8(pc * 8 + 2);
    const jf = prog.readUInt8(pc * 8 + 3);
    const k = prog.readUInt32LE(pc * 8 + 4);
    if (code === 0x20) a = word(k) >>> 0;
    else if (code === 0x06) return k;
    else if (code === 0x15) pc += a === k ? jt : jf;
    else if (code === 0x35) pc += a >= k ? jt : jf;
    else if (code === 0x45) pc += (a & k) !== 0 ? jt : jf;
    else throw new Error(`unknown opcode ${code}`);
    pc++;
  }
  throw new Error("fell off the program");
}

const X64 = 0xc000003e;
const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;
const ENOSYS = 0x00050026;

describe("seccomp filter", () => {
  const prog = buildSeccompFilter("x64");
  it("refuses the listed syscalls with EPERM", () => {
    const nrs: Record<string, number> = {
      mount: 165,
      ptrace: 101,
      unshare: 272,
      bpf: 321,
      keyctl: 250,
      mknodat: 259,
      setns: 308,
    };
    for (const [name, nr] of Object.entries(nrs)) {
      expect(deniedSyscalls("x64")).toContain(name);
      expect(run(prog, { nr, arch: X64 })).toBe(EPERM);
    }
    expect(deniedSyscalls("x64")).toHaveLength(43);
    expect(deniedSyscalls("arm64")).toHaveLength(40);
  });
  it("allows ordinary syscalls, clone without CLONE_NEWUSER; clone3 is ENOSYS", () => {
    for (const nr of [0, 1, 2, 57, 59, 231]) expect(run(prog, { nr, arch: X64 })).toBe(ALLOW);
    expect(run(prog, { nr: 56, arch: X64, arg0: 0x01200011 })).toBe(ALLOW);
    expect(run(prog, { nr: 56, arch: X64, arg0: 0x10000000 })).toBe(EPERM);
    expect(run(prog, { nr: 435, arch: X64 })).toBe(ENOSYS);
  });
  it("refuses the x32 ABI and kills a foreign architecture", () => {
    expect(run(prog, { nr: 0x40000000 + 1, arch: X64 })).toBe(EPERM);
    expect(run(prog, { nr: 1, arch: 0x40000003 })).toBe(0x80000000);
  });
  it("has an aarch64 program with its own numbers", () => {
    const arm = buildSeccompFilter("arm64");
    expect(run(arm, { nr: 40, arch: 0xc00000b7 })).toBe(EPERM);
    expect(run(arm, { nr: 63, arch: 0xc00000b7 })).toBe(ALLOW);
    expect(() => buildSeccompFilter("ia32")).toThrow("no seccomp filter for the architecture ia32");
  });
});
