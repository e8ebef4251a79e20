export const SECTION_IDS = ["a", "b", "c", "d", "e", "f", "g"] as const;
export type SectionId = (typeof SECTION_IDS)[number];

export interface Args {
  quick: boolean;
  only: SectionId[];
  /** Write results files (and, for a full run, docs/benchmarks.md). */
  save: boolean;
  /** Run only the table of issue 18 (bench/issue18.ts). */
  issue18: boolean;
  /** Run only the cost of CPU accounting and metrics (bench/cost.ts). */
  cost: boolean;
  /** Instances parked in the issue-18 memory row. */
  parked?: number;
  /** Where the per-mode temp directories go (default: the OS temp dir). */
  dir?: string;
}

const USAGE = `usage: npm run bench -- [--quick] [--only a,b,…] [--no-save] [--dir PATH] [--issue18 [--parked N]] [--cost]
  --quick     smaller sizes, for a smoke run
  --only      sections to run: a burst, b latency, c event round trip, d sleep accuracy,
              e createBatch rate, f parked memory, g long instance
  --no-save   print only; write no results files
  --dir       parent directory of the temp databases (default: the OS temp dir)
  --issue18   run only the targets table of issue 18: each figure, its ratio to the raw commit rate
              measured in the same run, its target and ✓/✗ (bench/results/issue18-*.json)
  --parked    instances parked in its memory row (default 1,000,000; with --quick 100,000)
  --cost      run only the cost of CPU accounting and metrics: burst rate and unloaded p50 with them on
              and off, alternating, median of 11 rounds (3 with --quick); the target is under 5 %
              (bench/results/cost-*.json)`;

export function parseArgs(argv: readonly string[]): Args {
  const args: Args = { quick: false, only: [...SECTION_IDS], save: true, issue18: false, cost: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") args.quick = true;
    else if (a === "--no-save") args.save = false;
    else if (a === "--issue18") args.issue18 = true;
    else if (a === "--cost") args.cost = true;
    else if (a === "--parked" || a.startsWith("--parked="))
      args.parked = parseCount("--parked", a === "--parked" ? argv[++i] : a.slice(9));
    else if (a === "--only" || a.startsWith("--only="))
      args.only = parseOnly(a === "--only" ? argv[++i] : a.slice(7));
    else if (a === "--dir" || a.startsWith("--dir=")) args.dir = a === "--dir" ? argv[++i] : a.slice(6);
    else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else fail(`unknown argument ${a}`);
  }
  return args;
}

function parseOnly(value: string | undefined): SectionId[] {
  if (!value) fail("--only needs a list of sections, e.g. --only a,b");
  const ids = value.split(",").map((s) => s.trim().toLowerCase());
  for (const id of ids) if (!(SECTION_IDS as readonly string[]).includes(id)) fail(`unknown section "${id}"`);
  return SECTION_IDS.filter((id) => ids.includes(id));
}

function parseCount(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (!value || !Number.isInteger(n) || n < 100 || n % 100 !== 0)
    fail(`${flag} needs a whole number of instances, a multiple of 100 (got ${value ?? "nothing"})`);
  return n;
}

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}
