/**
 * The seccomp filter of SPEC §14.4, as a classic BPF program for bwrap's `--seccomp <fd>`.
 *
 * Hand-assembled (about 60 instructions) rather than built with libseccomp: Node has no maintained
 * libseccomp binding, and the filter is a fixed list, so a pure function with the syscall numbers
 * of x86_64 and aarch64 keeps servers free of python3-seccomp. Layout:
 *
 *   ld arch; arch != ours → KILL_PROCESS
 *   ld nr; (x86_64) nr ≥ 0x40000000 (x32 ABI) → EPERM
 *   nr ∈ DENIED → EPERM;  nr == clone3 → ENOSYS (libc falls back to clone, which we can inspect)
 *   nr == clone: ld args[0] (low word); flags & CLONE_NEWUSER → EPERM
 *   → ALLOW
 */

const DENIED = [
  "mount",
  "umount2",
  "pivot_root",
  "chroot",
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "bpf",
  "perf_event_open",
  "keyctl",
  "add_key",
  "request_key",
  "unshare",
  "setns",
  "userfaultfd",
  "open_by_handle_at",
  "name_to_handle_at",
  "reboot",
  "swapon",
  "swapoff",
  "syslog",
  "acct",
  "quotactl",
  "mknod",
  "mknodat",
  "iopl",
  "ioperm",
  "settimeofday",
  "clock_settime",
  "adjtimex",
  "sethostname",
  "setdomainname",
  "fsopen",
  "fsmount",
  "move_mount",
  "open_tree",
  "fspick",
  "mount_setattr",
] as const;

type Table = Partial<Record<(typeof DENIED)[number] | "clone" | "clone3", number>>;

/** x86_64 (arch/x86/entry/syscalls/syscall_64.tbl). */
const X86_64: Table = {
  mount: 165,
  umount2: 166,
  pivot_root: 155,
  chroot: 161,
  ptrace: 101,
  process_vm_readv: 310,
  process_vm_writev: 311,
  kexec_load: 246,
  kexec_file_load: 320,
  init_module: 175,
  finit_module: 313,
  delete_module: 176,
  bpf: 321,
  perf_event_open: 298,
  keyctl: 250,
  add_key: 248,
  request_key: 249,
  unshare: 272,
  setns: 308,
  userfaultfd: 323,
  open_by_handle_at: 304,
  name_to_handle_at: 303,
  reboot: 169,
  swapon: 167,
  swapoff: 168,
  syslog: 103,
  acct: 163,
  quotactl: 179,
  mknod: 133,
  mknodat: 259,
  iopl: 172,
  ioperm: 173,
  settimeofday: 164,
  clock_settime: 227,
  adjtimex: 159,
  sethostname: 170,
  setdomainname: 171,
  fsopen: 430,
  fsmount: 432,
  move_mount: 429,
  open_tree: 428,
  fspick: 433,
  mount_setattr: 442,
  clone: 56,
  clone3: 435,
};

/** aarch64 (include/uapi/asm-generic/unistd.h; no mknod, iopl, ioperm). */
const AARCH64: Table = {
  mount: 40,
  umount2: 39,
  pivot_root: 41,
  chroot: 51,
  ptrace: 117,
  process_vm_readv: 270,
  process_vm_writev: 271,
  kexec_load: 104,
  kexec_file_load: 294,
  init_module: 105,
  finit_module: 273,
  delete_module: 106,
  bpf: 280,
  perf_event_open: 241,
  keyctl: 219,
  add_key: 217,
  request_key: 218,
  unshare: 97,
  setns: 268,
  userfaultfd: 282,
  open_by_handle_at: 265,
  name_to_handle_at: 264,
  reboot: 142,
  swapon: 224,
  swapoff: 225,
  syslog: 116,
  acct: 89,
  quotactl: 60,
  mknodat: 33,
  settimeofday: 170,
  clock_settime: 112,
  adjtimex: 171,
  sethostname: 161,
  setdomainname: 162,
  fsopen: 430,
  fsmount: 432,
  move_mount: 429,
  open_tree: 428,
  fspick: 433,
  mount_setattr: 442,
  clone: 220,
  clone3: 435,
};

const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7 } as const;

// BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;
const RET_ALLOW = 0x7fff0000;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** The architectures the filter knows. */
export function seccompSupported(arch: string = process.arch): boolean {
  return arch === "x64" || arch === "arm64";
}

/** The syscalls the filter refuses with EPERM on `arch` (for documentation and tests). */
export function deniedSyscalls(arch: string = process.arch): string[] {
  const table = arch === "arm64" ? AARCH64 : X86_64;
  return DENIED.filter((n) => table[n] !== undefined);
}

/** The filter as bytes (struct sock_filter[], little-endian) for `bwrap --seccomp`. */
export function buildSeccompFilter(arch: string = process.arch): Buffer {
  if (!seccompSupported(arch)) throw new Error(`no seccomp filter for the architecture ${arch}`);
  const table = arch === "arm64" ? AARCH64 : X86_64;
  const nrs = DENIED.map((n) => table[n]).filter((n): n is number => n !== undefined);
  // Program, with symbolic targets resolved once the length is known.
  type Target = "allow" | "eperm" | "enosys" | "kill" | number;
  const prog: { code: number; k: number; jt?: Target; jf?: Target }[] = [];
  prog.push({ code: LD_W_ABS, k: 4 });
  prog.push({ code: JEQ_K, k: AUDIT_ARCH[arch as "x64" | "arm64"], jt: 1, jf: 0 });
  prog.push({ code: RET_K, k: RET_KILL_PROCESS });
  prog.push({ code: LD_W_ABS, k: 0 });
  if (arch === "x64") prog.push({ code: JGE_K, k: 0x40000000, jt: "eperm", jf: 0 });
  for (const nr of nrs) prog.push({ code: JEQ_K, k: nr, jt: "eperm", jf: 0 });
  prog.push({ code: JEQ_K, k: table.clone3 as number, jt: "enosys", jf: 0 });
  prog.push({ code: JEQ_K, k: table.clone as number, jt: 0, jf: "allow" });
  prog.push({ code: LD_W_ABS, k: 16 });
  prog.push({ code: JSET_K, k: CLONE_NEWUSER, jt: "eperm", jf: "allow" });
  const allow = prog.length;
  prog.push({ code: RET_K, k: RET_ALLOW });
  prog.push({ code: RET_K, k: RET_ERRNO | EPERM });
  prog.push({ code: RET_K, k: RET_ERRNO | ENOSYS });
  const at = { allow, eperm: allow + 1, enosys: allow + 2, kill: 2 } as const;
  const insns: Insn[] = prog.map((p, i) => {
    const rel = (t: Target | undefined): number => {
      if (t === undefined) return 0;
      if (typeof t === "number") return t;
      const off = at[t] - i - 1;
      if (off < 0 || off > 255) throw new Error(`seccomp: jump out of range at ${i}`);
      return off;
    };
    return { code: p.code, jt: rel(p.jt), jf: rel(p.jf), k: p.k };
  });
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((x, i) => {
    buf.writeUInt16LE(x.code, i * 8);
    buf.writeUInt8(x.jt, i * 8 + 2);
    buf.writeUInt8(x.jf, i * 8 + 3);
    buf.writeUInt32LE(x.k >>> 0, i * 8 + 4);
  });
  return buf;
}
